"""The master patient index rules of the policy decision point (issue 15 §1): who sees the
platform's Person records and who may run ``$merge``/``$unmerge`` and ``$match``. Pure;
:meth:`~server.access.policy.RestrictedGrant.check_interaction` asks :func:`check_identity_operation`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.errors import Forbidden

if TYPE_CHECKING:
    from server.access.policy import RestrictedGrant

IDENTITY_TYPES = frozenset({"Person"})
"""The platform's Person records (which Patients of which institutions are one resident). Visible to
the platform; to a district for the Persons linking a Patient it manages (R4's Patient compartment
holds Person by ``link``); to a resident for his or her own; never to an institution (a Person names
other institutions' Patient ids: institutions find their duplicates with ``Patient/$match``, which
answers only Patients they may see). Written only by the platform (the linking listener, and
operators linking a weak match)."""
IDENTITY_PLATFORM_OPERATIONS = frozenset({"merge", "unmerge"})
"""``Patient/$merge``/``$unmerge``: the platform's 重复建档 clean-up (they re-point every institution's
references to the duplicate, so no one institution may run them); each write still passes check_write."""
IDENTITY_SEARCH_OPERATIONS = frozenset({"match"})
"""``Patient/$match`` is a search of Patients: the caller needs search permission on Patient, and its
candidates are searched through the grant (only what the caller may see is scored)."""


def check_identity_operation(grant: RestrictedGrant, name: str, type_: str | None) -> None:
    if name in IDENTITY_PLATFORM_OPERATIONS and grant.role != "platform":
        raise Forbidden(f"${name} is a platform operation (the 重复建档 clean-up): role platform only, "
                        f"not {grant.role}")
    if name in IDENTITY_PLATFORM_OPERATIONS and type_ is not None:
        grant._check_write_type("u", type_)
    if name in IDENTITY_SEARCH_OPERATIONS and grant.visible(type_ or "Patient", "search") is None:
        raise Forbidden(f"${name} searches Patients, which the token's scopes and role {grant.role} do not allow")

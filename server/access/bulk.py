"""The Bulk Data rules of the policy decision point (issue 16 §2): who may start ``$export`` and
``$import``. Pure; :meth:`~server.access.policy.RestrictedGrant.check_interaction` asks
:func:`check_bulk_operation`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.errors import Forbidden

if TYPE_CHECKING:
    from server.access.policy import RestrictedGrant

BULK_OPERATIONS = frozenset({"export", "import"})
"""Bulk Data kick-offs. ``$export``: the platform, or a client with ``system/`` scopes (SMART Backend
Services); what it exports is what its grant lets it search, compiled into every query of the job.
``$import``: the roles that write clinical data (platform, institution) with a ``system/`` scope;
every line is then an ordinary update, checked by :meth:`RestrictedGrant.check_write`."""


def check_bulk_operation(grant: RestrictedGrant, name: str) -> None:
    if name not in BULK_OPERATIONS or grant.role == "platform":
        return
    if not any(s.context == "system" for s in grant.scopes):
        raise Forbidden(f"${name} is for SMART Backend Services clients: the token has no system/ scope")
    if name == "import" and grant.role != "institution":
        raise Forbidden(f"$import writes clinical data, which role {grant.role} may not")

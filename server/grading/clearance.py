"""A reader's clearance: the highest level it sees unmasked (by role, with per-client overrides)."""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_CLEARANCE: dict[str, int] = {"platform": 5, "institution": 4, "district": 3, "resident": 5, "auditor": 2}
"""- ``platform`` 5: the regional platform's operators see everything;
- ``institution`` 4: a hospital's systems see identifiers and contacts, but level-5 (sensitive) data
  only under a permitting Consent or break-glass, even their own;
- ``district`` 3: names and birth dates, not ID numbers, phones or street addresses;
- ``resident`` 5: the policy lets a resident read only his or her own record, which is shown whole;
- ``auditor`` 2: AuditEvents and definitions; any personal data they name is masked."""


def clearance(role: str, client_id: str | None, by_role: Mapping[str, int],
              by_client: Mapping[str, int]) -> int:
    """The client's own clearance when configured, else its role's (``by_role`` over the defaults);
    an unknown role sees level 1 only."""
    if client_id is not None and client_id in by_client:
        return by_client[client_id]
    if role in by_role:
        return by_role[role]
    return DEFAULT_CLEARANCE.get(role, 1)

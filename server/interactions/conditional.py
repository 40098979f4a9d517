"""Match-then-write for conditional create, update, delete and patch
(http://hl7.org/fhir/R4/http.html#ccreate), made race-safe by the session lock.

Two requests with the same criteria take the same lock key, so the second one searches only
after the first one's write is committed: 64 concurrent ``If-None-Exist`` creates leave exactly one
resource (the bug every anchor server has had once).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from server.errors import BadRequest
from server.interactions.codes import TerminologyCodes
from server.interactions.services import Services
from server.search.parse import parse_criteria
from server.stores.base import Session


def criteria_key(type_: str, criteria: str) -> str:
    """Canonical lock key: the same criteria in any parameter order give the same key."""
    pairs = sorted(parse_qsl(criteria, keep_blank_values=True))
    return f"{type_}?{urlencode(pairs)}"


async def matches(svc: Services, session: Session, type_: str, criteria: str, *, limit: int = 2) -> list[str]:
    """Ids of ``type_`` resources matching ``criteria`` (at most ``limit``), under the criteria lock."""
    criteria = criteria.lstrip("?")
    if not criteria.strip():
        raise BadRequest("Conditional criteria are empty; give at least one search parameter")
    codes = TerminologyCodes(svc.terminology) if svc.terminology is not None else None
    condition = parse_criteria(type_, criteria, svc.registry, codes=codes)
    await session.lock(criteria_key(type_, criteria))
    return await session.find(type_, condition, limit)

"""Candidates for ``Patient/$match``: found by indexed searches, limited to what the caller may see.

Never a scan: each search below is answered from the search index (identifier, name, birth date
with sex, phone), each capped, and run through the caller's grant (``svc.grant.restrict``), so a
Patient the caller may not search is never a candidate. Merged-away Patients (``link``
``replaced-by``) are no candidates: their target is.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from server.fhir.json import load_stored
from server.identity.keys import identifiers, replaced
from server.identity.linking import token
from server.identity.score import Match, names, phones, score
from server.interactions.services import Services
from server.search.model import Query
from server.search.parse import parse_criteria
from server.stores.base import Version

PER_SEARCH = 200
"""Most candidates one search contributes (a common name or birth date in a large region)."""


async def _search(svc: Services, criteria: dict[str, str], seen: dict[str, Version]) -> None:
    where = parse_criteria("Patient", urlencode(criteria), svc.registry)
    query = Query(("Patient",), where, count=PER_SEARCH)
    result = await svc.store.search(query if svc.grant.open else svc.grant.restrict(query, "search"))
    for version in result.rows:
        seen.setdefault(version.id, version)


def _telecom_phone(patient: dict[str, Any]) -> list[str]:
    return [str(t["value"]) for t in patient.get("telecom") or ()
            if isinstance(t, dict) and t.get("system") == "phone" and isinstance(t.get("value"), str)]


async def candidates(svc: Services, patient: dict[str, Any], systems: set[str]) -> list[Version]:
    """Stored Patients that share an identifier (of ``systems``), a name, a birth date (and sex) or a phone."""
    seen: dict[str, Version] = {}
    for system, value in identifiers(patient):
        if system in systems:
            await _search(svc, {"identifier": token(system, value)}, seen)
    for name in patient.get("name") or ():
        text = name.get("text") if isinstance(name, dict) else None
        if isinstance(text, str) and text.strip():
            await _search(svc, {"name": "".join(text.split())}, seen)
    for name in names(patient)[:3]:
        await _search(svc, {"name": name}, seen)
    born, sex = patient.get("birthDate"), patient.get("gender")
    if isinstance(born, str) and born:
        criteria = {"birthdate": born}
        if isinstance(sex, str) and sex:
            criteria["gender"] = sex
        await _search(svc, criteria, seen)
    for phone in _telecom_phone(patient)[:3]:
        await _search(svc, {"phone": phone}, seen)
    if phones(patient) and not _telecom_phone(patient):
        for digits in sorted(phones(patient))[:3]:
            await _search(svc, {"phone": digits}, seen)
    return list(seen.values())


async def ranked(svc: Services, patient: dict[str, Any], systems: set[str]) -> list[tuple[Version, Match]]:
    """The candidates that match, best first (score, then id for a stable order)."""
    out: list[tuple[Version, Match]] = []
    for version in await candidates(svc, patient, systems):
        if version.body is None:
            continue
        stored = load_stored(version.body)
        if replaced(stored):
            continue
        match = score(patient, stored)
        if match.grade is not None:
            out.append((version, match))
    out.sort(key=lambda vm: (-vm[1].score, vm[0].id))
    return out

"""``Patient/{id}/$transfer-history``: the record's transfers, oldest first, from the transfer Provenances.

The answer is a Parameters resource with one ``transfer`` part per transfer: ``provenance``
(Reference), ``from`` and ``to`` (Reference(Organization); ``from`` absent for a record that had no
managing organization), ``effective`` (dateTime), ``recorded`` (instant), ``reason`` (string), ``agent``
(string: who did it) and ``task`` (Reference, when a transfer-record Task asked for it). The caller must
be able to read the Patient (else 404) and sees the Provenances its grant lets it search.
"""

from __future__ import annotations

from typing import Any

from server.errors import NotFound
from server.interactions.services import Services
from server.transfer.record import StoreReader, transfer_parts, transfer_provenances, visible


def _part(record: dict[str, Any]) -> dict[str, Any]:
    ref = {"reference": f"Provenance/{record['id']}"}
    parts: list[dict[str, Any]] = [{"name": "provenance", "valueReference": ref}]
    found = transfer_parts(record)
    for name in ("from", "to"):
        if isinstance(found.get(name), dict):
            parts.append({"name": name, "valueReference": found[name]})
    if isinstance(record.get("occurredDateTime"), str):
        parts.append({"name": "effective", "valueDateTime": record["occurredDateTime"]})
    parts.append({"name": "recorded", "valueInstant": record.get("recorded")})
    reasons = [r.get("text") for r in record.get("reason") or () if isinstance(r, dict) and r.get("text")]
    if reasons:
        parts.append({"name": "reason", "valueString": reasons[0]})
    agents = [(a.get("who") or {}).get("display") for a in record.get("agent") or () if isinstance(a, dict)]
    if agents and agents[0]:
        parts.append({"name": "agent", "valueString": agents[0]})
    if isinstance(found.get("task"), dict):
        parts.append({"name": "task", "valueReference": found["task"]})
    return {"name": "transfer", "part": parts}


async def transfer_history(svc: Services, patient: str) -> dict[str, Any]:
    reader = StoreReader(svc.store)
    if await visible(svc, reader, "Patient", patient) is None:
        raise NotFound(f"Patient/{patient} is not known")
    records = await transfer_provenances(svc, reader, patient)
    records.sort(key=lambda r: str(r.get("recorded")))
    return {"resourceType": "Parameters", "parameter": [_part(r) for r in records]}

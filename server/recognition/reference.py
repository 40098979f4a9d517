"""The catalogue and qualifications a look-up needs (indexed searches only), and the CSV import's
writes (idempotent: ids derive from the rows' keys, an unchanged row writes nothing).

Reference data is the platform's: it is read and written here with the store's full view, whatever
the caller's grant (the operations decide who may call them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from server.access.grant import OPEN_GRANT
from server.errors import FhirError
from server.fhir.json import load_stored
from server.interactions.services import Services
from server.interactions.update import update
from server.recognition.csvrows import Read, Rejected, read_catalog, read_qualifications
from server.recognition.model import RECOGNITION, Item, Qualification
from server.search.parse import parse_search
from server.stores.base import Version

CHUNK = 100
"""Values OR-ed in one search parameter (the search limit)."""


def escape(value: str) -> str:
    """A value for a token search (``\\``, ``,``, ``|`` and ``$`` escaped)."""
    for char in ("\\", ",", "|", "$"):
        value = value.replace(char, "\\" + char)
    return value


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


async def find(svc: Services, type_: str, params: list[tuple[str, str]], *, limit: int = 10_000) -> list[Version]:
    """Every current resource of ``type_`` matching ``params`` (pages followed up to ``limit``),
    without the caller's restrictions."""
    request = parse_search((type_,), params, svc.registry, strict=True, max_count=1000,
                           default_count=min(limit, 1000))
    query = request.query
    rows: list[Version] = []
    while True:
        result = await svc.store.search(query)
        rows += [v for v in result.rows if v.body is not None]
        if result.next_after is None or len(rows) >= limit:
            return rows[:limit]
        query = replace(query, after=result.next_after)


async def find_any(svc: Services, type_: str, name: str, values: Iterable[str],
                   extra: Sequence[tuple[str, str]] = ()) -> list[Version]:
    """Resources whose ``name`` matches any of ``values`` (searched a hundred at a time)."""
    unique = sorted(set(values))
    found: dict[str, Version] = {}
    for chunk in _chunks(unique):
        for version in await find(svc, type_, [(name, ",".join(chunk)), *extra]):
            found[version.id] = version
    return list(found.values())


async def catalogue_for(svc: Services, codes: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Item]:
    """The catalogue items among ``codes`` ((system, code) pairs)."""
    tokens = {f"{escape(s)}|{escape(c)}" for s, c in codes if c}
    if not tokens:
        return {}
    out: dict[tuple[str, str], Item] = {}
    for version in await find_any(svc, "ActivityDefinition", "identifier", tokens,
                                  [("_tag", f"{RECOGNITION}|catalog-item")]):
        assert version.body is not None
        item = Item.from_resource(load_stored(version.body))
        if item is not None:
            out[item.key] = item
    return out


async def qualifications_for(svc: Services, organizations: Iterable[str]) -> dict[str, list[Qualification]]:
    """The qualifications of each Organization id."""
    refs = [f"Organization/{o}" for o in set(organizations) if o]
    out: dict[str, list[Qualification]] = {}
    if not refs:
        return out
    for version in await find_any(svc, "Basic", "subject", refs, [("code", f"{RECOGNITION}|qualification")]):
        assert version.body is not None
        found = Qualification.from_resource(load_stored(version.body))
        if found is not None:
            out.setdefault(found.organization, []).append(found)
    return out


async def organizations_by_identifier(svc: Services, values: Iterable[str]) -> dict[str, str]:
    """Identifier value -> Organization id (the first found, by id, when several carry it)."""
    out: dict[str, str] = {}
    for version in sorted(await find_any(svc, "Organization", "identifier", (escape(v) for v in values)),
                          key=lambda v: v.id):
        assert version.body is not None
        for identifier in load_stored(version.body).get("identifier") or ():
            value = identifier.get("value") if isinstance(identifier, dict) else None
            if isinstance(value, str):
                out.setdefault(value, version.id)
    return out


@dataclass
class Summary:
    kind: str
    read: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def to_parameters(self) -> dict[str, Any]:
        """The summary as a Parameters resource (counts, then each rejected row with its reason)."""
        params: list[dict[str, Any]] = [
            {"name": "kind", "valueCode": self.kind},
            {"name": "read", "valueInteger": self.read},
            {"name": "created", "valueInteger": len(self.created)},
            {"name": "updated", "valueInteger": len(self.updated)},
            {"name": "unchanged", "valueInteger": len(self.unchanged)},
            {"name": "rejected", "valueInteger": len(self.rejected)},
        ]
        params += [{"name": "rejection", "part": [{"name": "row", "valueInteger": r.row},
                                                  {"name": "reason", "valueString": r.reason}]}
                   for r in self.rejected]
        return {"resourceType": "Parameters", "parameter": params}


async def _put(svc: Services, summary: Summary, line: int, resource: dict[str, Any]) -> None:
    """Write one row's resource (created, updated or unchanged); a refused write rejects the row."""
    type_, id_ = resource["resourceType"], resource["id"]
    before = await svc.store.read(type_, id_)
    try:
        result = await update(svc.for_grant(OPEN_GRANT), type_, id_, resource)
    except FhirError as error:
        summary.rejected.append(Rejected(line, f"not stored: {error.message}"))
        return
    ref = f"{type_}/{id_}"
    if before is None or before.deleted:
        summary.created.append(ref)
    elif result.version is not None and result.version.version != before.version:
        summary.updated.append(ref)
    else:
        summary.unchanged.append(ref)


def _start(kind: str, read: Read[Any]) -> Summary:
    return Summary(kind, read.read, rejected=list(read.rejected))


async def import_catalog(svc: Services, data: bytes) -> Summary:
    read = read_catalog(data)
    summary = _start("catalog", read)
    for line, item in read.rows:
        await _put(svc, summary, line, item.to_resource())
    summary.rejected.sort(key=lambda r: r.row)
    return summary


async def import_qualifications(svc: Services, data: bytes) -> Summary:
    """Qualifications; a row whose institution is no known Organization (by identifier), or whose
    item is not in the catalogue, is rejected."""
    read = read_qualifications(data)
    summary = _start("qualifications", read)
    orgs = await organizations_by_identifier(svc, {row.institution for _, row in read.rows})
    items = await catalogue_for(svc, {(row.system, row.code) for _, row in read.rows})
    for line, row in read.rows:
        if row.institution not in orgs:
            summary.rejected.append(Rejected(line, f"unknown institution '{row.institution}': no Organization has "
                                                   "this identifier"))
            continue
        if (row.system, row.code) not in items:
            summary.rejected.append(Rejected(line, f"item {row.system}|{row.code} is not in the catalogue"))
            continue
        found = Qualification(row.institution, orgs[row.institution], row.system, row.code, row.valid_from,
                              row.valid_to)
        await _put(svc, summary, line, found.to_resource())
    summary.rejected.sort(key=lambda r: r.row)
    return summary

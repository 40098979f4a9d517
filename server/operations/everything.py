"""``Patient/[id]/$everything`` and ``Patient/$everything``
(http://hl7.org/fhir/R4/patient-operation-everything.html).

What is returned, as a ``searchset`` Bundle in keyset pages:

- ``search.mode = match``: the patient and every resource in its Patient compartment
  (http://hl7.org/fhir/R4/compartmentdefinition-patient.html; see :mod:`server.search.compartment`).
  At type level: every patient and every resource in any patient's compartment.
- ``search.mode = include``: the resources those point at that have no patient reference of their
  own (:data:`REFERENCED`: the organisations, practitioners, locations, medications … the record
  needs to be read), found from each page's matches, one level deep. A referenced resource may
  appear on more than one page.

Parameters: ``_since`` (instant: only resources updated since), ``_type`` (comma-separated types;
must name at least one compartment type, since referenced resources are found through those),
``_count`` (page size, capped like search), and the ``_cursor`` of the ``next`` links.
``start``/``end`` (care dates) are not supported: ignored with a warning entry
(``search.mode = outcome``), or 400 under ``Prefer: handling=strict``, like unknown parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import orjson

from server.errors import BadRequest, Gone, InvalidSearch, Issue, NotFound
from server.interactions.bundles import bundle, encode_cursor, full_url, page_url, resource_value
from server.interactions.result import Result
from server.interactions.services import Services
from server.interactions.visibility import can_see
from server.operations.registry import Invocation, Operation
from server.search.compartment import Compartment, compartment, membership
from server.search.model import And, Condition, Query, ResourceTest
from server.search.parse import parse_criteria
from server.search.results import count, decode_cursor
from server.search.types.common import Options
from server.search.types.reference import parse_reference
from server.stores.base import Version

REFERENCED = ("Device", "Location", "Medication", "Organization", "Practitioner", "PractitionerRole", "Substance")
"""Types added when a compartment resource refers to them: not patient-specific themselves, but
needed to read the record (who treated, where, with which medication)."""
PARAMS = ("_since", "_type", "_count", "_cursor")
MAX_INCLUDED = 1000
"""Most referenced resources added to one page."""


def _strings(inv: Invocation) -> list[tuple[str, str]]:
    """Input parameters as strings (``Parameters`` values such as ``valueInteger`` included)."""
    return [(k, v if isinstance(v, str) else str(v)) for k, v in inv.params if isinstance(v, str | int)]


def _types(raw: list[str], comp: Compartment, svc: Services) -> tuple[list[str], list[str]]:
    """(compartment types, referenced types) selected by ``_type`` (all when not given)."""
    if not raw:
        return list(comp.types()), list(REFERENCED)
    names = list(dict.fromkeys(t.strip() for value in raw for t in value.split(",") if t.strip()))
    for name in names:
        if name not in svc.resource_types:
            raise InvalidSearch(f"_type: '{name}' is not a resource type", expression=("_type",))
        if not comp.contains_type(name) and name not in REFERENCED:
            raise InvalidSearch(f"_type: {name} is neither in the Patient compartment nor referenced from it",
                                expression=("_type",))
    members = [n for n in names if comp.contains_type(n)]
    if not members:
        raise InvalidSearch("_type must name at least one type of the Patient compartment (referenced "
                            "resources are found through them)", expression=("_type",))
    return members, [n for n in names if n in REFERENCED]


def _since(raw: str | None, svc: Services) -> Condition | None:
    if raw is None:
        return None
    try:
        return parse_criteria("Patient", urlencode({"_lastUpdated": f"ge{raw}"}), svc.registry)
    except InvalidSearch:
        raise InvalidSearch(f"_since: '{raw}' is not an instant", expression=("_since",)) from None


def _references(node: Any, options: Options) -> Iterator[tuple[str, str]]:
    """Every local ``Type/id`` a resource's ``Reference.reference`` elements point at."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            found = parse_reference(ref, options)
            if found is not None and found[0] is not None and found[1] is not None:
                yield found[0], found[1]
        for value in node.values():
            if isinstance(value, dict | list):
                yield from _references(value, options)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item, options)


async def _referenced(svc: Services, rows: list[Version], types: list[str], since: Condition | None,
                      base: str) -> list[Version]:
    wanted: dict[str, set[str]] = {}
    options = Options(base_url=base)
    for row in rows:
        if row.body is None:
            continue
        for ref_type, ref_id in _references(orjson.loads(row.body), options):
            if ref_type in types:
                wanted.setdefault(ref_type, set()).add(ref_id)
    found: list[Version] = []
    for type_, ids in sorted(wanted.items()):
        where: Condition = ResourceTest("id", "in", tuple(sorted(ids)))
        if since is not None:
            where = And((where, since))
        query = Query((type_,), where, count=min(len(ids), MAX_INCLUDED))
        result = await svc.store.search(query if svc.grant.open else svc.grant.restrict(query))
        found += result.rows
        if len(found) >= MAX_INCLUDED:
            break
    return found[:MAX_INCLUDED]


def _entry(base: str, version: Version, mode: str) -> dict[str, Any]:
    return {"fullUrl": full_url(base, version), "resource": resource_value(version), "search": {"mode": mode}}


async def run(inv: Invocation) -> Result:
    svc = inv.svc
    comp = compartment(svc.registry.definitions, "Patient")
    assert comp is not None
    if inv.id is not None:
        patient = await svc.store.read("Patient", inv.id)
        if patient is None or not (svc.grant.open or await can_see(svc, patient)):
            raise NotFound(f"Patient/{inv.id} is not known")  # a hidden patient is answered like a missing one
        if patient.deleted:
            raise Gone(f"Patient/{inv.id} was deleted")
    params = _strings(inv)
    values: dict[str, list[str]] = {}
    ignored: list[Issue] = []
    for name, value in params:
        if name in PARAMS:
            values.setdefault(name, []).append(value)
        elif inv.strict:
            raise BadRequest(f"$everything does not support the parameter '{name}'", expression=(name,))
        else:
            ignored.append(Issue("warning", "not-supported", f"Parameter {name} was ignored: not supported by "
                                 "$everything here", (name,)))
    members, referenced = _types(values.get("_type", []), comp, svc)
    since = _since(values["_since"][-1] if "_since" in values else None, svc)
    page_size = count(values["_count"][-1], svc.settings.max_count) if "_count" in values \
        else svc.settings.default_count
    after = decode_cursor(values["_cursor"][-1]) if "_cursor" in values else None
    where = membership(comp, inv.id, members)
    if since is not None:
        where = And((where, since))
    query = Query(tuple(members), where, count=page_size, after=after)
    # restricted like a search: only what the caller may see is matched, paged or followed
    result = await svc.store.search(query if svc.grant.open else svc.grant.restrict(query))
    entries = [_entry(inv.base, v, "match") for v in result.rows]
    entries += [_entry(inv.base, v, "include")
                for v in await _referenced(svc, result.rows, referenced, since, inv.base)]
    if ignored:
        entries.append({"resource": {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in ignored]},
                        "search": {"mode": "outcome"}})
    path = f"Patient/{inv.id}/$everything" if inv.id is not None else "Patient/$everything"
    kept = [(k, v) for k, v in params if k != "_cursor"]
    links = [("self", page_url(inv.base, path, params))]
    if result.next_after is not None:
        links.append(("next", page_url(inv.base, path, [*kept, ("_cursor", encode_cursor(result.next_after))])))
    if after is not None:
        links.append(("first", page_url(inv.base, path, kept)))
    return Result(200, resource=bundle("searchset", entries, total=None, links=links))


OPERATION = Operation(
    name="everything",
    levels=frozenset({"type", "instance"}),
    handler=run,
    types=frozenset({"Patient"}),
    definition="http://hl7.org/fhir/OperationDefinition/Patient-everything",
)

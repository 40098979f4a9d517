"""search at type and system level (http://hl7.org/fhir/R4/search.html) and its result Bundle.

The parser lowers the query string to a ``Query``; the store runs it; this module adds what is
store-independent: ``_include``/``_revinclude`` (with ``:iterate``), ``_summary``/``_elements``,
keyset paging links and the ``search.mode = outcome`` entry (ignored parameters, the ``__explain`` plan).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from profiles.model import core_model
from server.errors import Issue
from server.fhir.json import load_stored
from server.fhir.summary import elements as subset_elements
from server.fhir.summary import summarize
from server.interactions.bundles import bundle, full_url, page_url, resource_value
from server.interactions.codes import TerminologyCodes
from server.interactions.result import Result
from server.interactions.services import Services
from server.interactions.visibility import visible_versions
from server.interactions.write import check_type
from server.search.explain import PARAMETER as EXPLAIN
from server.search.explain import StorePlan, render
from server.search.model import And, Condition, FieldTest, Match, Or, Query
from server.search.parse import Include, SearchRequest, encode_cursor, parse_search
from server.stores.base import SearchResult, Version

MAX_INCLUDED = 1000
"""Upper bound on included resources per page, so one ``_include:iterate`` cannot pull a graph."""


def _entry(base: str, version: Version, mode: str, request: SearchRequest) -> dict[str, Any]:
    entry: dict[str, Any] = {"fullUrl": full_url(base, version)}
    if request.summary in ("true", "text", "data") or request.elements:
        resource = load_stored(version.body or b"{}")
        if request.elements:
            resource = subset_elements(resource, request.elements, core_model())
        else:
            resource = summarize(resource, request.summary or "false", core_model())
        entry["resource"] = resource
    else:
        entry["resource"] = resource_value(version)
    entry["search"] = {"mode": mode}
    return entry


async def _references(svc: Services, rows: list[Version], include: Include) -> set[tuple[str, str]]:
    targets: set[tuple[str, str]] = set()
    for row in rows:
        if row.body is None or (include.source_type not in ("*", row.type)):
            continue
        for entry in svc.indexer.entries(load_stored(row.body)):
            if entry.table != "reference" or (include.param != "*" and entry.param != include.param):
                continue
            ref_type, ref_id = entry.values[0], entry.values[1]
            if ref_type and ref_id and (include.target_type in (None, ref_type)):
                targets.add((str(ref_type), str(ref_id)))
    return targets


def _reference_params(svc: Services, include: Include) -> list[str]:
    """The reference parameters an include follows: the one named, or for ``Type:*`` every
    reference parameter of the type (search.html#include)."""
    if include.param != "*":
        return [include.param]
    return sorted(code for code, d in svc.registry.for_type(include.source_type).items() if d.type == "reference")


async def _included(svc: Services, request: SearchRequest, matched: list[Version]) -> list[Version]:
    """The ``_include``/``_revinclude`` resources of a page: only those the caller may see (an
    include read by id is checked like a read; a revinclude runs as a restricted search), so
    ``:iterate`` also walks on from visible resources only."""
    seen = {(v.type, v.id) for v in matched}
    found: list[Version] = []
    frontier = matched
    first = True
    while frontier and len(found) < MAX_INCLUDED:
        new: list[Version] = []
        for inc in request.include:
            if not first and not inc.iterate:
                continue
            read: list[Version] = []
            for key in await _references(svc, frontier, inc):
                if key in seen:
                    continue
                seen.add(key)
                version = await svc.store.read(*key)
                if version is not None and not version.deleted:
                    read.append(version)
            new += await visible_versions(svc, read, "search")
        for inc in request.revinclude:
            if not first and not inc.iterate:
                continue
            by_type: dict[str, list[str]] = {}
            for v in frontier:
                by_type.setdefault(v.type, []).append(v.id)
            where = Or(tuple(
                Match("reference", code, (FieldTest("ref_type", "eq", t), FieldTest("ref_id", "in", tuple(ids))))
                for code in _reference_params(svc, inc)
                for t, ids in by_type.items()
            ))
            query = Query((inc.source_type,), where, count=MAX_INCLUDED)
            result = await svc.store.search(query if svc.grant.open else svc.grant.restrict(query))
            for version in result.rows:
                if (version.type, version.id) not in seen:
                    seen.add((version.type, version.id))
                    new.append(version)
        found.extend(new)
        frontier = new
        first = False
    return found[:MAX_INCLUDED]


def _visible_types(svc: Services, query: Query) -> Query:
    """A system search without ``_type`` covers the types the caller may see (it would otherwise
    name every type, hidden ones included)."""
    if query.types:
        return query  # the parser has checked _type; the grant's restrict hides the types not visible
    return replace(query, types=tuple(t for t in sorted(svc.resource_types) if svc.grant.visible(t, "search")
                                      is not None))


async def search(
    svc: Services,
    params: Sequence[tuple[str, str]],
    *,
    base: str,
    types: tuple[str, ...],
    strict: bool = False,
    path: str = "",
    within: Condition | None = None,
) -> Result:
    """``within`` narrows the search to a scope the URL gives, e.g. a compartment
    (:mod:`server.interactions.compartment`): it is and-ed with the parsed criteria."""
    for t in types:
        check_type(svc, t)
    request = parse_search(
        types,
        params,
        svc.registry,
        strict=strict,
        default_count=svc.settings.default_count,
        max_count=svc.settings.max_count,
        base_url=base,
        codes=TerminologyCodes(svc.terminology) if svc.terminology is not None else None,
    )
    query = request.query
    if within is not None:
        query = replace(query, where=And((within, query.where)))
    if request.summary == "count" or query.count == 0:
        # _count=0 is treated like _summary=count: the total, no entries (search.html#count)
        query = replace(query, count=0, total="accurate")
    if not svc.grant.open:
        # what the caller may not see is not in the query at all: totals, _sort and cursors count only the rest
        query = svc.grant.restrict(_visible_types(svc, query))
    if svc.grant.open or query.types:
        result = await svc.store.search(query)
    else:  # a system search and no type the caller may see
        result = SearchResult([], 0 if query.total != "none" else None, None)
    total = result.total
    asked_none = any(name == "_total" for name, _ in params)
    if total is None and not asked_none and query.count > 0 and query.after is None and result.next_after is None:
        total = len(result.rows)  # the whole result is on this first page: its size is exact, at no cost
    entries = [_entry(base, v, "match", request) for v in result.rows]
    if request.include or request.revinclude:
        entries += [_entry(base, v, "include", request) for v in await _included(svc, request, result.rows)]
    issues = [Issue("warning", "not-supported", f"Parameter {name} was ignored: {why}", (name,))
              for name, why in request.ignored]
    if request.explain:
        # under a restricted grant the store's sections (sub-query sizes) are left out: a store may
        # count a part of the query before the policy's condition applies, which would show hidden rows
        store_plan = await svc.store.query_plan(query) if svc.grant.open else StorePlan(svc.store.kind, ())
        plan = render(query, store_plan)
        issues.append(Issue("information", "informational", plan, (EXPLAIN,)))
    if issues:
        entries.append({
            "resource": {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]},
            "search": {"mode": "outcome"},
        })
    kept = [(k, v) for k, v in params if k != "_cursor"]
    links = [("self", page_url(base, path, params))]
    if result.next_after is not None:
        token = encode_cursor(result.next_after, request.query)
        links.append(("next", page_url(base, path, [*kept, ("_cursor", token)])))
    if query.after is not None:
        links.append(("first", page_url(base, path, kept)))
    return Result(200, resource=bundle("searchset", entries, total=total, links=links))


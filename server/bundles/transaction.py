"""Transaction and batch processing (http://hl7.org/fhir/R4/http.html#transaction).

A transaction runs every write in one store session, so it lands whole or not at all on both
stores, in the spec's order (DELETE, POST, PUT/PATCH, then GET after commit). Before any write,
POST entries get their ids and conditional PUTs/creates are matched, so ``urn:uuid:`` fullUrls and
conditional references (``Patient?identifier=…``) can be rewritten to ``Type/id`` everywhere.
A batch runs each entry on its own; one failing entry does not affect the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from typing import Any

import anyio.to_thread

from server.bundles.entries import ORDER, EntryRequest, create_condition, read_entry
from server.bundles.execute import check_entry, error_entry, response_entry, run_entry
from server.bundles.references import has_conditional_reference, is_conditional, walk_references
from server.errors import BadRequest, FhirError, PreconditionFailed
from server.fhir.ids import new_id
from server.fhir.json import dumps, load_stored
from server.hooks import Access
from server.interactions.bundles import bundle
from server.interactions.conditional import matches
from server.interactions.masking import stamp
from server.interactions.result import Result
from server.interactions.retry import hold, resource_key, retried
from server.interactions.services import Services
from server.interactions.write import Prepared, body_id, check_update_id, prepare
from server.stores.base import Session


def _entries(body: dict[str, Any], base: str) -> list[EntryRequest]:
    entries = body.get("entry", [])
    if not isinstance(entries, list):
        raise BadRequest("Bundle.entry must be an array", expression=("Bundle.entry",))
    return [read_entry(i, e, base) for i, e in enumerate(entries)]


async def process(svc: Services, body: dict[str, Any], *, base: str, representation: bool = False) -> Result:
    kind = body.get("type")
    if kind == "transaction":
        # processing rewrites the entries in place (ids, references): a re-run starts from this copy
        pristine = dumps(body)

        async def attempt(n: int) -> Result:
            source = body if n == 1 else load_stored(pristine)
            return await _transaction(svc, _entries(source, base), base=base, representation=representation,
                                      rerun=n > 1)

        result = await retried(attempt)
        if svc.hooks.audit_sinks:  # the entries as they were sent (processing rewrote ids and references)
            await audit_entries(svc, _entries(load_stored(pristine), base), result)
        return result
    if kind == "batch":
        reqs = _entries(body, base)
        result = await _batch(svc, reqs, base=base, representation=representation)
        await audit_entries(svc, reqs, result)
        return result
    raise BadRequest(f"Bundle.type must be 'batch' or 'transaction' to be processed, not '{kind}'",
                     expression=("Bundle.type",))


async def _batch(svc: Services, reqs: list[EntryRequest], *, base: str, representation: bool) -> Result:
    out: list[dict[str, Any]] = []
    for req in reqs:
        try:
            result = await run_entry(svc, req, base=base, session=None)
            out.append(response_entry(result, representation=representation or req.method in ("GET", "HEAD")))
        except FhirError as error:
            out.append(error_entry(error))
    return Result(200, resource=bundle("batch-response", out, total=None, links=[]))


async def _resolve_ids(
    svc: Services, session: Session, reqs: list[EntryRequest], base: str
) -> tuple[dict[str, str], dict[int, str], set[int], dict[int, list[str]]]:
    """Map fullUrls to ``Type/id`` before anything is written.

    Returns the fullUrl map, ids assigned to POST entries, POST entries whose ``ifNoneExist``
    already matched (they are answered 200 and not written), and the matches of conditional PUTs
    (the writes use these, so they land where the rewritten references point)."""
    mapping: dict[str, str] = {}
    assigned: dict[int, str] = {}
    existing: set[int] = set()
    resolved: dict[int, list[str]] = {}
    for req in reqs:
        target: str | None = None
        if req.method == "POST":
            criteria = create_condition(req, base)  # its errors name the entry's field already
            found: list[str] = []
            if criteria is not None:
                with _located(req):
                    found = await matches(svc, session, req.type, criteria)
            if len(found) > 1:
                raise PreconditionFailed(f"{req.where}: ifNoneExist '{criteria}' matches several {req.type}")
            if found:
                existing.add(req.index)
                target = f"{req.type}/{found[0]}"
                assigned[req.index] = found[0]
            else:
                assigned[req.index] = new_id()
                target = f"{req.type}/{assigned[req.index]}"
        elif req.method == "PUT" and req.id is not None:
            target = f"{req.type}/{req.id}"
        elif req.method == "PUT" and req.query:
            with _located(req):
                found = await matches(svc, session, req.type, req.query)
            resolved[req.index] = found
            if len(found) == 1:
                target = f"{req.type}/{found[0]}"
            elif not found:
                with _located(req):
                    rid = body_id(req.resource or {}) or new_id()  # {"id": null} or 5 is a 400, not replaced
                (req.resource or {})["id"] = rid
                target = f"{req.type}/{rid}"
        if target and req.full_url:
            mapping[req.full_url] = target
    return mapping, assigned, existing, resolved


def _local(ref: str, mapping: dict[str, str], where: str) -> str:
    """A reference to another entry (its fullUrl) as ``Type/id``; an unmatched ``urn:`` is an error."""
    if ref in mapping:
        return mapping[ref]
    if ref.startswith(("urn:uuid:", "urn:oid:")):
        raise BadRequest(f"{where}: reference '{ref}' matches no fullUrl in this transaction",
                         expression=(f"{where}.resource",))
    return ref


async def _rewrite(svc: Services, session: Session, reqs: list[EntryRequest], mapping: dict[str, str]) -> None:
    conditional: dict[str, str] = {}
    for req in reqs:
        if req.resource is None:
            continue
        pending: list[str] = []

        def rewrite(ref: str, req: EntryRequest = req, pending: list[str] = pending) -> str:
            local = _local(ref, mapping, req.where)
            if local == ref and is_conditional(ref):
                pending.append(ref)
            return local

        walk_references(req.resource, rewrite)
        for ref in pending:
            if ref not in conditional:
                type_, criteria = ref.split("?", 1)
                found = await matches(svc, session, type_, criteria)
                if len(found) != 1:
                    raise PreconditionFailed(
                        f"{req.where}: conditional reference '{ref}' matches {len(found)} resources, not one",
                        expression=(f"{req.where}.resource",),
                    )
                conditional[ref] = f"{type_}/{found[0]}"
        if pending:
            walk_references(req.resource, lambda ref: conditional.get(ref, ref))


def _is_simple(reqs: list[EntryRequest]) -> bool:
    """Nothing in the Bundle needs the store to resolve: no ifNoneExist, no conditional URLs, no
    conditional references. Then ids, references, validation and indexing are settled before the
    write session opens (the usual shape of bulk ingest, e.g. Synthea's urn:uuid bundles)."""
    for req in reqs:
        conditional_create = req.method == "POST" and (req.if_none_exist is not None or bool(req.query))
        if conditional_create or (req.method in ("PUT", "PATCH", "DELETE") and req.id is None):
            return False
        if req.resource is not None and has_conditional_reference(req.resource):
            return False
    return True


def _check_ids(reqs: list[EntryRequest]) -> None:
    """Every ``PUT Type/id`` entry carries that id, checked before any entry is validated: a
    disagreeing id is the client's 400 (http.html#update), not hidden behind another entry's 422."""
    for req in reqs:
        if req.method == "PUT" and req.id is not None and req.resource is not None:
            with _located(req):
                check_update_id(req.resource, req.id)


def _prepare(svc: Services, reqs: list[EntryRequest]) -> tuple[dict[int, str], dict[int, Prepared]]:
    """For a simple Bundle: assign ids, rewrite references, validate and index the POSTed
    resources, all before the write lock is taken."""
    assigned: dict[int, str] = {}
    mapping: dict[str, str] = {}
    for req in reqs:
        if req.method == "POST":
            assigned[req.index] = new_id()
            target = f"{req.type}/{assigned[req.index]}"
        elif req.method == "PUT" and req.id is not None:
            target = f"{req.type}/{req.id}"
        else:
            continue
        if req.full_url:
            mapping[req.full_url] = target

    prepared: dict[int, Prepared] = {}
    for req in reqs:
        if req.resource is None:
            continue
        walk_references(req.resource, partial(_local, mapping=mapping, where=req.where))
        if req.method == "POST" and req.resource.get("resourceType") == req.type and req.type in svc.resource_types:
            req.resource.pop("id", None)
            stamp(svc, req.resource)  # before indexing: the stamps are searchable (create stamps alike)
            with _located(req):
                prepared[req.index] = prepare(svc, req.resource)
    return assigned, prepared


@contextmanager
def _located(req: EntryRequest) -> Iterator[None]:
    """Errors of one entry name the entry (``Bundle.entry[3]: …``)."""
    try:
        yield
    except FhirError as error:
        error.message = f"{req.where}: {error.message}"
        error.issues = [
            replace(i, diagnostics=f"{req.where}: {i.diagnostics}", expression=i.expression or (req.where,))
            for i in error.issues
        ]
        raise


async def _transaction(
    svc: Services, reqs: list[EntryRequest], *, base: str, representation: bool, rerun: bool = False
) -> Result:
    """One attempt at a transaction. A write that loses a race (:class:`~server.errors.Contention`)
    rolls the whole session back and the caller re-runs the Bundle from its original text; a
    re-run first leases every resource the Bundle names by id, so re-runs are serialised."""
    results: dict[int, dict[str, Any]] = {}
    for req in reqs:  # an entry the caller may not run fails the whole transaction before anything is written
        with _located(req):
            await check_entry(svc, req)
    ordered = sorted(reqs, key=lambda r: (ORDER[r.method], r.index))
    reads = [r for r in ordered if r.method in ("GET", "HEAD")]
    simple = _is_simple(reqs)
    _check_ids(reqs)
    prepared: dict[int, Prepared] = {}
    if simple:
        # validating and indexing every entry is the costly part of a Bundle: done in a worker thread so the
        # event loop keeps serving other requests (see server.interactions.offload)
        assigned, prepared = await anyio.to_thread.run_sync(_prepare, svc, reqs)
        existing: set[int] = set()
        resolved: dict[int, list[str]] = {}
    async with svc.session() as session:
        if rerun:
            await hold(session, (resource_key(r.type, r.id) for r in reqs
                                 if r.method in ("PUT", "PATCH", "DELETE") and r.id is not None))
        if not simple:
            mapping, assigned, existing, resolved = await _resolve_ids(svc, session, reqs, base)
            await _rewrite(svc, session, reqs, mapping)
        for req in ordered:
            if req.method in ("GET", "HEAD"):
                continue
            with _located(req):
                if req.index in existing:
                    found = await session.read(req.type, assigned[req.index])
                    result = Result(200, found)
                else:
                    # matched once already, in _resolve_ids: matching again would see this Bundle's own writes
                    plain = (EntryRequest(**{**req.__dict__, "if_none_exist": None, "query": ""})
                             if req.method == "POST" else req)
                    result = await run_entry(svc, plain, base=base, session=session,
                                             assigned_id=assigned.get(req.index), prepared=prepared.get(req.index),
                                             matched=resolved.get(req.index))
            results[req.index] = response_entry(result, representation=representation)
    for req in reads:
        try:
            results[req.index] = response_entry(await run_entry(svc, req, base=base, session=None), representation=True)
        except FhirError as error:
            results[req.index] = error_entry(error)
    out = [results[r.index] for r in reqs]
    return Result(200, resource=bundle("transaction-response", out, total=None, links=[]))


ENTRY_INTERACTIONS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _interaction(req: EntryRequest) -> str:
    if req.method in ENTRY_INTERACTIONS:
        return ENTRY_INTERACTIONS[req.method]
    if req.id is None:
        return "search-type"
    return "vread" if req.rest else "read"


async def audit_entries(svc: Services, reqs: list[EntryRequest], result: Result) -> None:
    """One audit record per entry of a batch or a committed transaction (the request's own record
    covers the Bundle; a transaction that failed ran none of its entries)."""
    if not svc.hooks.audit_sinks or not isinstance(result.resource, dict):
        return
    responses = result.resource.get("entry", [])
    for req, entry in zip(reqs, responses, strict=False):
        response = entry.get("response", {}) if isinstance(entry, dict) else {}
        status_text = str(response.get("status", "")).split(" ")[0]
        outcome = response.get("outcome")
        diagnostics = None
        if isinstance(outcome, dict):
            issues = outcome.get("issue") or [{}]
            diagnostics = issues[0].get("diagnostics") if isinstance(issues[0], dict) else None
        location = response.get("location")
        await svc.hooks.audit(Access(
            _interaction(req), req.method, "/" + "/".join(p for p in (req.type, req.id or "", *req.rest) if p),
            req.type, req.id or (location.split("/")[1] if isinstance(location, str) and "/" in location else None),
            principal=svc.grant.principal, status=int(status_text) if status_text.isdigit() else None,
            query=req.query, outcome=diagnostics if not status_text.startswith("2") else None,
            resource=entry.get("resource") if isinstance(entry, dict) else None,
            reference=location if isinstance(location, str) else None))

"""Run one Bundle entry through the same interactions the REST API uses."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qsl

import orjson

from server.bundles.entries import EntryRequest, create_condition
from server.errors import BadRequest, FhirError, MethodNotAllowed
from server.fhir.instant import parse_http_date, to_instant
from server.hooks import Access
from server.interactions import create, delete, history, patch, read, search, update
from server.interactions.result import Result
from server.interactions.services import Services
from server.interactions.write import Prepared, parse_etag
from server.stores.base import Session


def interaction(req: EntryRequest) -> str:
    """The FHIR interaction code of an entry (what the grant's ``check_interaction`` is asked about)."""
    if req.method != "GET" and req.method != "HEAD":
        return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[req.method]
    if req.id is None:
        return "history-system" if req.type == "_history" else "search-type"
    if req.id == "_history":
        return "history-type"
    if not req.rest:
        return "read"
    return "history-instance" if req.rest == ["_history"] else "vread"


async def check_entry(svc: Services, req: EntryRequest) -> None:
    """403 for an entry whose interaction the caller's grant does not allow, and whatever the access
    hooks refuse (405 for writing an AuditEvent while auditing): each entry is checked as its own
    request would be at the endpoint."""
    code = interaction(req)
    if not svc.grant.open:
        svc.grant.check_interaction(code, None if code == "history-system" else req.type)
    if svc.hooks.access_policies:
        path = "/" + "/".join(p for p in (req.type, req.id or "", *req.rest) if p)
        await svc.hooks.check(Access(code, req.method, path, req.type, req.id, in_bundle=True))


async def run_entry(
    svc: Services, req: EntryRequest, *, base: str, session: Session | None, assigned_id: str | None = None,
    prepared: Prepared | None = None, matched: list[str] | None = None,
) -> Result:
    """One entry; ``matched``: the ids a transaction resolved for a conditional PUT's criteria."""
    await check_entry(svc, req)
    if_match = parse_etag(req.if_match)
    if req.method == "POST":
        if req.id is not None:
            raise MethodNotAllowed(f"{req.where}: POST goes to a type, not to {req.type}/{req.id}")
        assert req.resource is not None
        return await create.create(svc, req.type, req.resource, if_none_exist=create_condition(req, base),
                                   session=session, id_=assigned_id, prepared=prepared)
    if req.method == "PUT":
        assert req.resource is not None
        if req.id is None:
            if not req.query:
                raise BadRequest(
                    f"{req.where}: PUT needs Type/id or Type?criteria", expression=(f"{req.where}.request.url",)
                )
            return await update.conditional_update(svc, req.type, req.query, req.resource, if_match=if_match,
                                                   session=session, matched=matched)
        return await update.update(svc, req.type, req.id, req.resource, if_match=if_match, session=session)
    if req.method == "PATCH":
        operations = _patch_body(req)
        if req.id is None:
            return await patch.conditional_patch(svc, req.type, req.query, operations, if_match=if_match,
                                                 session=session)
        return await patch.patch(svc, req.type, req.id, operations, if_match=if_match, session=session)
    if req.method == "DELETE":
        if req.id is None:
            if not req.query:
                raise BadRequest(f"{req.where}: DELETE needs Type/id or Type?criteria")
            return await delete.conditional_delete(svc, req.type, req.query, session=session)
        return await delete.delete(svc, req.type, req.id, if_match=if_match, session=session)
    return await _get(svc, req, base=base)


def _patch_body(req: EntryRequest) -> Any:
    """A PATCH entry carries its JSON Patch as a Binary resource (http.html#transaction)."""
    res = req.resource
    if res is None or res.get("resourceType") != "Binary" or "data" not in res:
        raise BadRequest(f"{req.where}: a PATCH entry needs a Binary resource holding the JSON Patch",
                         expression=(f"{req.where}.resource",))
    try:
        return orjson.loads(base64.b64decode(res["data"]))
    except (ValueError, orjson.JSONDecodeError):
        raise BadRequest(f"{req.where}: the Binary does not hold a JSON Patch document") from None


async def _get(svc: Services, req: EntryRequest, *, base: str) -> Result:
    params = parse_qsl(req.query, keep_blank_values=True)
    if req.id is None:
        if req.type == "_history":
            return await history.history(svc, params, base=base)
        return await search.search(svc, params, base=base, types=(req.type,), path=req.type)
    if req.id == "_history" and not req.rest:
        return await history.history(svc, params, base=base, type_=req.type)
    if not req.rest:
        since = parse_http_date(req.if_modified_since) if req.if_modified_since else None
        return await read.read(svc, req.type, req.id, if_none_match=parse_etag(req.if_none_match),
                               if_modified_since=since)
    if req.rest == ["_history"]:
        return await history.history(svc, params, base=base, type_=req.type, id_=req.id)
    if len(req.rest) == 2 and req.rest[0] == "_history":
        return await read.vread(svc, req.type, req.id, req.rest[1])
    raise BadRequest(f"{req.where}: GET url is not a FHIR interaction", expression=(f"{req.where}.request.url",))


def response_entry(result: Result, *, representation: bool) -> dict[str, Any]:
    """The ``entry.response`` (and resource) for a Bundle response."""
    response: dict[str, Any] = {"status": _status_text(result.status)}
    version = result.version
    if version is not None:
        if result.created or result.status in (200, 201):
            response["location"] = f"{version.type}/{version.id}/_history/{version.version}"
        response["etag"] = f'W/"{version.version}"'
        response["lastModified"] = to_instant(version.last_updated)
    if result.issues:
        response["outcome"] = {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in result.issues]}
    entry: dict[str, Any] = {}
    body = result.body()
    if body is not None and (representation or result.resource is not None):
        entry["resource"] = orjson.Fragment(body) if isinstance(body, bytes) else body
    entry["response"] = response
    return entry


def error_entry(error: FhirError) -> dict[str, Any]:
    return {
        "response": {
            "status": _status_text(error.status),
            "outcome": {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in error.issues]},
        }
    }


STATUS_TEXT = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified"}


def _status_text(status: int) -> str:
    text = STATUS_TEXT.get(status)
    return f"{status} {text}" if text else str(status)

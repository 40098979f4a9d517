"""Rendering interaction results as HTTP responses: status, ETag, Location, Prefer, _pretty, and
the negotiated format (JSON as produced, or FHIR XML converted here at the edge)."""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio.to_thread
from starlette.responses import Response, StreamingResponse

from profiles.fhirxml import to_xml
from server.errors import FhirError, Issue
from server.fhir.instant import to_http_date
from server.fhir.json import dumps, load_stored
from server.http.negotiation import Negotiated
from server.interactions.offload import is_large
from server.interactions.result import Result

OUTCOME_OK = Issue("information", "informational", "All OK")


def outcome(issues: list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


def _bytes(body: bytes | dict[str, Any], pretty: bool, xml: bool = False) -> bytes:
    """Through :mod:`server.fhir.json` both ways, so decimals keep their lexical form."""
    if xml:  # through JSON bytes: Bundles embed stored resources as orjson.Fragment
        data = load_stored(body if isinstance(body, bytes) else dumps(body))
        return to_xml(data, pretty=pretty).encode("utf-8")
    if isinstance(body, bytes):
        return dumps(load_stored(body), pretty=True) if pretty else body
    return dumps(body, pretty=pretty)


def fhir_response(status: int, body: bytes | dict[str, Any] | None, neg: Negotiated | None,
                  headers: dict[str, str] | None = None) -> Response:
    media = neg.media_type if neg else "application/fhir+json"
    content = b"" if body is None else _bytes(body, bool(neg and neg.pretty), bool(neg and neg.format == "xml"))
    out = Response(content, status_code=status, headers=headers,
                   media_type=None if body is None else f"{media}; charset=utf-8")
    return out


def render(result: Result, neg: Negotiated, *, base: str) -> Response:
    headers: dict[str, str] = dict(result.headers)
    version = result.version
    if version is not None and result.resource is None:
        headers["ETag"] = f'W/"{version.version}"'
        headers["Last-Modified"] = to_http_date(version.last_updated)
        url = f"{base}/{version.type}/{version.id}/_history/{version.version}"
        if result.created:
            headers["Location"] = url
        elif result.status in (200, 201):
            headers["Content-Location"] = url
    if result.stream is not None:  # a file (bulk data): its own media type, streamed
        return StreamingResponse(result.stream[1], status_code=result.status, headers=headers,
                                 media_type=result.stream[0])
    if result.status in (204, 304):
        return fhir_response(result.status, None, neg, headers)
    prefer = neg.prefer_return
    if prefer == "minimal" and result.resource is None:
        return fhir_response(result.status, None, neg, headers)
    if prefer == "OperationOutcome" and result.resource is None:
        return fhir_response(result.status, outcome(result.issues or [OUTCOME_OK]), neg, headers)
    return fhir_response(result.status, result.body(), neg, headers)


async def render_off_loop(result: Result, neg: Negotiated, *, base: str) -> Response:
    """:func:`render`, in a worker thread when it converts a large body (FHIR XML or ``_pretty``; a
    Bundle counts as large): plain JSON passes through as stored (see :mod:`server.interactions.offload`)."""
    body = result.body()
    converts = neg.format == "xml" or neg.pretty
    if converts and (isinstance(body, dict) or (isinstance(body, bytes) and is_large(len(body)))):
        return await anyio.to_thread.run_sync(partial(render, result, neg, base=base))
    return render(result, neg, base=base)


def error_response(error: FhirError, neg: Negotiated | None = None) -> Response:
    return fhir_response(error.status, outcome(error.issues), neg, dict(error.headers))

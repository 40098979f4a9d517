"""Turning a ``TestScript…operation`` into an HTTP request and sending it.

URL, method and body follow the operation codes of
http://hl7.org/fhir/R4/codesystem-testscript-operation-codes.html: the URL comes from ``url``
(verbatim, relative to the destination's base when not absolute), else from ``resource`` +
``params``, else from ``targetId`` (the resource the server assigned to that fixture or response);
the body is the ``sourceId`` fixture or response, sent as ``contentType`` (json/xml).
For update operations the body's ``id`` is set to the one in the URL, as Touchstone does, so a
fixture can be put under any id the script chose (the server must otherwise answer 400).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from conformance.runner.context import RunContext, RunError, Target, target_of
from conformance.runner.results import Exchange
from profiles.fhirxml import FhirXmlError, from_xml, to_xml

MIME = {
    "json": "application/fhir+json", "xml": "application/fhir+xml", "ttl": "text/turtle",
    "html": "text/html", "none": "",
}
JSON_PATCH = "application/json-patch+json"
METHODS = {
    "read": "GET", "vread": "GET", "search": "GET", "history": "GET", "capabilities": "GET",
    "create": "POST", "batch": "POST", "transaction": "POST",
    "update": "PUT", "updateCreate": "PUT", "patch": "PATCH",
    "delete": "DELETE", "deleteCondMultiple": "DELETE", "deleteCondSingle": "DELETE",
}
_URL_SAFE = ":/?#[]@!$&'()*,;=%-._~"
"""Kept as written when ``encodeRequestUrl`` is true: URL structure and escapes. ``+`` is encoded,
since servers read it as a space in a query (``_since=…+08:00``)."""


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    resource: Any


def mime(code: str | None, default: str) -> str:
    if not code:
        return MIME[default]
    return MIME.get(code, code)


def _code(operation: dict[str, Any]) -> str:
    return str((operation.get("type") or {}).get("code") or "")


def _body(ctx: RunContext, operation: dict[str, Any]) -> Any:
    source = operation.get("sourceId")
    if source is None:
        return None
    if source in ctx.exchanges:
        return ctx.exchanges[source].resource
    return ctx.fixture(source)


def _path(ctx: RunContext, operation: dict[str, Any], code: str, body: Any) -> str:
    """The URL after the base (``Patient/1``, ``Patient?name=x``, ``metadata``…)."""
    type_ = operation.get("resource")
    if not type_ and isinstance(body, dict) and code not in ("batch", "transaction"):
        type_ = body.get("resourceType")
    params = ctx.expand_strict(operation["params"], "params") if operation.get("params") else ""
    target: Target | None = ctx.target(operation["targetId"]) if operation.get("targetId") else None
    if target is not None:
        type_ = type_ or target.type
    if code == "capabilities":
        return "metadata" + params
    if code in ("batch", "transaction"):
        return params.lstrip("/")
    if params:
        return f"{type_}{params}" if type_ else params.lstrip("/")
    if target is not None:
        base = f"{target.type}/{target.id}"
        if code == "vread":
            if target.version is None:
                raise RunError(f"vread of {base}: no version known for targetId {operation['targetId']!r}")
            return f"{base}/_history/{target.version}"
        if code == "history":
            return f"{base}/_history"
        if code in METHODS:
            return base
        return f"{base}/${code}"
    if code in ("update", "updateCreate", "patch") and isinstance(body, dict) and body.get("id"):
        return f"{type_}/{body['id']}"
    if code == "history":
        return f"{type_}/_history" if type_ else "_history"
    if code in METHODS:
        if not type_ and code not in ("search",):
            raise RunError(f"{code} needs a resource type (resource, targetId or sourceId)")
        return type_ or ""
    return f"{type_}/${code}" if type_ else f"${code}"


def build(ctx: RunContext, operation: dict[str, Any]) -> Request:
    code = _code(operation)
    body = _body(ctx, operation)
    base = ctx.base_for(operation.get("destination"))
    if operation.get("url"):
        url = ctx.expand_strict(operation["url"], "url")
        if not url.startswith(("http://", "https://")):
            url = f"{base}/{url.lstrip('/')}"
    else:
        path = _path(ctx, operation, code, body)
        url = f"{base}/{path}" if path or code in ("batch", "transaction") else base
    if operation.get("encodeRequestUrl", True):
        url = quote(url, safe=_URL_SAFE)
    method = str(operation.get("method") or METHODS.get(code) or ("POST" if body is not None else "GET")).upper()
    headers: dict[str, str] = {}
    accept = mime(operation.get("accept"), ctx.default_format)
    if accept:
        headers["Accept"] = accept
    payload = b""
    if body is not None and method in ("POST", "PUT", "PATCH"):
        if code in ("update", "updateCreate") and isinstance(body, dict):
            body = _with_url_id(body, url)
        content_type = mime(operation.get("contentType"), ctx.default_format)
        if isinstance(body, list):
            content_type = JSON_PATCH
        payload = _encode(body, content_type)
        headers["Content-Type"] = content_type
    for header in operation.get("requestHeader", []):
        headers[header["field"]] = ctx.expand_strict(header.get("value", ""), f"requestHeader {header['field']}")
    return Request(method, url, headers, payload, body)


def _with_url_id(body: dict[str, Any], url: str) -> dict[str, Any]:
    path = url.split("?", 1)[0].rstrip("/").split("/")
    if len(path) >= 2 and path[-2] == body.get("resourceType") and body.get("id") != path[-1]:
        return {**body, "id": path[-1]}
    return body


def _encode(body: Any, content_type: str) -> bytes:
    if "xml" in content_type and isinstance(body, dict):
        try:
            return to_xml(body).encode("utf-8")
        except FhirXmlError as error:
            raise RunError(f"the body cannot be sent as XML: {error}") from None
    return orjson.dumps(body)


def parse_body(content: bytes, content_type: str | None) -> Any:
    """A response body as JSON (XML converted); None when it is empty or not FHIR."""
    if not content.strip():
        return None
    try:
        if content.lstrip().startswith(b"<") or (content_type and "xml" in content_type):
            return from_xml(content)
        return orjson.loads(content)
    except (FhirXmlError, orjson.JSONDecodeError):
        return None


async def send(ctx: RunContext, operation: dict[str, Any]) -> Exchange:
    """Build, send and record one operation (``responseId``/``requestId``, assigned ids)."""
    request = build(ctx, operation)
    exchange = Exchange(request.method, request.url, dict(request.headers), request.body)
    exchange.request_resource = request.resource
    started = time.perf_counter()
    try:
        response = await ctx.client.request(request.method, request.url, headers=request.headers,
                                            content=request.body or None)
    except httpx.HTTPError as error:
        exchange.transport_error = f"{type(error).__name__}: {error}"
    else:
        exchange.status = response.status_code
        exchange.response_headers = dict(response.headers)
        exchange.response_body = response.content
        exchange.resource = parse_body(response.content, response.headers.get("content-type"))
    exchange.elapsed_ms = (time.perf_counter() - started) * 1000
    ctx.last = exchange
    for key in ("responseId", "requestId"):
        if operation.get(key):
            ctx.exchanges[operation[key]] = exchange
    source = operation.get("sourceId")
    accepted = exchange.status is not None and 200 <= exchange.status < 300 and request.method in ("POST", "PUT")
    if source in ctx.fixtures and accepted and (found := target_of(exchange)):
        ctx.assigned[source] = found
    return exchange

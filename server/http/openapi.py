"""An OpenAPI 3.0 description of the FHIR REST API, generated from the CapabilityStatement (issue 13 §4),
so it claims exactly what ``/metadata`` claims: one path per resource type and interaction, the type's
search parameters as query parameters, the operations at their levels, and (``auth = smart``) the
security schemes: OAuth 2 client credentials and authorization code against ``/auth/*``, and a
bearer JWT. Schemas stay generic (Resource, Bundle, OperationOutcome): the FHIR definitions are
the real schema.

:func:`openapi_document` is pure; :class:`OpenApiCache` keeps the serialised document (several
hundred kB) until the CapabilityStatement changes (a SearchParameter added or removed bumps the
search registry's version) or the base URL differs.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.http.endpoint import base_url
from server.interactions.capabilities import capability_statement
from server.interactions.services import Services

FHIR_JSON = "application/fhir+json"
SEARCH_RESULT_PARAMS = ("_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total")
INTERACTION_SUMMARY = {
    "read": "Read the current version", "vread": "Read one version", "update": "Update (or create with this id)",
    "patch": "Patch (JSON Patch)", "delete": "Delete", "history-instance": "History of the resource",
    "history-type": "History of the type", "create": "Create", "search-type": "Search",
}
SMART_SCOPES = {
    "system/*.cruds": "Backend services: every type (narrow it: system/Observation.rs)",
    "user/*.cruds": "A user's access: every type the user's role allows",
    "patient/*.rs": "A patient's own records (with the patient claim)",
    "launch/patient": "Patient context in the token",
}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _components(base: str, smart: bool) -> dict[str, Any]:
    resource = {"type": "object", "required": ["resourceType"], "additionalProperties": True,
                "properties": {"resourceType": {"type": "string"}, "id": {"type": "string"},
                               "meta": {"type": "object", "additionalProperties": True}}}
    bundle = {"allOf": [_ref("schemas", "Resource"), {"type": "object", "properties": {
        "type": {"type": "string"}, "total": {"type": "integer"},
        "link": {"type": "array", "items": {"type": "object", "additionalProperties": True}},
        "entry": {"type": "array", "items": {"type": "object", "additionalProperties": True}}}}]}
    outcome = {"allOf": [_ref("schemas", "Resource"), {"type": "object", "required": ["issue"], "properties": {
        "issue": {"type": "array", "items": {"type": "object", "additionalProperties": True,
                                             "properties": {"severity": {"type": "string"},
                                                            "code": {"type": "string"},
                                                            "diagnostics": {"type": "string"}}}}}}]}

    def fhir(schema: str, description: str) -> dict[str, Any]:
        return {"description": description, "content": {FHIR_JSON: {"schema": _ref("schemas", schema)}}}

    def query(name: str, description: str, schema: str = "string") -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "description": description,
                "schema": {"type": schema}}

    out: dict[str, Any] = {
        "schemas": {"Resource": resource, "Bundle": bundle, "OperationOutcome": outcome},
        "parameters": {
            "id": {"name": "id", "in": "path", "required": True, "description": "Logical id",
                   "schema": {"type": "string", "pattern": "^[A-Za-z0-9\\-.]{1,64}$"}},
            "vid": {"name": "vid", "in": "path", "required": True, "description": "Version id",
                    "schema": {"type": "string"}},
            "_format": query("_format", "json or xml (instead of Accept)"),
            "_count": query("_count", "Page size", "integer"),
            "_sort": query("_sort", "Sort order: comma-separated parameters, '-' for descending"),
            "_include": query("_include", "Include referenced resources (Type:param[:target])"),
            "_revinclude": query("_revinclude", "Include referring resources (Type:param[:target])"),
            "_summary": query("_summary", "true, text, data, count or false"),
            "_elements": query("_elements", "Comma-separated elements to return"),
            "_total": query("_total", "none, estimate or accurate"),
            "_since": query("_since", "Only versions changed after this instant"),
            "If-Match": {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
                         "description": "ETag of the version the change is based on (W/\"n\")"},
        },
        "requestBodies": {
            "Resource": {"required": True, "content": {FHIR_JSON: {"schema": _ref("schemas", "Resource")}},
                         "description": "A resource (application/fhir+xml is accepted too)"},
            "Bundle": {"required": True, "content": {FHIR_JSON: {"schema": _ref("schemas", "Bundle")}},
                       "description": "A batch or transaction Bundle"},
            "Patch": {"required": True, "description": "A JSON Patch document (RFC 6902)",
                      "content": {"application/json-patch+json": {"schema": {"type": "array", "items": {
                          "type": "object", "additionalProperties": True}}}}},
            "SearchForm": {"required": False, "description": "Search parameters as a form",
                           "content": {"application/x-www-form-urlencoded": {"schema": {
                               "type": "object", "additionalProperties": {"type": "string"}}}}},
            "Parameters": {"required": False, "description": "A Parameters resource (or the resource itself)",
                           "content": {FHIR_JSON: {"schema": _ref("schemas", "Resource")}}},
        },
        "responses": {
            "Resource": fhir("Resource", "The resource"),
            "Bundle": fhir("Bundle", "A Bundle (searchset, history, batch-response or transaction-response)"),
            "Error": fhir("OperationOutcome", "An OperationOutcome naming the problem"),
            "Created": {**fhir("Resource", "Created; Location names the new version"),
                        "headers": {"Location": {"schema": {"type": "string"}},
                                    "ETag": {"schema": {"type": "string"}}}},
            "NoContent": {"description": "Done, nothing to return"},
        },
    }
    if smart:
        out["securitySchemes"] = {
            "smart": {"type": "oauth2", "description": "SMART on FHIR (backend services: private_key_jwt)",
                      "flows": {
                          "clientCredentials": {"tokenUrl": f"{base}/auth/token", "scopes": SMART_SCOPES},
                          "authorizationCode": {"authorizationUrl": f"{base}/auth/authorize",
                                                "tokenUrl": f"{base}/auth/token", "scopes": SMART_SCOPES}}},
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        }
    return out


def _op(tag: str, op_id: str, summary: str, *, params: list[Any] | None = None, body: str | None = None,
        ok: str = "Resource") -> dict[str, Any]:
    out: dict[str, Any] = {"tags": [tag], "operationId": op_id, "summary": summary}
    if params:
        out["parameters"] = params
    if body:
        out["requestBody"] = _ref("requestBodies", body)
    status = {"Created": "201", "NoContent": "204"}.get(ok, "200")
    out["responses"] = {status: _ref("responses", ok), "default": _ref("responses", "Error")}
    return out


def _search_params(entries: list[dict[str, Any]]) -> list[Any]:
    params: list[Any] = [{"name": p["name"], "in": "query", "required": False,
                          "description": f"{p['type']} search parameter", "schema": {"type": "string"}}
                         for p in entries]
    return [*params, *(_ref("parameters", n) for n in SEARCH_RESULT_PARAMS), _ref("parameters", "_format")]


def _operation_paths(paths: dict[str, Any], name: str, levels: frozenset[str], type_: str | None,
                     tag: str) -> None:
    prefix = f"/{type_}" if type_ else ""
    wanted: list[tuple[str, str, list[Any]]] = [("type" if type_ else "system", f"{prefix}/${name}", [])]
    if type_:
        wanted.append(("instance", f"{prefix}/{{id}}/${name}", [_ref("parameters", "id")]))
    for level, path, params in wanted:
        if level not in levels:
            continue
        suffix = f"{level}-{type_}" if type_ else level
        paths[path] = {
            "get": _op(tag, f"op-{name}-{suffix}-get", f"${name} ({level})", params=params or None),
            "post": _op(tag, f"op-{name}-{suffix}", f"${name} ({level})", params=params or None, body="Parameters"),
        }


def openapi_document(capability: Mapping[str, Any], *, base: str, smart: bool,
                     operation_levels: Mapping[str, frozenset[str]]) -> dict[str, Any]:
    """OpenAPI 3.0.3 from a CapabilityStatement; ``operation_levels`` maps an operation's name to the
    levels (system/type/instance) it runs at (the CapabilityStatement lists operations per type only)."""
    rest = capability["rest"][0]
    paths: dict[str, Any] = {}
    public: list[Any] = []  # no token needed
    paths["/metadata"] = {"get": {**_op("System", "capabilities", "The CapabilityStatement"), "security": public}}
    system = {i["code"] for i in rest.get("interaction", ())}
    root: dict[str, Any] = {}
    if "search-system" in system:
        root["get"] = _op("System", "search-system", "Search across types", ok="Bundle",
                          params=_search_params([*rest.get("searchParam", ())]))
    if {"batch", "transaction"} & system:
        root["post"] = _op("System", "transaction", "Batch or transaction", body="Bundle", ok="Bundle")
    if root:
        paths["/"] = root
    if "history-system" in system:
        paths["/_history"] = {"get": _op("System", "history-system", "History of every resource", ok="Bundle",
                                         params=[_ref("parameters", "_since"), _ref("parameters", "_count")])}
    for op in rest.get("operation", ()):
        _operation_paths(paths, op["name"], operation_levels.get(op["name"], frozenset({"system"})), None, "System")
    tags: list[dict[str, Any]] = [{"name": "System", "description": "Whole-server interactions"}]
    for resource in rest.get("resource", ()):
        type_ = resource["type"]
        tags.append({"name": type_, "externalDocs": {"url": f"http://hl7.org/fhir/R4/{type_.lower()}.html"}})
        codes = {i["code"] for i in resource.get("interaction", ())}
        idp, vidp = _ref("parameters", "id"), _ref("parameters", "vid")
        type_path: dict[str, Any] = {}
        if "search-type" in codes:
            type_path["get"] = _op(type_, f"search-{type_}", f"Search {type_}", ok="Bundle",
                                   params=_search_params(resource.get("searchParam", [])))
            paths[f"/{type_}/_search"] = {"post": _op(type_, f"search-post-{type_}", f"Search {type_} (form)",
                                                      body="SearchForm", ok="Bundle")}
        if "create" in codes:
            type_path["post"] = _op(type_, f"create-{type_}", f"Create a {type_}", body="Resource", ok="Created")
        if type_path:
            paths[f"/{type_}"] = type_path
        if "history-type" in codes:
            paths[f"/{type_}/_history"] = {"get": _op(type_, f"history-type-{type_}", f"History of {type_}",
                                                      ok="Bundle", params=[_ref("parameters", "_since"),
                                                                           _ref("parameters", "_count")])}
        instance: dict[str, Any] = {}
        for code, method in (("read", "get"), ("update", "put"), ("patch", "patch"), ("delete", "delete")):
            if code in codes:
                instance[method] = _op(
                    type_, f"{code}-{type_}", f"{INTERACTION_SUMMARY[code]} ({type_})",
                    params=[_ref("parameters", "If-Match")] if code in ("update", "patch", "delete") else None,
                    body={"update": "Resource", "patch": "Patch"}.get(code),
                    ok="NoContent" if code == "delete" else "Resource")
        if instance:
            paths[f"/{type_}/{{id}}"] = {"parameters": [idp], **instance}
        if "history-instance" in codes:
            paths[f"/{type_}/{{id}}/_history"] = {"parameters": [idp], "get": _op(
                type_, f"history-instance-{type_}", f"History of a {type_}", ok="Bundle")}
        if "vread" in codes:
            paths[f"/{type_}/{{id}}/_history/{{vid}}"] = {"parameters": [idp, vidp], "get": _op(
                type_, f"vread-{type_}", f"Read one version of a {type_}")}
        for op in resource.get("operation", ()):
            levels = operation_levels.get(op["name"], frozenset({"type", "instance"}))
            _operation_paths(paths, op["name"], levels, type_, type_)
    software = capability.get("software", {})
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": f"{software.get('name', 'FHIR')} FHIR R4 API", "version": str(software.get("version", "")),
                 "description": f"Generated from the CapabilityStatement at {base}/metadata (FHIR "
                                f"{capability.get('fhirVersion', '4.0.1')}). Request and response bodies are "
                                "FHIR resources (application/fhir+json; application/fhir+xml too)."},
        "servers": [{"url": base or "/"}],
        "externalDocs": {"description": "FHIR R4 RESTful API", "url": "http://hl7.org/fhir/R4/http.html"},
        "tags": tags,
        "paths": paths,
        "components": _components(base, smart),
    }
    if smart:
        doc["security"] = [{"smart": []}, {"bearer": []}]
    return doc


def operation_levels(svc: Services) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for op in svc.operations.all() if svc.operations is not None else ():
        out[op.name] = out.get(op.name, frozenset()) | op.levels
    return out


class OpenApiCache:
    """The document and its JSON bytes, rebuilt when the search registry or the base URL changes."""

    def __init__(self) -> None:
        self._key: tuple[str, int] | None = None
        self._doc: dict[str, Any] = {}
        self._bytes = b""
        self._lock = threading.Lock()

    def get(self, svc: Services, base: str) -> tuple[dict[str, Any], bytes]:
        key = (base, svc.registry.version)
        with self._lock:
            if key != self._key:
                capability = capability_statement(svc, base=base)
                self._doc = openapi_document(capability, base=base, smart=svc.settings.auth == "smart",
                                             operation_levels=operation_levels(svc))
                self._bytes = orjson.dumps(self._doc)
                self._key = key
            return self._doc, self._bytes


def cache_of(request: Request) -> OpenApiCache:
    state = request.app.state
    cache = getattr(state, "openapi_cache", None)
    if cache is None:
        cache = state.openapi_cache = OpenApiCache()
    return cache


async def document(request: Request) -> tuple[dict[str, Any], bytes]:
    """The (cached) document for this request's base URL, built off the event loop."""
    svc: Services = request.app.state.services
    return await anyio.to_thread.run_sync(cache_of(request).get, svc, base_url(request, svc))


async def openapi_json(request: Request) -> Response:
    """``GET /openapi.json``."""
    _, body = await document(request)
    return Response(body, media_type="application/json")

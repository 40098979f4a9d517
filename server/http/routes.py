"""The whole REST route table (http://hl7.org/fhir/R4/http.html#summary) in one place.

Each handler is a few lines: pull inputs off the :class:`Call`, run one interaction.
Specific paths come before the generic ``/{type}/{id}`` ones.
"""

from __future__ import annotations

from typing import Literal

from starlette.convertors import Convertor, register_url_convertor
from starlette.routing import BaseRoute, Route

from server.bundles.transaction import process
from server.errors import BadRequest
from server.fhir.instant import parse_http_date
from server.http.bulk import bulk_routes
from server.http.endpoint import Call, base_url, endpoint
from server.http.landing import landing_page, wants_html
from server.http.operations import invoke
from server.interactions import compartment, create, delete, history, patch, read, search, update
from server.interactions.capabilities import capability_statement
from server.interactions.conditional import create_criteria
from server.interactions.result import Result
from server.interactions.write import parse_etag


class ResourceTypeConvertor(Convertor[str]):
    """Resource types start with a capital letter, so ``/metadata`` or ``/_history`` never match
    ``/{type}`` and get a proper 405 for methods they do not take."""

    regex = "[A-Z][A-Za-z]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("rtype", ResourceTypeConvertor())


class OperationConvertor(Convertor[str]):
    """``$name`` path segments (http://hl7.org/fhir/R4/operations.html)."""

    regex = r"\$[A-Za-z][A-Za-z0-9\-]*"

    def convert(self, value: str) -> str:
        return value[1:]

    def to_string(self, value: str) -> str:
        return "$" + value


register_url_convertor("op", OperationConvertor())


def _criteria(call: Call) -> str:
    query = call.request.url.query
    if not query:
        raise BadRequest(f"{call.request.method} on a type needs search criteria (Type?param=value)")
    return query


async def metadata(call: Call) -> Result:
    return Result(200, resource=capability_statement(call.svc, base=call.base))


async def base_post(call: Call) -> Result:
    body = await call.resource()
    if body.get("resourceType") != "Bundle":
        raise BadRequest("POST to the base URL takes a batch or transaction Bundle", expression=("resourceType",))
    return await process(call.svc, body, base=call.base, representation=call.neg.prefer_return == "representation")


async def system_search(call: Call) -> Result:
    # ``_type`` is a search parameter of the system search: the parser reads it (and checks it)
    return await search.search(call.svc, call.params, base=call.base, types=(), strict=call.neg.strict)


async def system_history(call: Call) -> Result:
    return await history.history(call.svc, call.params, base=call.base)


async def type_search(call: Call) -> Result:
    type_ = call.path("type")
    return await search.search(call.svc, call.params, base=call.base, types=(type_,), strict=call.neg.strict,
                               path=type_)


async def type_search_post(call: Call) -> Result:
    type_ = call.path("type")
    params = [*call.params, *await call.form()]
    return await search.search(call.svc, params, base=call.base, types=(type_,), strict=call.neg.strict,
                               path=type_)


async def type_create(call: Call) -> Result:
    type_ = call.path("type")
    criteria = create_criteria(type_, call.request.headers.get("if-none-exist"), call.request.url.query,
                               base=call.base)
    return await create.create(call.svc, type_, await call.resource(), if_none_exist=criteria)


async def type_conditional_update(call: Call) -> Result:
    return await update.conditional_update(call.svc, call.path("type"), _criteria(call), await call.resource(),
                                           if_match=parse_etag(call.request.headers.get("if-match")))


async def type_conditional_delete(call: Call) -> Result:
    return await delete.conditional_delete(call.svc, call.path("type"), _criteria(call))


async def type_conditional_patch(call: Call) -> Result:
    return await patch.conditional_patch(call.svc, call.path("type"), _criteria(call), await call.json_patch(),
                                         if_match=parse_etag(call.request.headers.get("if-match")))


async def type_history(call: Call) -> Result:
    return await history.history(call.svc, call.params, base=call.base, type_=call.path("type"))


async def instance_read(call: Call) -> Result:
    headers = call.request.headers
    since = headers.get("if-modified-since")
    result = await read.read(call.svc, call.path("type"), call.path("id"),
                             if_none_match=parse_etag(headers.get("if-none-match")),
                             if_modified_since=parse_http_date(since) if since else None)
    return read.subset(result, call.request.query_params)


async def instance_update(call: Call) -> Result:
    return await update.update(call.svc, call.path("type"), call.path("id"), await call.resource(),
                               if_match=parse_etag(call.request.headers.get("if-match")))


async def instance_delete(call: Call) -> Result:
    return await delete.delete(call.svc, call.path("type"), call.path("id"),
                               if_match=parse_etag(call.request.headers.get("if-match")))


async def instance_patch(call: Call) -> Result:
    return await patch.patch(call.svc, call.path("type"), call.path("id"), await call.json_patch(),
                             if_match=parse_etag(call.request.headers.get("if-match")))


async def instance_history(call: Call) -> Result:
    return await history.history(call.svc, call.params, base=call.base, type_=call.path("type"),
                                 id_=call.path("id"))


async def instance_vread(call: Call) -> Result:
    return await read.vread(call.svc, call.path("type"), call.path("id"), call.path("vid"))


async def compartment_search(call: Call) -> Result:
    type_ = call.path("rtype") if "rtype" in call.request.path_params else None
    return await compartment.compartment_search(
        call.svc, call.params, base=call.base, compartment_type=call.path("type"), owner_id=call.path("id"),
        type_=type_, strict=call.neg.strict)


async def compartment_search_post(call: Call) -> Result:
    params = [*call.params, *await call.form()]
    return await compartment.compartment_search(
        call.svc, params, base=call.base, compartment_type=call.path("type"), owner_id=call.path("id"),
        type_=call.path("rtype"), strict=call.neg.strict)


async def operation(call: Call) -> Result:
    params = call.request.path_params
    level: Literal["system", "type", "instance"] = (
        "instance" if "id" in params else "type" if "type" in params else "system")
    return await invoke(call, level)


ROUTES: list[tuple[str, str, str, object]] = [
    # path, method, interaction (metrics label), handler
    ("/metadata", "GET", "capabilities", metadata),
    ("/{name:op}", "GET", "operation", operation),
    ("/{name:op}", "POST", "operation", operation),
    ("/{type:rtype}/{name:op}", "GET", "operation", operation),
    ("/{type:rtype}/{name:op}", "POST", "operation", operation),
    ("/{type:rtype}/{id}/{name:op}", "GET", "operation", operation),
    ("/{type:rtype}/{id}/{name:op}", "POST", "operation", operation),
    ("/", "POST", "transaction", base_post),
    ("/", "GET", "search-system", system_search),
    ("/_history", "GET", "history-system", system_history),
    ("/{type:rtype}/_history", "GET", "history-type", type_history),
    ("/{type:rtype}/_search", "POST", "search-type", type_search_post),
    ("/{type:rtype}", "GET", "search-type", type_search),
    ("/{type:rtype}", "POST", "create", type_create),
    ("/{type:rtype}", "PUT", "update", type_conditional_update),
    ("/{type:rtype}", "DELETE", "delete", type_conditional_delete),
    ("/{type:rtype}", "PATCH", "patch", type_conditional_patch),
    ("/{type:rtype}/{id}/*", "GET", "search-compartment", compartment_search),
    ("/{type:rtype}/{id}/{rtype:rtype}", "GET", "search-compartment", compartment_search),
    ("/{type:rtype}/{id}/{rtype:rtype}/_search", "POST", "search-compartment", compartment_search_post),
    ("/{type:rtype}/{id}/_history/{vid}", "GET", "vread", instance_vread),
    ("/{type:rtype}/{id}/_history", "GET", "history-instance", instance_history),
    ("/{type:rtype}/{id}", "GET", "read", instance_read),
    ("/{type:rtype}/{id}", "PUT", "update", instance_update),
    ("/{type:rtype}/{id}", "DELETE", "delete", instance_delete),
    ("/{type:rtype}/{id}", "PATCH", "patch", instance_patch),
]


def fhir_routes() -> list[BaseRoute]:
    """Starlette routes, one per path with every method it answers (others get 405)."""
    by_path: dict[str, dict[str, tuple[str, object]]] = {}
    for path, method, interaction, handler in ROUTES:
        by_path.setdefault(path, {})[method] = (interaction, handler)
    routes: list[BaseRoute] = []
    for path, methods in by_path.items():
        wrapped = {m: endpoint(i, h) for m, (i, h) in methods.items()}  # type: ignore[arg-type]

        async def dispatch(request, wrapped=wrapped, path=path):  # type: ignore[no-untyped-def]
            method = "GET" if request.method == "HEAD" else request.method
            if path == "/" and method == "GET" and wants_html(request):  # a browser at the base URL
                svc = request.app.state.services
                return landing_page(base_url(request, svc), svc.store.kind)
            return await wrapped[method](request)

        allowed = sorted(set(methods) | ({"HEAD"} if "GET" in methods else set()))
        routes.append(Route(path, dispatch, methods=allowed))
    return [*bulk_routes(), *routes]  # bulk data status and files (issue 16 §2)

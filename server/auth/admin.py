"""The administration REST API: registered clients and local users (role ``platform`` only).

``GET/POST /admin/clients``, ``GET/DELETE /admin/clients/{id}``, ``GET/POST /admin/users``,
``GET/DELETE /admin/users/{name}``, ``PUT /admin/users/{name}/password``. Bodies are JSON objects
whose members mirror the ``yidang clients add`` / ``yidang users add`` options; a bad member is a
400 OperationOutcome naming it, an unknown id a 404, a duplicate a 409. Password hashes are never
answered. With authorization off the API is open like the rest of the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.access.principal import Role
from server.auth import users
from server.auth.clients import ClientRecord, add_client, get_client, list_clients, patient_id, remove_client
from server.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge

if TYPE_CHECKING:
    from server.auth.service import AuthService

MAX_BODY_BYTES = 1024 * 1024
CLIENT_FIELDS: dict[str, type] = {"id": str, "role": str, "institution": str, "scope": str, "jwks": dict,
                                   "jwks_url": str, "patient": str, "redirect_uris": list, "public": bool}
USER_FIELDS: dict[str, type] = {"name": str, "password": str, "role": str, "institution": str, "scope": str,
                                 "patient": str}
REQUIRED_CLIENT = ("id", "role", "institution", "scope")
REQUIRED_USER = ("name", "password", "role", "institution", "scope")
TYPE_NAMES = {str: "a string", dict: "a JSON object", list: "an array of strings", bool: "true or false"}


async def json_body(request: Request, fields: Mapping[str, type], required: tuple[str, ...]) -> dict[str, Any]:
    """The request's JSON object, each member of the type ``fields`` says; BadRequest naming the member."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"the body exceeds {MAX_BODY_BYTES} bytes")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    for name, value in data.items():
        wanted = fields.get(name)
        if wanted is None:
            raise BadRequest(f"unknown member '{name}' (known: {', '.join(fields)})", expression=[name])
        if value is not None and not isinstance(value, wanted):
            raise BadRequest(f"{name} must be {TYPE_NAMES[wanted]}", expression=[name])
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise BadRequest(f"{name} must be an array of strings", expression=[name])
    for name in required:
        if data.get(name) in (None, ""):
            raise BadRequest(f"{name} is required", expression=[name])
    return data


def client_from(data: dict[str, Any]) -> ClientRecord:
    patient = data.get("patient")
    return ClientRecord(id=data["id"], role=cast(Role, data["role"]), institution=data["institution"],
                        scope=" ".join(data["scope"].split()), jwks=data.get("jwks"), jwks_url=data.get("jwks_url"),
                        patient=patient_id(patient) if patient else None,
                        redirect_uris=tuple(data.get("redirect_uris") or ()), public=bool(data.get("public")))


def admin_routes(auth_service: AuthService) -> list[BaseRoute]:
    """The ``/admin/…`` routes, each requiring a principal of role ``platform``."""
    store = auth_service.store

    async def platform(request: Request) -> None:
        principal = await auth_service.principal(request)
        if principal.role != "platform":
            raise Forbidden("administration needs the role platform")

    async def clients_list(request: Request) -> Response:
        await platform(request)
        return JSONResponse([c.to_json() for c in await list_clients(store)])

    async def clients_add(request: Request) -> Response:
        await platform(request)
        record = client_from(await json_body(request, CLIENT_FIELDS, REQUIRED_CLIENT))
        await add_client(store, record)
        added = await get_client(store, record.id)
        return JSONResponse((added or record).to_json(), status_code=201,
                            headers={"Location": f"{request.url.path.rstrip('/')}/{record.id}"})

    async def clients_show(request: Request) -> Response:
        await platform(request)
        found = await get_client(store, request.path_params["id"])
        if found is None:
            raise NotFound(f"no client '{request.path_params['id']}'")
        return JSONResponse(found.to_json())

    async def clients_remove(request: Request) -> Response:
        await platform(request)
        if not await remove_client(store, request.path_params["id"]):
            raise NotFound(f"no client '{request.path_params['id']}'")
        return Response(status_code=204)

    async def users_list(request: Request) -> Response:
        await platform(request)
        return JSONResponse([u.to_public() for u in await users.list_users(store)])

    async def users_add(request: Request) -> Response:
        await platform(request)
        data = await json_body(request, USER_FIELDS, REQUIRED_USER)
        record = await users.add_user(store, data["name"], data["password"], role=data["role"],
                                      institution=data["institution"], scope=data["scope"],
                                      patient=data.get("patient"))
        return JSONResponse(record.to_public(), status_code=201,
                            headers={"Location": f"{request.url.path.rstrip('/')}/{record.name}"})

    async def users_show(request: Request) -> Response:
        await platform(request)
        found = await users.get_user(store, request.path_params["name"])
        if found is None:
            raise NotFound(f"no user '{request.path_params['name']}'")
        return JSONResponse(found.to_public())

    async def users_remove(request: Request) -> Response:
        await platform(request)
        if not await users.remove_user(store, request.path_params["name"]):
            raise NotFound(f"no user '{request.path_params['name']}'")
        return Response(status_code=204)

    async def users_password(request: Request) -> Response:
        await platform(request)
        data = await json_body(request, {"password": str}, ("password",))
        await users.set_password(store, request.path_params["name"], data["password"])
        return Response(status_code=204)

    return [
        Route("/admin/clients", clients_list, methods=["GET"]),
        Route("/admin/clients", clients_add, methods=["POST"]),
        Route("/admin/clients/{id}", clients_show, methods=["GET"]),
        Route("/admin/clients/{id}", clients_remove, methods=["DELETE"]),
        Route("/admin/users", users_list, methods=["GET"]),
        Route("/admin/users", users_add, methods=["POST"]),
        Route("/admin/users/{name}", users_show, methods=["GET"]),
        Route("/admin/users/{name}", users_remove, methods=["DELETE"]),
        Route("/admin/users/{name}/password", users_password, methods=["PUT"]),
    ]

"""``POST /auth/introspect`` (RFC 7662) and ``POST /auth/revoke`` (RFC 7009) on both stores."""

from __future__ import annotations

import time

import httpx
import jwt

from tests.auth.conftest import BASE, AuthApp, Registered, get_token, register, token_form


def with_assertion(caller: Registered, **form: str) -> dict[str, str]:
    signed = token_form(caller.assertion())
    return {"client_assertion_type": signed["client_assertion_type"], "client_assertion": signed["client_assertion"],
            **form}


async def test_introspect_active_and_inactive(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store, role="institution", scope="system/Observation.rs")
    resource_server = await register(auth_app.store)
    token = await get_token(http, client)
    response = await http.post("/auth/introspect", data=with_assertion(resource_server, token=token))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["active"] is True
    assert body["client_id"] == body["sub"] == client.id
    assert body["scope"] == "system/Observation.rs"
    assert body["role"] == "institution" and body["kind"] == "client"
    assert body["iss"] == BASE and body["aud"] == BASE
    assert body["exp"] > time.time()
    # a bearer token of a registered client authenticates the caller too
    caller_token = await get_token(http, resource_server)
    auth = {"Authorization": f"Bearer {caller_token}"}
    assert (await http.post("/auth/introspect", data={"token": token}, headers=auth)).json()["active"] is True
    for bad in ("garbage", token[:-4] + "AAAA", jwt.encode({"iss": BASE}, "x" * 40, algorithm="HS256")):
        response = await http.post("/auth/introspect", data={"token": bad}, headers=auth)
        assert response.status_code == 200 and response.json() == {"active": False}


async def test_introspect_needs_an_authenticated_client(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store)
    token = await get_token(http, client)
    response = await http.post("/auth/introspect", data={"token": token})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    response = await http.post("/auth/introspect", data={"token": token}, headers={"Authorization": "Bearer bad"})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    response = await http.post("/auth/introspect", data=with_assertion(client))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_revoke(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store)
    token = await get_token(http, client)
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await http.get("/Patient?_count=1", headers=bearer)).status_code == 200
    other = await get_token(http, client)
    response = await http.post("/auth/revoke", data=with_assertion(client, token=token))
    assert response.status_code == 200, response.text
    assert (await http.get("/Patient?_count=1", headers=bearer)).status_code == 401
    introspected = await http.post("/auth/introspect", data=with_assertion(client, token=token))
    assert introspected.json() == {"active": False}
    # unknown or already revoked tokens: 200 all the same
    assert (await http.post("/auth/revoke", data=with_assertion(client, token=token))).status_code == 200
    assert (await http.post("/auth/revoke", data=with_assertion(client, token="nonsense"))).status_code == 200
    # a client revokes its own token with it as the bearer
    response = await http.post("/auth/revoke", data={"token": other}, headers={"Authorization": f"Bearer {other}"})
    assert response.status_code == 200
    assert (await http.get("/Patient?_count=1", headers={"Authorization": f"Bearer {other}"})).status_code == 401


async def test_revoking_another_clients_token(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    owner = await register(auth_app.store, role="institution", scope="system/Patient.rs")
    stranger = await register(auth_app.store, role="institution", scope="system/Patient.rs")
    token = await get_token(http, owner)
    response = await http.post("/auth/revoke", data=with_assertion(stranger, token=token))
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    assert (await http.post("/auth/introspect", data=with_assertion(owner, token=token))).json()["active"]
    platform = await register(auth_app.store)  # platform operators may revoke any token
    assert (await http.post("/auth/revoke", data=with_assertion(platform, token=token))).status_code == 200
    assert not (await http.post("/auth/introspect", data=with_assertion(owner, token=token))).json()["active"]


async def test_revoke_needs_an_authenticated_client(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store)
    token = await get_token(http, client)
    response = await http.post("/auth/revoke", data={"token": token})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert (await http.get("/Patient?_count=1", headers={"Authorization": f"Bearer {token}"})).status_code == 200

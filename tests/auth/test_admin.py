"""The administration REST API on both stores: platform role only (401 without a token, 403 for any
other role), CRUD of clients and users, errors naming the field, and never a secret in an answer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from argon2 import PasswordHasher

from server.access.principal import Role
from server.app import create_app
from server.auth import passwords
from server.auth.clients import ClientRecord, add_client
from server.auth.users import add_user, check_password
from server.settings import Settings
from server.stores.base import Store
from tests.auth.conftest import INSTITUTION, AuthApp, make_auth_app, public_jwk, rsa_key
from tests.conftest import BASE

PASSWORD = "admin password 1"


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest_asyncio.fixture(scope="module")
async def admin_app(store: Store, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AuthApp]:
    wired = make_auth_app(store, tmp_path_factory.mktemp("keys"))  # create_app mounts /admin/*
    await add_client(store, ClientRecord("admin-console", "platform", INSTITUTION, "user/*.cruds",
                                         redirect_uris=("https://console.example/cb",), public=True))
    yield wired


async def token(app: AuthApp, role: Role) -> str:
    """A user token of ``role`` (the user registered, as the token service checks)."""
    name = f"op-{uuid.uuid4().hex[:8]}"
    patient = "p1" if role == "resident" else None
    await add_user(app.store, name, PASSWORD, role=role, institution=INSTITUTION,
                   scope="patient/*.rs" if patient else "user/*.rs", patient=patient)
    body = await app.auth.tokens.issue(subject=name, client_id="admin-console", kind="user", role=role,
                                       institution=INSTITUTION, scope="user/*.rs", patient=patient, lifetime=300,
                                       audience=BASE)
    return str(body["access_token"])


@pytest_asyncio.fixture(scope="module")
async def admin(admin_app: AuthApp) -> AsyncIterator[httpx.AsyncClient]:
    async with admin_app.client() as http:
        http.headers["Authorization"] = f"Bearer {await token(admin_app, 'platform')}"
        yield http


def jwks() -> dict[str, Any]:
    return {"keys": [public_jwk(rsa_key(), "k1")]}


def outcome_field(response: httpx.Response) -> str:
    issue = response.json()["issue"][0]
    return str(issue["expression"][0])


# --- who may ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/admin/clients", "/admin/users", "/admin/clients/x", "/admin/users/x"])
async def test_no_token_is_401(admin_app: AuthApp, path: str) -> None:
    async with admin_app.client() as http:
        response = await http.get(path)
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("role", ["institution", "district", "auditor", "resident"])
async def test_other_roles_are_403(admin_app: AuthApp, role: Role) -> None:
    async with admin_app.client() as http:
        http.headers["Authorization"] = f"Bearer {await token(admin_app, role)}"
        for method, path, body in [("GET", "/admin/clients", None), ("GET", "/admin/users", None),
                                   ("POST", "/admin/users", {"name": "intruder"}),
                                   ("DELETE", "/admin/clients/admin-console", None),
                                   ("PUT", "/admin/users/someone/password", {"password": "x" * 12})]:
            response = await http.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["issue"][0]["code"] == "forbidden"
    assert await admin_app.store.kv_get("clients", "admin-console") is not None


async def test_with_authorization_off_it_is_open(store: Store, tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = Settings(base_url=BASE, log_requests=False, auth_keys_dir=tmp_path_factory.mktemp("keys"))
    app = create_app(settings, store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE) as http:
        assert (await http.get("/admin/users")).status_code == 200


# --- clients ------------------------------------------------------------------------------------

async def test_client_crud(admin: httpx.AsyncClient) -> None:
    client_id = f"svc-{uuid.uuid4().hex[:8]}"
    keys = jwks()
    body = {"id": client_id, "role": "institution", "institution": INSTITUTION, "scope": "system/*.rs",
            "jwks": keys}
    created = await admin.post("/admin/clients", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["id"] == client_id and created.json()["jwks"] == keys
    assert created.headers["location"].endswith(f"/admin/clients/{client_id}")
    shown = await admin.get(f"/admin/clients/{client_id}")
    assert shown.status_code == 200 and shown.json()["role"] == "institution" and shown.json()["created"] > 0
    assert client_id in [c["id"] for c in (await admin.get("/admin/clients")).json()]
    again = await admin.post("/admin/clients", json=body)
    assert again.status_code == 409
    assert (await admin.delete(f"/admin/clients/{client_id}")).status_code == 204
    assert (await admin.get(f"/admin/clients/{client_id}")).status_code == 404
    assert (await admin.delete(f"/admin/clients/{client_id}")).status_code == 404


async def test_public_app_client_with_patient(admin: httpx.AsyncClient) -> None:
    client_id = f"app-{uuid.uuid4().hex[:8]}"
    created = await admin.post("/admin/clients", json={
        "id": client_id, "role": "resident", "institution": INSTITUTION, "scope": "patient/*.rs launch/patient",
        "patient": "Patient/p-9", "redirect_uris": ["https://app.example/cb"], "public": True})
    assert created.status_code == 201, created.text
    assert created.json()["patient"] == "p-9" and created.json()["public"] is True


@pytest.mark.parametrize(("change", "field"), [
    ({"role": "root"}, "role"),
    ({"institution": "no spaces allowed"}, "institution"),
    ({"scope": "all the things"}, "scope"),
    ({"scope": None}, "scope"),
    ({"id": ""}, "id"),
    ({"jwks": "not an object"}, "jwks"),
    ({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, "jwks"),
    ({"redirect_uris": "https://x.example/cb"}, "redirect_uris"),
    ({"redirect_uris": [1]}, "redirect_uris"),
    ({"public": "yes"}, "public"),
    ({"colour": "blue"}, "colour"),
    ({"patient": "Patient/p1"}, "patient"),
])
async def test_bad_client_fields_are_400_naming_the_field(admin: httpx.AsyncClient, change: dict[str, Any],
                                                          field: str) -> None:
    body = {"id": f"bad-{uuid.uuid4().hex[:8]}", "role": "institution", "institution": INSTITUTION,
            "scope": "system/*.rs", "jwks": jwks(), **change}
    response = await admin.post("/admin/clients", json=body)
    assert response.status_code == 400, response.text
    assert outcome_field(response) == field


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"text"'])
async def test_a_body_that_is_not_an_object_is_400(admin: httpx.AsyncClient, raw: bytes) -> None:
    response = await admin.post("/admin/clients", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "JSON object" in response.text


# --- users --------------------------------------------------------------------------------------

async def test_user_crud_and_password_never_answered(admin_app: AuthApp, admin: httpx.AsyncClient) -> None:
    name = f"nurse-{uuid.uuid4().hex[:8]}"
    created = await admin.post("/admin/users", json={"name": name, "password": PASSWORD, "role": "institution",
                                                     "institution": INSTITUTION, "scope": "user/*.rs"})
    assert created.status_code == 201, created.text
    assert created.json() == {"name": name, "role": "institution", "institution": INSTITUTION,
                              "scope": "user/*.rs", "created": created.json()["created"]}
    listed = await admin.get("/admin/users")
    shown = await admin.get(f"/admin/users/{name}")
    for response in (created, listed, shown):
        assert "password" not in response.text and "argon2" not in response.text and PASSWORD not in response.text
    assert name in [u["name"] for u in listed.json()]
    duplicate = await admin.post("/admin/users", json={"name": name, "password": PASSWORD, "role": "institution",
                                                       "institution": INSTITUTION, "scope": "user/*.rs"})
    assert duplicate.status_code == 409
    changed = await admin.put(f"/admin/users/{name}/password", json={"password": "a brand new one"})
    assert changed.status_code == 204
    assert await check_password(admin_app.store, name, "a brand new one") is not None
    assert await check_password(admin_app.store, name, PASSWORD) is None
    short = await admin.put(f"/admin/users/{name}/password", json={"password": "short"})
    assert short.status_code == 400 and outcome_field(short) == "password" and "short" not in short.text
    assert (await admin.put("/admin/users/nobody-x/password", json={"password": "long enough now"})).status_code == 404
    assert (await admin.delete(f"/admin/users/{name}")).status_code == 204
    assert (await admin.get(f"/admin/users/{name}")).status_code == 404
    assert (await admin.delete(f"/admin/users/{name}")).status_code == 404


@pytest.mark.parametrize(("change", "field"), [
    ({"password": "too short"}, "password"),
    ({"password": None}, "password"),
    ({"name": "two words"}, "name"),
    ({"role": "resident"}, "patient"),
    ({"scope": 5}, "scope"),
    ({"password_hash": "$argon2id$..."}, "password_hash"),
])
async def test_bad_user_fields_are_400_naming_the_field(admin: httpx.AsyncClient, change: dict[str, Any],
                                                        field: str) -> None:
    body = {"name": f"u-{uuid.uuid4().hex[:8]}", "password": PASSWORD, "role": "institution",
            "institution": INSTITUTION, "scope": "user/*.rs", **change}
    response = await admin.post("/admin/users", json=body)
    assert response.status_code == 400, response.text
    assert outcome_field(response) == field
    assert PASSWORD not in response.text

"""Attacks on tokens and the auth endpoints (issue 13 §2, §4), on both stores: each test is one
attempt found to work (fixed with it) or checked not to, kept as a regression test."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt
import pytest

from server.auth import tokens
from server.auth.clients import ClientRecord, add_client, remove_client
from server.auth.users import add_user, remove_user
from tests.auth.conftest import (
    INSTITUTION,
    AuthApp,
    get_token,
    make_auth_app,
    public_jwk,
    register,
    rsa_key,
    token_form,
)
from tests.conftest import BASE

pytestmark = pytest.mark.asyncio


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_of_a_client_registered_anew_with_another_role_is_refused(
        http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    """Removing a client and registering its id again (another role or institution) left its old
    tokens working with the old role: a platform token outlived the platform client it was issued to."""
    client = await register(auth_app.store, role="platform")
    token = await get_token(http, client)
    assert (await http.get("/admin/clients", headers=bearer(token))).status_code == 200
    await remove_client(auth_app.store, client.id)
    await add_client(auth_app.store, ClientRecord(client.id, "institution", "X12345678", "system/*.rs",
                                                  jwks={"keys": [public_jwk(client.key, "k1")]}))
    for path in ("/admin/clients", "/Patient"):
        r = await http.get(path, headers=bearer(token))
        assert r.status_code == 401, (path, r.text)
    assert (await http.post("/auth/introspect", data={"token": token},
                            headers=bearer(await get_token(http, client)))).json() == {"active": False}


async def test_a_token_of_a_user_registered_anew_with_another_role_is_refused(
        auth_app: AuthApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """As for clients; a user's change is noticed within a second (RECHECK_S, here at once)."""
    monkeypatch.setattr(tokens, "RECHECK_S", 0.0)
    name, portal = f"u{uuid.uuid4().hex[:8]}", f"portal-{uuid.uuid4().hex[:8]}"
    await add_user(auth_app.store, name, "pw-1234567890", role="platform", institution=INSTITUTION,
                   scope="user/*.cruds")
    issued = await auth_app.auth.tokens.issue(subject=name, client_id=portal, kind="user", role="platform",
                                              institution=INSTITUTION, scope="user/*.cruds", patient=None,
                                              lifetime=300, audience=BASE)
    await add_client(auth_app.store, ClientRecord(portal, "institution", INSTITUTION, "user/*.cruds",
                                                  redirect_uris=("https://portal.example.org/cb",), public=True))
    async with auth_app.client() as http:
        assert (await http.get("/admin/users", headers=bearer(issued["access_token"]))).status_code == 200
        await remove_user(auth_app.store, name)
        await add_user(auth_app.store, name, "pw-1234567890", role="resident", institution=INSTITUTION,
                       scope="patient/*.rs", patient="p-1")
        r = await http.get("/admin/users", headers=bearer(issued["access_token"]))
        assert r.status_code == 401, r.text


async def test_two_authorization_headers_are_refused(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    """With two headers the first was taken: a proxy that checks the last one and the server would
    disagree about who is asking."""
    client = await register(auth_app.store)
    token = await get_token(http, client)
    for first, second in ((token, "junk"), ("junk", token)):
        r = await http.get("/Patient", headers=[("Authorization", f"Bearer {first}"),
                                                ("Authorization", f"Bearer {second}")])
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), r.text
        r = await http.post("/auth/introspect", data={"token": token},
                            headers=[("Authorization", f"Bearer {first}"), ("Authorization", f"Bearer {second}")])
        assert r.status_code == 401


async def test_header_injected_keys_and_kid_paths_are_ignored(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store)
    key = rsa_key()
    now = int(time.time())
    claims = {"iss": BASE, "sub": client.id, "aud": BASE, "iat": now, "nbf": now, "exp": now + 300,
              "jti": uuid.uuid4().hex, "scope": "system/*.cruds", "client_id": client.id, "role": "platform",
              "institution": INSTITUTION, "kind": "client"}
    ours = auth_app.auth.keys.signing_key().kid
    for headers in ({"kid": ours, "jwk": public_jwk(key, "x")}, {"kid": ours, "jku": "https://evil.example/jwks"},
                    {"kid": ours, "x5u": "https://evil.example/cert"}, {"kid": "../../../../etc/passwd"},
                    {"kid": "../" + auth_app.keys_dir.name}):
        token = jwt.encode(claims, key, algorithm="RS256", headers=headers)
        assert (await http.get("/Patient", headers=bearer(token))).status_code == 401, headers
    for junk in ("a" * 100_000, "eyJ" + "a" * 20_000 + ".b.c", "a.b.c", "..", "Bearer"):
        r = await http.get("/Patient", headers=bearer(junk))
        assert r.status_code == 401, junk[:20]


async def test_scope_escalation_at_the_token_endpoint(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store, role="institution", scope="system/Observation.rs")
    for asked in ("system/*.*", "system/Patient.rs", "launch/patient"):
        r = await http.post("/auth/token", data=token_form(client.assertion(), asked))
        assert r.status_code == 400 and r.json()["error"] == "invalid_scope", asked
    # more permissions than registered: the server grants fewer (SMART lets it), never more
    r = await http.post("/auth/token", data=token_form(client.assertion(), "system/Observation.cruds"))
    assert r.status_code == 200 and r.json()["scope"] == "system/Observation.rs"
    r = await http.post("/auth/token", data=token_form(client.assertion(), "system/Observation.rs launch/patient"))
    assert r.status_code == 200 and r.json()["scope"] == "system/Observation.rs" and "patient" not in r.json()


async def test_admin_api_needs_the_platform(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store, role="institution")
    token = await get_token(http, client)
    evil = {"id": f"evil-{uuid.uuid4().hex[:6]}", "role": "platform", "institution": INSTITUTION,
            "scope": "system/*.cruds", "jwks": {"keys": [public_jwk(rsa_key(), "k1")]}}
    assert (await http.post("/admin/clients", json=evil, headers=bearer(token))).status_code == 403
    assert (await http.get(f"/admin/clients/{evil['id']}", headers=bearer(await get_token(
        http, await register(auth_app.store))))).status_code == 404


async def test_metrics_need_a_platform_token_and_readyz_is_configurable(
        store: object, tmp_path_factory: pytest.TempPathFactory) -> None:
    """``/metrics`` answered anyone under ``--auth smart`` although the README says a platform token
    is needed unless YIDANG_PUBLIC_METRICS=true; YIDANG_PUBLIC_READYZ=false changed nothing."""
    app = make_auth_app(store, tmp_path_factory.mktemp("keys"), public_readyz=False)  # type: ignore[arg-type]
    async with app.client() as http:
        platform = await get_token(http, await register(app.store))
        institution = await get_token(http, await register(app.store, role="institution"))
        r = await http.get("/metrics")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert (await http.get("/metrics", headers=bearer(institution))).status_code == 403
        assert (await http.get("/metrics", headers=bearer(platform))).status_code == 200
        assert (await http.get("/readyz")).status_code == 401
        assert (await http.get("/readyz", headers=bearer(institution))).status_code == 200
        assert (await http.get("/healthz")).status_code == 200
    app = make_auth_app(store, tmp_path_factory.mktemp("keys"), public_metrics=True)  # type: ignore[arg-type]
    async with app.client() as http:
        assert (await http.get("/metrics")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200

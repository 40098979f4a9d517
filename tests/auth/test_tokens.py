"""Access tokens against the FHIR API on both stores: a valid token reads; every defect of issue 13
§2 is a 401 with ``WWW-Authenticate: Bearer`` and an OperationOutcome naming it."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from server.auth.clients import remove_client
from server.auth.keys import rotate
from tests.auth.conftest import INSTITUTION, AuthApp, get_token, register
from tests.conftest import BASE

READ = "/Patient?_count=1"


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {"iss": BASE, "sub": "nobody", "aud": BASE, "iat": now, "nbf": now, "exp": now + 300,
                            "jti": uuid.uuid4().hex, "scope": "system/*.cruds", "client_id": "nobody",
                            "role": "platform", "institution": INSTITUTION, "kind": "client"}
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


async def forged(auth_app: AuthApp, **over: Any) -> str:
    """A token signed with the server's own key, for a registered client, with claims changed."""
    client = await register(auth_app.store)
    key = auth_app.auth.keys.signing_key()
    return jwt.encode(claims(sub=client.id, client_id=client.id, **over), key.private_key, algorithm="RS256",
                      headers={"kid": key.kid})


async def read(http: httpx.AsyncClient, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await http.get(READ, headers=headers)


def refused(response: httpx.Response, words: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert words in body["issue"][0]["diagnostics"], body


async def test_a_valid_token_reads(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store)
    assert (await read(http, await get_token(http, client))).status_code == 200
    assert (await read(http, await forged(auth_app))).status_code == 200


async def test_no_token_or_a_malformed_header(http: httpx.AsyncClient) -> None:
    refused(await read(http, None), "bearer token")
    response = await http.get(READ, headers={"Authorization": "Basic dXNlcjpwdw=="})
    refused(response, "Bearer")
    refused(await read(http, "not-a-jwt"), "not a JWT")


async def test_alg_none(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    good = await forged(auth_app)
    payload = good.split(".")[1]
    refused(await read(http, f"{header}.{payload}."), "alg")


async def test_hmac_signed_with_the_public_key(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    key = auth_app.auth.keys.signing_key()
    public_pem = key.private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    client = await register(auth_app.store)
    body = claims(sub=client.id, client_id=client.id)
    # PyJWT refuses to HMAC-sign with a PEM key, so sign by hand: the classic key-confusion attack
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    pay = b64(json.dumps(body).encode())
    sig = b64(hmac.new(public_pem, f"{head}.{pay}".encode(), hashlib.sha256).digest())
    refused(await read(http, f"{head}.{pay}.{sig}"), "alg 'HS256'")


async def test_wrong_issuer_and_audience(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    refused(await read(http, await forged(auth_app, iss="https://elsewhere.example/fhir")), "issuer")
    refused(await read(http, await forged(auth_app, aud="https://elsewhere.example/fhir")), "aud")


async def test_expired_not_yet_valid_and_clock_skew(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    now = int(time.time())
    skew = auth_app.settings.clock_skew
    refused(await read(http, await forged(auth_app, iat=now - 1000, nbf=now - 1000, exp=now - skew - 30)),
            "expired")
    refused(await read(http, await forged(auth_app, nbf=now + skew + 30, iat=now)), "not yet valid")
    refused(await read(http, await forged(auth_app, iat=now + skew + 30, nbf=now)), "not yet valid")
    # within the allowed skew: accepted
    ok = await forged(auth_app, exp=now - skew // 2, iat=now - 400, nbf=now - 400)
    assert (await read(http, ok)).status_code == 200
    ok = await forged(auth_app, nbf=now + skew // 2, iat=now + skew // 2)
    assert (await read(http, ok)).status_code == 200


async def test_missing_claims(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    refused(await read(http, await forged(auth_app, exp=None)), "exp")
    refused(await read(http, await forged(auth_app, jti=None)), "jti")
    refused(await read(http, await forged(auth_app, role="superuser")), "role")


async def test_unknown_kid_and_a_foreign_key(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    key = auth_app.auth.keys.signing_key()
    client = await register(auth_app.store)
    body = claims(sub=client.id, client_id=client.id)
    token = jwt.encode(body, key.private_key, algorithm="RS256", headers={"kid": "no-such-kid"})
    refused(await read(http, token), "kid")
    from tests.auth.conftest import rsa_key

    other = jwt.encode(body, rsa_key(), algorithm="RS256", headers={"kid": key.kid})
    refused(await read(http, other), "signature")


async def test_a_removed_clients_token_stops_working(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store)
    token = await get_token(http, client)
    assert (await read(http, token)).status_code == 200
    assert await remove_client(auth_app.store, client.id)
    refused(await read(http, token), "no longer registered")


async def test_a_removed_client_seen_by_another_process_within_a_second(
        http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store)
    token = await get_token(http, client)
    assert (await read(http, token)).status_code == 200
    # another server removed it: straight in the store, this process's generation is unchanged
    assert await auth_app.store.kv_delete("clients", client.id)
    time.sleep(1.05)
    refused(await read(http, token), "no longer registered")


async def test_a_revoked_token_stops_working(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store)
    token = await get_token(http, client)
    other = await get_token(http, client)
    assert (await read(http, token)).status_code == 200
    await auth_app.auth.tokens.revoke(token, BASE)
    refused(await read(http, token), "revoked")
    assert (await read(http, other)).status_code == 200


async def test_a_token_revoked_by_another_process_within_a_second(
        http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store)
    token = await get_token(http, client)
    assert (await read(http, token)).status_code == 200
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    await auth_app.store.kv_put("revoked", jti, {}, expires=(int(time.time()) + 600) * 1_000_000)
    time.sleep(1.05)
    refused(await read(http, token), "revoked")


async def test_key_rotation_without_restart(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store)
    old_token = await get_token(http, client)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    new = rotate(auth_app.keys_dir)
    time.sleep(1.05)  # the directory is re-scanned at most once a second
    new_token = await get_token(http, client)
    assert jwt.get_unverified_header(new_token)["kid"] == new.kid != old_kid
    assert (await read(http, old_token)).status_code == 200
    assert (await read(http, new_token)).status_code == 200
    kids = {k["kid"] for k in (await http.get("/.well-known/jwks.json")).json()["keys"]}
    assert {old_kid, new.kid} <= kids
    # the old key removed: its tokens stop verifying (a cached one within a second too)
    for path in auth_app.keys_dir.glob("*.pem"):
        if path != new.path:
            path.unlink()
    time.sleep(1.05)
    refused(await read(http, old_token), "kid")
    refused(await read(http, await forged_with_kid(auth_app, client.id, old_kid)), "kid")
    assert (await read(http, new_token)).status_code == 200


async def forged_with_kid(auth_app: AuthApp, client_id: str, kid: str) -> str:
    key = auth_app.auth.keys.signing_key()
    return jwt.encode(claims(sub=client_id, client_id=client_id), key.private_key, algorithm="RS256",
                      headers={"kid": kid})


async def test_public_endpoints_need_no_token(http: httpx.AsyncClient) -> None:
    for path in ("/metadata", "/.well-known/smart-configuration", "/.well-known/jwks.json"):
        assert (await http.get(path)).status_code == 200, path


@pytest.mark.parametrize("scheme", ["bearer", "BEARER"])
async def test_the_scheme_is_case_insensitive(http: httpx.AsyncClient, auth_app: AuthApp, scheme: str) -> None:
    token = await forged(auth_app)
    assert (await http.get(READ, headers={"Authorization": f"{scheme} {token}"})).status_code == 200


async def test_with_authorization_off_the_principal_is_open(store: object, tmp_path_factory: pytest.TempPathFactory
                                                            ) -> None:
    from server.access.principal import OPEN
    from tests.auth.conftest import make_auth_app

    open_app = make_auth_app(store, tmp_path_factory.mktemp("keys"), auth="off")  # type: ignore[arg-type]
    async with open_app.client() as c:
        assert (await c.get(READ)).status_code == 200
        # nothing to discover: no token is needed, and none is issued
        assert (await c.get("/.well-known/smart-configuration")).status_code == 404
        assert (await c.post("/auth/token", data={"grant_type": "client_credentials"})).status_code in (404, 405)
    request = type("R", (), {"headers": {}})()
    assert await open_app.auth.principal(request) is OPEN  # type: ignore[arg-type]

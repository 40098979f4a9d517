"""SMART Backend Services (client_credentials + private_key_jwt) through ``POST /auth/token`` on
both stores: RS384 and ES384, JWKS inline and by URL, and every defect of a client assertion."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest

from server.auth.oauth import JWT_BEARER
from tests.auth.conftest import (
    BASE,
    TOKEN_URL,
    AuthApp,
    Registered,
    assertion,
    ec_key,
    public_jwk,
    register,
    rsa_key,
    token_form,
)


class JwksServer:
    """A JWKS URL on 127.0.0.1 (a thread): ``keys`` can change, ``hits`` counts fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.hits = 0
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JwksServer]:
    served = JwksServer()
    served.thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()


async def token(http: httpx.AsyncClient, signed: str, scope: str | None = None) -> httpx.Response:
    return await http.post("/auth/token", data=token_form(signed, scope))


def oauth_error(response: httpx.Response, error: str, words: str = "") -> None:
    assert response.status_code == (401 if error == "invalid_client" else 400), response.text
    body = response.json()
    assert body["error"] == error, body
    assert words in body["error_description"], body
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("make_key", [rsa_key, ec_key], ids=["RS384", "ES384"])
async def test_a_token_for_each_algorithm(http: httpx.AsyncClient, auth_app: AuthApp, make_key: Any) -> None:
    client = await register(auth_app.store, key=make_key(), scope="system/*.rs system/Observation.cruds")
    response = await token(http, client.assertion())
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == auth_app.settings.token_lifetime
    assert body["scope"] == "system/*.rs system/Observation.cruds"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == claims["client_id"] == client.id
    assert claims["iss"] == BASE and claims["aud"] == BASE
    assert claims["kind"] == "client" and claims["role"] == "platform"
    assert claims["exp"] - claims["iat"] == auth_app.settings.token_lifetime
    read = await http.get("/Patient?_count=1", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert read.status_code == 200, read.text


async def test_scope_is_requested_intersected_with_registered(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store, scope="system/*.rs system/Observation.cruds")
    body = (await token(http, client.assertion(), "system/Patient.r system/Observation.c system/Patient.c")).json()
    assert body["scope"] == "system/Patient.r system/Observation.c"
    body = (await token(http, client.assertion(), "system/Patient.read")).json()
    assert body["scope"] == "system/Patient.read"
    oauth_error(await token(http, client.assertion(), "system/Patient.cud"), "invalid_scope")
    oauth_error(await token(http, client.assertion(), "patient/Patient.r"), "invalid_scope")
    oauth_error(await token(http, client.assertion(), "system/Patient.xyz"), "invalid_scope", "permissions")


async def test_a_bound_resident_gets_the_patient(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store, role="resident", scope="patient/*.rs", patient="p123")
    body = (await token(http, client.assertion())).json()
    assert body["patient"] == "p123"
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["patient"] == "p123"


async def test_replayed_jti(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store)
    signed = client.assertion()
    assert (await token(http, signed)).status_code == 200
    oauth_error(await token(http, signed), "invalid_client", "replay")
    # the same jti in a new assertion is a replay too
    jti = jwt.decode(signed, options={"verify_signature": False})["jti"]
    oauth_error(await token(http, client.assertion(jti=jti)), "invalid_client", "replay")


async def test_assertion_defects(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store)
    skew = auth_app.settings.clock_skew
    oauth_error(await token(http, client.assertion(lifetime=300 + skew + 60)), "invalid_client", "5 minutes")
    oauth_error(await token(http, client.assertion(lifetime=-skew - 30)), "invalid_client", "expired")
    oauth_error(await token(http, client.assertion(aud=f"{BASE}/auth/other")), "invalid_client", "aud")
    oauth_error(await token(http, client.assertion(aud=BASE)), "invalid_client", "aud")
    oauth_error(await token(http, client.assertion(exp=None)), "invalid_client", "exp")
    oauth_error(await token(http, client.assertion(jti=None)), "invalid_client", "jti")
    oauth_error(await token(http, client.assertion(sub="someone-else")), "invalid_client", "sub")
    oauth_error(await token(http, assertion(rsa_key(), client.id)), "invalid_client", "signature")
    oauth_error(await token(http, assertion(rsa_key(), client.id, kid="other")), "invalid_client", "kid")
    oauth_error(await token(http, assertion(rsa_key(), "c-unknown")), "invalid_client", "not registered")
    # nothing accepted was burnt by the failures: a good assertion still works
    assert (await token(http, client.assertion())).status_code == 200


async def test_assertion_alg_none_and_hmac(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store)
    now = int(time.time())
    body = {"iss": client.id, "sub": client.id, "aud": TOKEN_URL, "exp": now + 100, "jti": "x1"}
    unsigned = jwt.encode(body, None, algorithm="none", headers={"kid": "k1"})  # type: ignore[arg-type]
    oauth_error(await token(http, unsigned), "invalid_client", "alg")
    secret = "a-shared-secret-long-enough-for-hmac-sha384-signatures!!"
    hmac = jwt.encode({**body, "jti": "x2"}, secret, algorithm="HS384", headers={"kid": "k1"})
    oauth_error(await token(http, hmac), "invalid_client", "alg")


async def test_request_defects(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    client = await register(auth_app.store)
    form = token_form(client.assertion())
    oauth_error(await http.post("/auth/token", data={**form, "grant_type": "password"}), "unsupported_grant_type")
    oauth_error(await http.post("/auth/token", data={k: v for k, v in form.items() if k != "grant_type"}),
                "invalid_request", "grant_type")
    oauth_error(await http.post("/auth/token", data={**form, "client_assertion_type": "x"}), "invalid_client")
    oauth_error(await http.post("/auth/token", data={"grant_type": "client_credentials"}), "invalid_client",
                "client_assertion")
    oauth_error(await http.post("/auth/token", json=form), "invalid_request", "x-www-form-urlencoded")
    oauth_error(await http.post("/auth/token", content="grant_type=a&grant_type=b",
                                headers={"Content-Type": "application/x-www-form-urlencoded"}),
                "invalid_request", "more than once")
    oauth_error(await http.post("/auth/token", data={**form, "client_assertion": "garbage"}), "invalid_client",
                "not a JWT")
    oauth_error(await http.post("/auth/token", data={**form, "client_id": "someone"}), "invalid_client", "client_id")


async def test_jwks_by_url(http: httpx.AsyncClient, auth_app: AuthApp, jwks_server: JwksServer) -> None:
    key = ec_key()
    jwks_server.keys = [public_jwk(key, "url-1")]
    client = await register(auth_app.store, key=key, jwks_url=jwks_server.url)
    client = Registered(client.id, key, "url-1")
    before = jwks_server.hits
    assert (await token(http, client.assertion())).status_code == 200
    assert (await token(http, client.assertion())).status_code == 200
    assert jwks_server.hits == before + 1  # cached
    # the client rotates its key: an unknown kid fetches the set again (once)
    new = rsa_key()
    jwks_server.keys = [public_jwk(key, "url-1"), public_jwk(new, "url-2")]
    # a recent fetch is not repeated for an unknown kid within 10 s: simulate an older cache entry
    url = jwks_server.url
    fetched, cached = auth_app.auth.jwks._entries[url]
    auth_app.auth.jwks._entries[url] = (fetched - 20, cached)
    assert (await token(http, Registered(client.id, new, "url-2").assertion())).status_code == 200
    assert jwks_server.hits == before + 2
    # an unknown kid again: not fetched again at once
    oauth_error(await token(http, Registered(client.id, rsa_key(), "url-3").assertion()), "invalid_client", "kid")
    assert jwks_server.hits == before + 2


async def test_jwks_url_failures_are_invalid_client(http: httpx.AsyncClient, auth_app: AuthApp,
                                                     jwks_server: JwksServer) -> None:
    dead = await register(auth_app.store, jwks_url="http://127.0.0.1:9/jwks.json")
    oauth_error(await token(http, dead.assertion()), "invalid_client", "could not be fetched")
    broken = await register(auth_app.store, jwks_url=jwks_server.url.replace("jwks.json", "broken.json"))
    jwks_server.status = 500
    try:
        oauth_error(await token(http, broken.assertion()), "invalid_client", "answered 500")
    finally:
        jwks_server.status = 200


async def test_discovery_and_jwks(http: httpx.AsyncClient, auth_app: AuthApp) -> None:
    config = (await http.get("/.well-known/smart-configuration")).json()
    assert config["token_endpoint"] == TOKEN_URL
    assert config["issuer"] == BASE
    assert config["jwks_uri"] == f"{BASE}/.well-known/jwks.json"
    assert config["introspection_endpoint"] == f"{BASE}/auth/introspect"
    assert config["revocation_endpoint"] == f"{BASE}/auth/revoke"
    assert config["authorization_endpoint"] == f"{BASE}/auth/authorize"
    assert "client_credentials" in config["grant_types_supported"]
    assert config["token_endpoint_auth_methods_supported"][0] == "private_key_jwt"
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert "client-confidential-asymmetric" in config["capabilities"]
    assert config["code_challenge_methods_supported"] == ["S256"]
    keys = (await http.get("/.well-known/jwks.json")).json()["keys"]
    assert keys and all(set(k) == {"kty", "kid", "alg", "use", "n", "e"} for k in keys)
    assert all(k["alg"] == "RS256" and k["use"] == "sig" for k in keys)
    # tokens verify with the published keys alone (what a resource server beside Yidang does)
    client = await register(auth_app.store)
    body = (await token(http, client.assertion())).json()
    kid = jwt.get_unverified_header(body["access_token"])["kid"]
    published = next(k for k in keys if k["kid"] == kid)
    claims = jwt.decode(body["access_token"], jwt.PyJWK(published).key, algorithms=["RS256"], audience=BASE)
    assert claims["sub"] == client.id


async def test_authorization_code_without_a_code_is_an_oauth_error(http: httpx.AsyncClient) -> None:
    response = await http.post("/auth/token", data={"grant_type": "authorization_code", "client_assertion_type":
                                                    JWT_BEARER})
    assert response.status_code in (400, 401)
    assert response.json()["error"] in ("invalid_request", "unsupported_grant_type")

"""Fixtures of the access-control tests: an app with authorization on (``auth_app``, on both
stores), key pairs, client registration and client assertions.

``auth_app`` sets ``app.state.auth`` and adds the OAuth routes itself; when ``create_app`` wires
them from ``Settings(auth="smart")`` the fixture shrinks to the ``create_app`` call.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI

from server.access.principal import Role
from server.app import create_app
from server.auth.clients import ClientRecord, add_client
from server.auth.oauth import JWT_BEARER
from server.auth.service import AuthService
from server.settings import Settings
from server.stores.base import Store
from tests.conftest import BASE

TOKEN_URL = f"{BASE}/auth/token"
INSTITUTION = "12440000455858436X"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def wire_auth(app: FastAPI, settings: Settings, store: Store) -> AuthService:
    """The service create_app wired (with auth="smart" its routes come ahead of the FHIR routes)."""
    auth: AuthService = app.state.auth
    return auth


@dataclass
class AuthApp:
    app: FastAPI
    auth: AuthService
    store: Store
    settings: Settings
    keys_dir: Path

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app, root_path="/fhir"), base_url=BASE)


def make_auth_app(store: Store, keys_dir: Path, **settings: Any) -> AuthApp:
    # the per-IP limit of /auth/* is tested by the hardening tests; here every test calls from one address
    settings.setdefault("rate_limits", {**Settings().rate_limits, "auth": 0})
    settings.setdefault("auth", "smart")
    config = Settings(base_url=BASE, log_requests=False, auth_keys_dir=keys_dir, **settings)
    app = create_app(config, store=store)
    return AuthApp(app, wire_auth(app, config, store), store, config, keys_dir)


@pytest_asyncio.fixture(scope="module")
async def auth_app(store: Store, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AuthApp]:
    yield make_auth_app(store, tmp_path_factory.mktemp("keys"))


@pytest_asyncio.fixture(scope="module")
async def http(auth_app: AuthApp) -> AsyncIterator[httpx.AsyncClient]:
    async with auth_app.client() as c:
        yield c


# --- keys and assertions ------------------------------------------------------------------------

def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def public_jwk(key: PrivateKey, kid: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        alg = "RS384"
    else:
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        alg = "ES384"
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


def alg_of(key: PrivateKey) -> str:
    return "RS384" if isinstance(key, rsa.RSAPrivateKey) else "ES384"


def assertion(key: PrivateKey, client_id: str, *, kid: str | None = "k1", aud: str = TOKEN_URL,
              lifetime: int = 240, alg: str | None = None, **claims: Any) -> str:
    """A client assertion; a claim given as None is left out."""
    now = int(time.time())
    body: dict[str, Any] = {"iss": client_id, "sub": client_id, "aud": aud, "exp": now + lifetime,
                            "jti": uuid.uuid4().hex, "iat": now}
    body.update(claims)
    headers = {"kid": kid} if kid else {}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg or alg_of(key),
                      headers=headers)


def token_form(signed: str, scope: str | None = None) -> dict[str, str]:
    form = {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER, "client_assertion": signed}
    if scope is not None:
        form["scope"] = scope
    return form


@dataclass
class Registered:
    id: str
    key: PrivateKey
    kid: str = "k1"

    def assertion(self, **kw: Any) -> str:
        return assertion(self.key, self.id, kid=self.kid, **kw)


async def register(store: Store, *, role: Role = "platform", scope: str = "system/*.cruds",
                   key: PrivateKey | None = None, jwks_url: str | None = None, patient: str | None = None,
                   institution: str = INSTITUTION) -> Registered:
    key = key or rsa_key()
    client_id = f"c-{uuid.uuid4().hex[:10]}"
    jwks = None if jwks_url else {"keys": [public_jwk(key, "k1")]}
    await add_client(store, ClientRecord(client_id, role, institution, scope, jwks=jwks, jwks_url=jwks_url,
                                         patient=patient))
    return Registered(client_id, key)


async def get_token(http: httpx.AsyncClient, client: Registered, scope: str | None = None) -> str:
    response = await http.post("/auth/token", data=token_form(client.assertion(), scope))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])

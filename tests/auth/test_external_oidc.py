"""Tokens of an external OpenID Connect issuer (a Keycloak-like IdP, keys in a JWKS file, claim
names mapped by configuration) accepted beside the server's own, on both stores."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio

from server.auth.external import ExternalIssuer
from server.stores.base import Store
from tests.auth.conftest import INSTITUTION, AuthApp, ec_key, get_token, make_auth_app, public_jwk, register, rsa_key

IDP = "https://idp.example/realms/health"
AUDIENCE = "yidang"
IDP_KEY = rsa_key()
IDP_EC_KEY = ec_key()


@pytest_asyncio.fixture(scope="module")
async def idp_app(store: Store, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AuthApp]:
    folder = tmp_path_factory.mktemp("idp")
    jwks_file = folder / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [public_jwk(IDP_KEY, "idp-1"), public_jwk(IDP_EC_KEY, "idp-ec")]}))
    yield make_auth_app(store, tmp_path_factory.mktemp("keys"), oidc_issuers=[{
        "issuer": IDP, "audience": AUDIENCE, "jwks_file": str(jwks_file),
        "claims": {"role": "realm_access.roles", "institution": "org_id", "scope": "scope", "patient": "pid",
                   "subject": "preferred_username"},
    }])


@pytest_asyncio.fixture(scope="module")
async def idp_http(idp_app: AuthApp) -> AsyncIterator[httpx.AsyncClient]:
    async with idp_app.client() as c:
        yield c


def idp_token(key: Any = IDP_KEY, kid: str = "idp-1", alg: str = "RS256", **over: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {"iss": IDP, "aud": AUDIENCE, "sub": uuid.uuid4().hex, "iat": now, "exp": now + 300,
                            "jti": uuid.uuid4().hex, "preferred_username": "dr.li", "azp": "ehr-console",
                            "realm_access": {"roles": ["offline_access", "platform"]}, "org_id": INSTITUTION,
                            "scope": "openid user/*.cruds"}
    body.update(over)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg, headers={"kid": kid})


async def read(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.get("/Patient?_count=1", headers={"Authorization": f"Bearer {token}"})


def refused(response: httpx.Response, words: str) -> None:
    assert response.status_code == 401, response.text
    assert words in response.json()["issue"][0]["diagnostics"]


async def test_an_external_token_reads(idp_http: httpx.AsyncClient, idp_app: AuthApp) -> None:
    assert (await read(idp_http, idp_token())).status_code == 200
    assert (await read(idp_http, idp_token(IDP_EC_KEY, "idp-ec", "ES384"))).status_code == 200
    principal = await idp_app.auth.tokens.verify(idp_token(pid="Patient/p9"), None)
    assert principal.kind == "external" and principal.role == "platform"
    assert principal.subject == "dr.li" and principal.institution == INSTITUTION
    assert principal.scopes == ("openid", "user/*.cruds") and principal.patient == "p9"
    assert principal.issuer == IDP and principal.client_id == "ehr-console"


async def test_our_own_tokens_still_work_beside(idp_http: httpx.AsyncClient, idp_app: AuthApp) -> None:
    client = await register(idp_app.store)
    assert (await read(idp_http, await get_token(idp_http, client))).status_code == 200


async def test_external_token_defects(idp_http: httpx.AsyncClient) -> None:
    refused(await read(idp_http, idp_token(org_id=None)), "'org_id' claim")
    refused(await read(idp_http, idp_token(realm_access={"roles": ["offline_access"]})), "'realm_access.roles'")
    refused(await read(idp_http, idp_token(realm_access=None)), "'realm_access.roles'")
    # several roles: which one is meant would be a guess (the list order is the issuer's)
    refused(await read(idp_http, idp_token(realm_access={"roles": ["resident", "platform"]})), "several roles")
    refused(await read(idp_http, idp_token(aud="someone-else")), "not valid")
    refused(await read(idp_http, idp_token(exp=int(time.time()) - 3600)), "expired")
    refused(await read(idp_http, idp_token(iss="https://evil.example/realms/health")), "issuer")
    refused(await read(idp_http, idp_token(rsa_key())), "signature")
    refused(await read(idp_http, idp_token(kid="idp-unknown")), "kid")
    hmac = jwt.encode({"iss": IDP, "aud": AUDIENCE, "exp": int(time.time()) + 60}, "s" * 48, algorithm="HS256",
                      headers={"kid": "idp-1"})
    refused(await read(idp_http, hmac), "alg")


async def test_an_unconfigured_issuer_is_refused(http: httpx.AsyncClient) -> None:
    refused(await read(http, idp_token()), "issuer")


def test_configuration_errors_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="audience"):
        ExternalIssuer.from_config({"issuer": IDP, "jwks_file": "x"})
    with pytest.raises(ValueError, match="exactly one"):
        ExternalIssuer.from_config({"issuer": IDP, "audience": "a"})
    with pytest.raises(ValueError, match="claims"):
        ExternalIssuer.from_config({"issuer": IDP, "audience": "a", "jwks_file": "x", "claims": {"colour": "c"}})
    with pytest.raises(ValueError, match="algorithms"):
        ExternalIssuer.from_config({"issuer": IDP, "audience": "a", "jwks_file": "x", "algorithms": ["HS256"]})

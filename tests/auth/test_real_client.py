"""A real OAuth client and a real FHIR client against a real server on a socket: Authlib's httpx
client authenticates with ``private_key_jwt`` (a key pair generated here, registered as a JWKS)
and fetches a SMART Backend Services token; fhirpy writes and reads with it.

The server runs in a thread (uvicorn, the app with authorization wired as in tests/auth/conftest.py)
until ``yidang serve --auth smart`` wires the token service itself; then tests/served.py replaces it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from authlib.integrations.httpx_client import AsyncOAuth2Client  # type: ignore[import-untyped]
from authlib.oauth2.rfc7523 import PrivateKeyJWT  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from fhirpy import AsyncFHIRClient

from server.app import create_app
from server.auth.clients import ClientRecord, add_client
from server.settings import Settings
from server.stores.sqlite import SqliteStore
from tests.auth.conftest import INSTITUTION, public_jwk, rsa_key, wire_auth
from tests.served import free_port

CLIENT_ID = "regional-his"
KEY = rsa_key()
PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption()).decode()


class SmartPrivateKeyJWT(PrivateKeyJWT):  # type: ignore[misc]
    """Authlib's private_key_jwt with what SMART asks: RS384, a ``kid``, ``exp`` within 5 minutes
    and a fresh ``jti`` each time (Authlib's default ``exp`` is an hour ahead: refused)."""

    def sign(self, auth: Any, token_endpoint: str) -> Any:
        self.claims = {"exp": int(time.time()) + 240}
        return super().sign(auth, token_endpoint)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("real")
    asyncio.run(register(data))
    settings = Settings(data_dir=data, auth="smart", log_requests=False,
                        rate_limits={**Settings().rate_limits, "auth": 0})
    app = create_app(settings)
    wire_auth(app, settings, app.state.services.store)
    port = free_port()
    served = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not served.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    served.should_exit = True
    thread.join(timeout=30)


async def register(data: Path) -> None:
    store = SqliteStore(data)
    await store.open()
    try:
        await add_client(store, ClientRecord(CLIENT_ID, "platform", INSTITUTION, "system/*.cruds",
                                             jwks={"keys": [public_jwk(KEY, "his-key-1")]}))
    finally:
        await store.close()


def oauth_client(auth: PrivateKeyJWT) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(CLIENT_ID, PEM, token_endpoint_auth_method=auth, scope="system/*.rs system/Patient.c")


async def test_authlib_gets_a_token_and_fhirpy_reads(server: str) -> None:
    config = httpx.get(f"{server}/.well-known/smart-configuration").json()
    token_url = config["token_endpoint"]
    assert token_url == f"{server}/auth/token"
    async with oauth_client(SmartPrivateKeyJWT(token_url, headers={"kid": "his-key-1"}, alg="RS384")) as oauth:
        token = await oauth.fetch_token(token_url, grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["scope"] == "system/*.rs system/Patient.c"
    assert 0 < token["expires_in"] <= 300

    fhir = AsyncFHIRClient(server, authorization=f"Bearer {token['access_token']}")
    patient = fhir.resource("Patient", name=[{"family": "李", "given": ["雷"]}], gender="male")
    await patient.save()
    found = await fhir.resources("Patient").search(_id=patient.id).fetch()
    assert [p.id for p in found] == [patient.id]
    assert (await fhir.reference("Patient", patient.id).to_resource())["gender"] == "male"

    # the same read without the token is refused once the FHIR endpoints check tokens
    anonymous = httpx.get(f"{server}/Patient/{patient.id}")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")


async def test_authlibs_default_hour_long_assertion_is_refused(server: str) -> None:
    token_url = f"{server}/auth/token"
    async with oauth_client(PrivateKeyJWT(token_url, headers={"kid": "his-key-1"}, alg="RS384")) as oauth:
        with pytest.raises(Exception, match="invalid_client"):
            await oauth.fetch_token(token_url, grant_type="client_credentials")

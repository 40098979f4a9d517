"""The SMART authorization-code flow with PKCE for local users, end to end through HTTP on both
stores: login page, password check, throttling, the code exchange and every way it must fail."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from collections.abc import Iterator
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from argon2 import PasswordHasher

from server.auth import login, passwords
from server.auth.clients import ClientRecord, add_client
from server.auth.oauth import JWT_BEARER
from server.auth.users import add_user, remove_user
from tests.auth.conftest import INSTITUTION, AuthApp, assertion, ec_key, public_jwk
from tests.conftest import BASE

REDIRECT = "https://app.example.org/callback"
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with small parameters: the flow is under test here, not the hash's cost."""
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def browser(auth_app: AuthApp) -> httpx.AsyncClient:
    """A client from an address of its own (throttling counts per address)."""
    address = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
    transport = httpx.ASGITransport(app=auth_app.app, root_path="/fhir", client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=BASE)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def public_client(auth_app: AuthApp, scope: str = "user/*.cruds patient/*.rs launch/patient") -> str:
    client_id = f"app-{uuid.uuid4().hex[:8]}"
    await add_client(auth_app.store, ClientRecord(client_id, "institution", INSTITUTION, scope,
                                                  redirect_uris=(REDIRECT,), public=True))
    return client_id


async def user(auth_app: AuthApp, *, role: str = "institution", scope: str = "user/*.rs",
               patient: str | None = None) -> str:
    name = f"u{uuid.uuid4().hex[:8]}"
    await add_user(auth_app.store, name, PASSWORD, role=role, institution=INSTITUTION, scope=scope, patient=patient)
    return name


def authorize_params(client_id: str, challenge: str, **over: str) -> dict[str, str]:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "scope": "user/*.rs",
              "state": secrets.token_urlsafe(8), "aud": BASE, "code_challenge": challenge,
              "code_challenge_method": "S256"}
    params.update(over)
    return params


def hidden_fields(page: str) -> dict[str, str]:
    return {m[1]: unescape(m[2]) for m in re.finditer(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', page)}


async def sign_in(http: httpx.AsyncClient, params: dict[str, str], name: str, password: str) -> httpx.Response:
    page = await http.get("/auth/authorize", params=params)
    assert page.status_code == 200, page.text
    form = {**hidden_fields(page.text), "username": name, "password": password}
    return await http.post("/auth/authorize", data=form)


def redirected(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def code_for(auth_app: AuthApp, http: httpx.AsyncClient, client_id: str, name: str,
                   **over: str) -> tuple[str, str, dict[str, str]]:
    verifier, challenge = pkce()
    params = authorize_params(client_id, challenge, **over)
    back = redirected(await sign_in(http, params, name, PASSWORD))
    assert back["state"] == params["state"]
    return back["code"], verifier, params


def exchange_form(client_id: str, code: str, verifier: str, **over: str) -> dict[str, str]:
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "client_id": client_id,
            "redirect_uri": REDIRECT}
    form.update(over)
    return {k: v for k, v in form.items() if v}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Moves login.now_us: append seconds to the list to move the clock forward."""
    ahead: list[int] = [0]
    real = login.now_us
    monkeypatch.setattr(login, "now_us", lambda: real() + sum(ahead) * 1_000_000)
    yield ahead


# --- the happy paths ----------------------------------------------------------------------------

async def test_login_page_is_self_contained_with_a_strict_csp(auth_app: AuthApp) -> None:
    client_id = await public_client(auth_app)
    async with browser(auth_app) as http:
        page = await http.get("/auth/authorize", params=authorize_params(client_id, pkce()[1]))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
    assert "form-action 'self' https://app.example.org" in csp
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce and f'<style nonce="{nonce[1]}">' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert not re.search(r"<script|<link|<img|src=|href=|url\(|@import", page.text)  # nothing loads
    assert 'type="password"' in page.text and 'method="post"' in page.text


async def test_code_flow_end_to_end_state_round_trip_and_token_reads(auth_app: AuthApp) -> None:
    client_id = await public_client(auth_app)
    name = await user(auth_app, scope="user/*.rs")
    async with browser(auth_app) as http:
        code, verifier, _params = await code_for(auth_app, http, client_id, name, scope="user/Patient.rs openid")
        token = await http.post("/auth/token", data=exchange_form(client_id, code, verifier))
        assert token.status_code == 200, token.text
        body = token.json()
        assert body["token_type"] == "Bearer" and body["scope"] == "user/Patient.rs"
        assert body["expires_in"] == auth_app.settings.user_token_lifetime and "patient" not in body
        assert token.headers["cache-control"] == "no-store"
        read = await http.get("/Patient?_count=1", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert read.status_code == 200, read.text
        info = await auth_app.auth.tokens.verify(body["access_token"], BASE)
        assert (info.subject, info.kind, info.role, info.institution, info.client_id) == (
            name, "user", "institution", INSTITUTION, client_id)


async def test_granted_scope_is_requested_and_users_and_clients(auth_app: AuthApp) -> None:
    client_id = await public_client(auth_app, scope="user/Patient.cruds user/Observation.rs")
    name = await user(auth_app, scope="user/*.rs")
    async with browser(auth_app) as http:
        code, verifier, _ = await code_for(auth_app, http, client_id, name,
                                           scope="user/Patient.rs user/Patient.u user/Observation.rs user/Encounter.rs")
        body = (await http.post("/auth/token", data=exchange_form(client_id, code, verifier))).json()
    assert body["scope"] == "user/Patient.rs user/Observation.rs"


async def test_resident_gets_the_patient_context(auth_app: AuthApp) -> None:
    client_id = await public_client(auth_app)
    name = await user(auth_app, role="resident", scope="patient/*.rs", patient="Patient/p-42")
    async with browser(auth_app) as http:
        code, verifier, _ = await code_for(auth_app, http, client_id, name,
                                           scope="launch/patient patient/Observation.rs openid fhirUser")
        body = (await http.post("/auth/token", data=exchange_form(client_id, code, verifier))).json()
    assert body["patient"] == "p-42"
    assert body["scope"] == "patient/Observation.rs launch/patient"
    assert (await auth_app.auth.tokens.verify(body["access_token"], BASE)).patient == "p-42"


async def test_no_scope_left_goes_back_as_invalid_scope(auth_app: AuthApp) -> None:
    client_id = await public_client(auth_app)
    name = await user(auth_app, scope="user/Observation.rs")
    _verifier, challenge = pkce()
    async with browser(auth_app) as http:
        back = redirected(await sign_in(http, authorize_params(client_id, challenge, scope="user/Patient.rs"),
                                        name, PASSWORD))
    assert back["error"] == "invalid_scope" and "code" not in back and back["state"]


async def test_confidential_client_needs_its_assertion(auth_app: AuthApp) -> None:
    key = ec_key()
    client_id = f"ehr-{uuid.uuid4().hex[:8]}"
    await add_client(auth_app.store, ClientRecord(client_id, "institution", INSTITUTION, "user/*.rs",
                                                  jwks={"keys": [public_jwk(key, "k1")]}, redirect_uris=(REDIRECT,)))
    name = await user(auth_app)
    async with browser(auth_app) as http:
        code, verifier, _ = await code_for(auth_app, http, client_id, name)
        bare = await http.post("/auth/token", data=exchange_form(client_id, code, verifier))
        assert bare.status_code == 401 and bare.json()["error"] == "invalid_client"
        code, verifier, _ = await code_for(auth_app, http, client_id, name)
        signed = await http.post("/auth/token", data=exchange_form(
            client_id, code, verifier, client_assertion_type=JWT_BEARER,
            client_assertion=assertion(key, client_id, kid="k1")))
        assert signed.status_code == 200, signed.text


# --- the login page refuses --------------------------------------------------------------------

async def test_wrong_password_and_unknown_user_get_the_same_page(auth_app: AuthApp) -> None:
    client_id = await public_client(auth_app)
    name = await user(auth_app)
    _verifier, challenge = pkce()
    params = authorize_params(client_id, challenge)
    async with browser(auth_app) as http:
        wrong = await sign_in(http, params, name, "not the password")
        unknown = await sign_in(http, params, "nobody-" + name, PASSWORD)
    for response in (wrong, unknown):
        assert response.status_code == 401 and "location" not in response.headers
        assert "The user name or password is not correct." in response.text
        assert hidden_fields(response.text)["state"] == params["state"]  # the form again, to retry
    assert PASSWORD not in unknown.text and "not the password" not in wrong.text


async def test_failed_logins_lock_the_user_name_then_unlock(auth_app: AuthApp, clock: list[int]) -> None:
    client_id = await public_client(auth_app)
    name = await user(auth_app)
    params = authorize_params(client_id, pkce()[1])
    async with browser(auth_app) as http:
        for _ in range(login.USER_FAILURES):
            assert (await sign_in(http, params, name, "guess-guess-guess")).status_code == 401
    async with browser(auth_app) as other:  # another address: the user name is locked all the same
        locked = await sign_in(other, params, name, PASSWORD)
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) <= login.LOCK_S
        assert "Too many failed sign-ins" in locked.text and "location" not in locked.headers
        clock.append(login.LOCK_S + 1)
        redirected(await sign_in(other, params, name, PASSWORD))


async def test_failed_logins_lock_the_address(auth_app: AuthApp, clock: list[int]) -> None:
    client_id = await public_client(auth_app)
    name = await user(auth_app)
    params = authorize_params(client_id, pkce()[1])
    async with browser(auth_app) as http:
        for n in range(login.ADDRESS_FAILURES):  # many names from one address
            assert (await sign_in(http, params, f"guess{n}", "guess-guess-guess")).status_code == 401
        assert (await sign_in(http, params, name, PASSWORD)).status_code == 429
        clock.append(login.LOCK_S + 1)
        redirected(await sign_in(http, params, name, PASSWORD))


async def test_unknown_client_is_shown_not_redirected(auth_app: AuthApp) -> None:
    async with browser(auth_app) as http:
        for method in ("GET", "POST"):
            params = authorize_params("no-such-client", pkce()[1])
            if method == "GET":
                response = await http.get("/auth/authorize", params=params)
            else:
                response = await http.post("/auth/authorize", data={**params, "username": "x", "password": "y"})
            assert response.status_code == 400 and "location" not in response.headers
            assert "unknown client_id" in response.text


async def test_unregistered_redirect_uri_is_shown_not_redirected(auth_app: AuthApp) -> None:
    client_id = await public_client(auth_app)
    name = await user(auth_app)
    evil = "https://evil.example/steal"
    params = authorize_params(client_id, pkce()[1], redirect_uri=evil)
    async with browser(auth_app) as http:
        shown = await http.get("/auth/authorize", params=params)
        assert shown.status_code == 400 and "location" not in shown.headers
        assert "redirect_uri is not one registered" in shown.text
        # hidden fields changed after the page was shown are checked again
        page = await http.get("/auth/authorize", params={**params, "redirect_uri": REDIRECT})
        form = {**hidden_fields(page.text), "redirect_uri": evil, "username": name, "password": PASSWORD}
        posted = await http.post("/auth/authorize", data=form)
        assert posted.status_code == 400 and "location" not in posted.headers


@pytest.mark.parametrize(("over", "error"), [
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge": ""}, "invalid_request"),
    ({"aud": "https://other.example/fhir"}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "user/Patient.read?x=1"}, "invalid_scope"),
])
async def test_other_request_errors_go_back_to_the_client(auth_app: AuthApp, over: dict[str, str],
                                                          error: str) -> None:
    client_id = await public_client(auth_app)
    params = authorize_params(client_id, pkce()[1], **over)
    async with browser(auth_app) as http:
        back = redirected(await http.get("/auth/authorize", params=params))
    assert back["error"] == error and back["state"] == params["state"] and "code" not in back


async def test_the_page_escapes_what_it_shows(auth_app: AuthApp) -> None:
    client_id = await public_client(auth_app)
    attack = '"><script>alert(1)</script><input name="x'
    params = authorize_params(client_id, pkce()[1], state=attack, scope="user/*.rs")
    async with browser(auth_app) as http:
        page = await http.get("/auth/authorize", params=params)
        again = await http.post("/auth/authorize", data={**hidden_fields(page.text), "username": attack,
                                                         "password": "wrong-wrong-wrong"})
    for response in (page, again):
        assert "<script>" not in response.text
        assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
        assert hidden_fields(response.text)["state"] == attack


# --- the exchange refuses ----------------------------------------------------------------------

async def test_wrong_verifier_fails_and_burns_the_code(auth_app: AuthApp) -> None:
    client_id = await public_client(auth_app)
    name = await user(auth_app)
    async with browser(auth_app) as http:
        code, verifier, _ = await code_for(auth_app, http, client_id, name)
        wrong = await http.post("/auth/token", data=exchange_form(client_id, code, pkce()[0]))
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
        assert "code_verifier" in wrong.json()["error_description"]
        right = await http.post("/auth/token", data=exchange_form(client_id, code, verifier))
        assert right.status_code == 400 and right.json()["error"] == "invalid_grant"


async def test_reused_code_fails_and_revokes_the_first_token(auth_app: AuthApp) -> None:
    client_id = await public_client(auth_app)
    name = await user(auth_app)
    async with browser(auth_app) as http:
        code, verifier, _ = await code_for(auth_app, http, client_id, name)
        first = await http.post("/auth/token", data=exchange_form(client_id, code, verifier))
        assert first.status_code == 200
        again = await http.post("/auth/token", data=exchange_form(client_id, code, verifier))
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        auth_app.auth.tokens._cache.clear()  # this process re-checks revocation within a second anyway
        read = await http.get("/Patient", headers={"Authorization": f"Bearer {first.json()['access_token']}"})
        assert read.status_code == 401


async def test_expired_code_fails(auth_app: AuthApp, clock: list[int]) -> None:
    client_id = await public_client(auth_app)
    name = await user(auth_app)
    async with browser(auth_app) as http:
        code, verifier, _ = await code_for(auth_app, http, client_id, name)
        clock.append(login.CODE_LIFETIME_S + 1)
        late = await http.post("/auth/token", data=exchange_form(client_id, code, verifier))
    assert late.status_code == 400 and late.json() == {"error": "invalid_grant",
                                                       "error_description": "the code has expired"}


@pytest.mark.parametrize("over", [{"client_id": "someone-else"}, {"redirect_uri": REDIRECT + "?x=1"},
                                  {"code": "made-up-code"}])
async def test_exchange_must_match_the_authorization(auth_app: AuthApp, over: dict[str, str]) -> None:
    client_id = await public_client(auth_app)
    name = await user(auth_app)
    async with browser(auth_app) as http:
        code, verifier, _ = await code_for(auth_app, http, client_id, name)
        response = await http.post("/auth/token", data={**exchange_form(client_id, code, verifier), **over})
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_exchange_needs_its_parameters(auth_app: AuthApp) -> None:
    async with browser(auth_app) as http:
        response = await http.post("/auth/token", data={"grant_type": "authorization_code", "code": "x"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_a_removed_user_cannot_exchange(auth_app: AuthApp) -> None:
    client_id = await public_client(auth_app)
    name = await user(auth_app)
    async with browser(auth_app) as http:
        code, verifier, _ = await code_for(auth_app, http, client_id, name)
        await remove_user(auth_app.store, name)
        response = await http.post("/auth/token", data=exchange_form(client_id, code, verifier))
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_two_exchanges_at_once_only_one_wins(auth_app: AuthApp) -> None:
    import asyncio

    client_id = await public_client(auth_app)
    name = await user(auth_app)
    async with browser(auth_app) as http:
        code, verifier, _ = await code_for(auth_app, http, client_id, name)
        form = exchange_form(client_id, code, verifier)
        responses = await asyncio.gather(*(http.post("/auth/token", data=form) for _ in range(4)))
    assert sorted(r.status_code for r in responses) == [200, 400, 400, 400]

"""SMART App Launch for people: the authorization-code grant with PKCE (S256 only) and a plain login page.

``GET /auth/authorize`` checks the request and shows a self-contained HTML form (no external assets,
a strict Content-Security-Policy, every value escaped); ``POST /auth/authorize`` checks the user's
password and redirects to the client's registered ``redirect_uri`` with a ``code`` and the
``state``. A problem with the client or its redirect URI is shown on the page (never sent to a URI
that is not registered); other problems go back to the client as ``error`` (RFC 6749 §4.1.2.1).

Codes are random, single use and valid :data:`CODE_LIFETIME_S`; only their SHA-256 is stored
(kv space ``codes``). :func:`exchange_code` is the ``authorization_code`` grant of the token
endpoint; a code presented a second time fails and revokes the token it was first exchanged for
(RFC 6749 §4.1.2: it may have been stolen). Failed logins are throttled per user name and per
client address (kv space ``logins``, so every worker and server sharing the store counts together).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from server.auth import scopes
from server.auth.clients import ClientRecord, get_client
from server.auth.oauth import OAuthError
from server.auth.tokens import REVOKED
from server.auth.users import UserRecord, check_password, get_user

if TYPE_CHECKING:
    from server.auth.service import AuthService

CODE_SPACE = "codes"
THROTTLE_SPACE = "logins"
CODE_LIFETIME_S = 60
MAX_FORM_BYTES = 16 * 1024
MAX_PARAM = 2048
"""Longest value of one authorization-request parameter."""
USER_FAILURES = 5
"""Failed logins for one user name after which it is locked."""
ADDRESS_FAILURES = 20
"""Failed logins from one client address after which it is locked (several people may share one)."""
LOCK_S = 30
"""First lock; each further lock within :data:`FAILURE_WINDOW_S` doubles, up to :data:`MAX_LOCK_S`."""
MAX_LOCK_S = 3600
FAILURE_WINDOW_S = 15 * 60
"""Failures are forgotten this long after the last one."""
PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "state", "aud", "code_challenge",
          "code_challenge_method", "launch")
CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
CONTEXT_GRANTED = ("launch/patient",)
"""Context scopes granted (with the user's ``patient``); ``openid``/``fhirUser`` are not (no id token)."""


def now_us() -> int:
    """Microseconds since 1970 (tests move it)."""
    return time.time_ns() // 1000


class PageError(Exception):
    """A problem shown on the page: the client or its redirect URI cannot be trusted with it."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class RedirectError(Exception):
    """A problem reported to the (registered) redirect URI as ``error`` and ``error_description``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.request: AuthorizeRequest | None = None
        """The request, its client and redirect URI checked (set by :func:`check_request`)."""


@dataclass(frozen=True)
class AuthorizeRequest:
    params: dict[str, str]
    client: ClientRecord
    redirect_uri: str


# --- the page ------------------------------------------------------------------------------------

STYLE = """body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0}
main{max-width:24rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}
h1{font-size:1.3rem;margin-top:0}label{display:block;margin:.8rem 0 .2rem}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}
button{margin-top:1.2rem;padding:.6rem 1.2rem;font-size:1rem}.error{color:#a00;font-weight:600}
.scopes{font-size:.85rem;color:#444;word-break:break-all}"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _origin(uri: str) -> str | None:
    """The CSP source of ``uri``'s origin (http/https, no characters that could end a CSP token)."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and parts.netloc and re.fullmatch(r"[A-Za-z0-9.:\[\]-]+", parts.netloc):
        return f"{parts.scheme}://{parts.netloc}"
    return None


def page(*, nonce: str, request: AuthorizeRequest | None, message: str | None, user: str = "",
         status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    """The login page (``request`` set) or an error page (only ``message``), with its security headers."""
    parts = [f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
             f'<meta name="viewport" content="width=device-width,initial-scale=1">'
             f'<meta name="referrer" content="no-referrer"><title>Yidang 登录 Sign in</title>'
             f'<style nonce="{_e(nonce)}">{STYLE}</style></head><body><main>']
    if request is None:
        parts.append(f'<h1>无法登录 Cannot sign in</h1><p class="error">{_e(message or "")}</p>')
    else:
        parts.append(f'<h1>登录 Sign in</h1><p>to <strong>{_e(request.client.id)}</strong></p>')
        if message:
            parts.append(f'<p class="error" role="alert">{_e(message)}</p>')
        parts.append('<form method="post" action="authorize" autocomplete="off">')
        for name in PARAMS:
            if name in request.params:
                parts.append(f'<input type="hidden" name="{name}" value="{_e(request.params[name])}">')
        parts.append(f'<label for="username">用户名 User name</label><input type="text" id="username" '
                     f'name="username" value="{_e(user)}" required autofocus maxlength="64" autocomplete="username">'
                     '<label for="password">密码 Password</label><input type="password" id="password" '
                     'name="password" required maxlength="1024" autocomplete="current-password">'
                     f'<p class="scopes">{_e(request.params.get("scope", ""))}</p>'
                     '<button type="submit">登录 Sign in</button></form>')
    parts.append("</main></body></html>")
    form_action = "'self'"
    if request is not None and (origin := _origin(request.redirect_uri)):
        form_action += f" {origin}"  # browsers apply form-action to the redirect after the POST too
    csp = (f"default-src 'none'; style-src 'nonce-{nonce}'; form-action {form_action}; "
           "frame-ancestors 'none'; base-uri 'none'")
    return HTMLResponse("".join(parts), status_code=status, headers={
        "Content-Security-Policy": csp, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer", "Cache-Control": "no-store", **(headers or {})})


# --- checking the authorization request ------------------------------------------------------------

async def check_request(auth_service: AuthService, params: dict[str, str], base: str) -> AuthorizeRequest:
    """The checked request: :class:`PageError` for the client and redirect URI, :class:`RedirectError` for the rest."""
    for name, value in params.items():
        if len(value) > MAX_PARAM:
            raise PageError(f"the parameter {name} is too long")
    client_id = params.get("client_id", "")
    client = await get_client(auth_service.store, client_id) if client_id else None
    if client is None or not client.redirect_uris:
        raise PageError("unknown client_id: not a client registered for the authorization-code flow")
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris:
        raise PageError("redirect_uri is not one registered for this client")
    checked = AuthorizeRequest(params, client, redirect_uri)
    try:
        check_parameters(params, base)
    except RedirectError as error:
        error.request = checked
        raise
    return checked


def check_parameters(params: dict[str, str], base: str) -> None:
    """:class:`RedirectError` for a request parameter other than the client and redirect URI."""
    if params.get("response_type") != "code":
        raise RedirectError("unsupported_response_type", "response_type must be code")
    if params.get("code_challenge_method") != "S256":
        raise RedirectError("invalid_request", "PKCE is required: code_challenge_method must be S256")
    if not CHALLENGE.fullmatch(params.get("code_challenge", "")):
        raise RedirectError("invalid_request", "code_challenge must be the base64url SHA-256 of the verifier")
    if params.get("aud", "").rstrip("/") != base:
        raise RedirectError("invalid_request", f"aud must be this server's FHIR base URL ({base})")
    if not params.get("state"):
        raise RedirectError("invalid_request", "state is required")
    try:
        scopes.check(params.get("scope", ""))
    except ValueError as error:
        raise RedirectError("invalid_scope", str(error)) from None


def redirect(uri: str, values: dict[str, str]) -> RedirectResponse:
    joined = uri + ("&" if urlsplit(uri).query else "?") + urlencode(values)
    return RedirectResponse(joined, status_code=303, headers={"Cache-Control": "no-store",
                                                               "Referrer-Policy": "no-referrer"})


def error_redirect(error: RedirectError, checked: AuthorizeRequest | None = None) -> RedirectResponse:
    checked = checked or error.request
    assert checked is not None
    values = {"error": error.error, "error_description": error.description}
    if checked.params.get("state"):
        values["state"] = checked.params["state"]
    return redirect(checked.redirect_uri, values)


def granted_scope(requested: str, user: UserRecord, client: ClientRecord) -> str:
    """Requested ∩ the user's ∩ the client's scopes; ``launch/patient`` and patient scopes only for a
    user who is a patient (a resident)."""
    wanted = scopes.split(requested)
    clinical = " ".join(s for s in wanted if s not in scopes.CONTEXT_SCOPES
                        and (user.patient or not s.startswith("patient/")))
    users = scopes.grant(clinical, user.scope) if clinical else ""
    # (grant() with nothing requested answers everything registered: never call it with "")
    out = scopes.split(scopes.grant(users, client.scope)) if users else []
    if user.patient:
        out += [s for s in CONTEXT_GRANTED if s in wanted]
    return " ".join(out)


# --- throttling ------------------------------------------------------------------------------------

def _throttle_keys(user: str, address: str) -> list[tuple[str, int]]:
    return [(f"user:{user.casefold()}", USER_FAILURES), (f"ip:{address}", ADDRESS_FAILURES)]


async def locked_for(auth_service: AuthService, user: str, address: str) -> int:
    """Seconds until the user name or the address may try again (0: now)."""
    now = now_us()
    wait = 0
    for key, _ in _throttle_keys(user, address):
        found = await auth_service.store.kv_get(THROTTLE_SPACE, key)
        if found and int(found.get("until", 0)) > now:
            wait = max(wait, -(-(int(found["until"]) - now) // 1_000_000))
    return wait


async def record_failure(auth_service: AuthService, user: str, address: str) -> None:
    now = now_us()
    for key, limit in _throttle_keys(user, address):
        found = await auth_service.store.kv_get(THROTTLE_SPACE, key) or {}
        failures, locks, until = int(found.get("failures", 0)) + 1, int(found.get("locks", 0)), 0
        if failures >= limit:
            locks += 1
            until = now + min(LOCK_S * 2 ** (locks - 1), MAX_LOCK_S) * 1_000_000
            failures = 0
        value = {"failures": failures, "locks": locks, "until": until}
        await auth_service.store.kv_put(THROTTLE_SPACE, key, value,
                                        expires=max(until, now) + FAILURE_WINDOW_S * 1_000_000)


async def record_success(auth_service: AuthService, user: str) -> None:
    """A correct password forgets the user name's failures (not the address's)."""
    await auth_service.store.kv_delete(THROTTLE_SPACE, f"user:{user.casefold()}")


# --- the endpoints --------------------------------------------------------------------------------

def _code_key(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


async def _form(request: Request) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PageError("the form is too large", status=413)
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50))
    except (UnicodeDecodeError, ValueError):
        raise PageError("the form is not application/x-www-form-urlencoded UTF-8") from None


def login_routes(auth_service: AuthService) -> list[BaseRoute]:
    """``GET``/``POST /auth/authorize``."""

    async def show(request: Request) -> Response:
        nonce = secrets.token_urlsafe(16)
        params = {k: v for k, v in request.query_params.items() if k in PARAMS}
        try:
            checked = await check_request(auth_service, params, auth_service.base(request))
        except PageError as error:
            return page(nonce=nonce, request=None, message=str(error), status=error.status)
        except RedirectError as error:
            return error_redirect(error)
        return page(nonce=nonce, request=checked, message=None)

    async def submit(request: Request) -> Response:
        nonce = secrets.token_urlsafe(16)
        try:
            form = await _form(request)
            params = {k: v for k, v in form.items() if k in PARAMS}
            checked = await check_request(auth_service, params, auth_service.base(request))
        except PageError as error:
            return page(nonce=nonce, request=None, message=str(error), status=error.status)
        except RedirectError as error:
            return error_redirect(error)
        name, password = form.get("username", "")[:64], form.get("password", "")
        address = request.client.host if request.client else "unknown"
        wait = await locked_for(auth_service, name, address)
        if wait:
            return page(nonce=nonce, request=checked, user=name, status=429, headers={"Retry-After": str(wait)},
                        message=f"登录失败次数过多 Too many failed sign-ins: try again in {wait} s.")
        user = await check_password(auth_service.store, name, password)
        if user is None:
            await record_failure(auth_service, name, address)
            return page(nonce=nonce, request=checked, user=name, status=401,
                        message="用户名或密码错误 The user name or password is not correct.")
        await record_success(auth_service, name)
        scope = granted_scope(params["scope"], user, checked.client)
        if not scope:
            return error_redirect(RedirectError(
                "invalid_scope", "none of the requested scopes is allowed to this user with this client"), checked)
        code = secrets.token_urlsafe(32)
        expires = now_us() + CODE_LIFETIME_S * 1_000_000
        record = {"client_id": checked.client.id, "user": user.name, "scope": scope,
                  "redirect_uri": checked.redirect_uri, "code_challenge": params["code_challenge"],
                  "aud": params["aud"].rstrip("/"), "expires": expires}
        await auth_service.store.kv_put(CODE_SPACE, _code_key(code), record, create_only=True, expires=expires)
        return redirect(checked.redirect_uri, {"code": code, "state": params["state"]})

    return [Route("/auth/authorize", show, methods=["GET"]), Route("/auth/authorize", submit, methods=["POST"])]


# --- the token endpoint's authorization_code grant -------------------------------------------------

def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


async def authenticate_client(auth_service: AuthService, client: ClientRecord, form: dict[str, str]) -> None:
    """A public client needs nothing more; a confidential one a ``private_key_jwt`` client assertion."""
    if client.public:
        return
    if not form.get("client_assertion"):
        raise OAuthError("invalid_client", "this client is confidential: give client_assertion (private_key_jwt)")
    await auth_service.check_assertion(client, form)


async def exchange_code(auth_service: AuthService, form: dict[str, str]) -> dict[str, Any]:
    """The ``authorization_code`` grant: the token response body, or :class:`OAuthError`."""
    for name in ("code", "redirect_uri", "code_verifier", "client_id"):
        if not form.get(name):
            raise OAuthError("invalid_request", f"{name} is required")
    key = _code_key(form["code"])
    record = await auth_service.store.kv_get(CODE_SPACE, key)
    # deleting is the single use: of two concurrent exchanges only one deletes it
    if record is None or not await auth_service.store.kv_delete(CODE_SPACE, key):
        await revoke_reused(auth_service, key)
        raise OAuthError("invalid_grant", "the code is not valid (unknown, used or expired)")
    if int(record.get("expires", 0)) <= now_us():
        raise OAuthError("invalid_grant", "the code has expired")
    if form["client_id"] != record["client_id"]:
        raise OAuthError("invalid_grant", "the code was issued to another client")
    client = await get_client(auth_service.store, record["client_id"])
    if client is None:
        raise OAuthError("invalid_client", "the client is not registered")
    await authenticate_client(auth_service, client, form)
    if form["redirect_uri"] != record["redirect_uri"]:
        raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request's")
    verifier = form["code_verifier"]
    if not VERIFIER.fullmatch(verifier) or not hmac.compare_digest(s256(verifier), record["code_challenge"]):
        raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge (S256)")
    user = await get_user(auth_service.store, record["user"])
    if user is None:
        raise OAuthError("invalid_grant", "the user no longer exists")
    body: dict[str, Any] = await auth_service.tokens.issue(
        subject=user.name, client_id=client.id, kind="user", role=user.role, institution=user.institution,
        scope=record["scope"], patient=user.patient, lifetime=auth_service.settings.user_token_lifetime,
        audience=record["aud"])
    if user.patient and "patient" not in body:
        body["patient"] = user.patient
    await remember_use(auth_service, key, body["access_token"])
    return body


async def remember_use(auth_service: AuthService, key: str, token: str) -> None:
    """Keep the id of the token a code was exchanged for, until the token expires (RFC 6749 §4.1.2)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    expires = int(claims["exp"]) * 1_000_000
    await auth_service.store.kv_put(CODE_SPACE, f"used:{key}", {"jti": claims["jti"], "exp": claims["exp"]},
                                    expires=expires)


async def revoke_reused(auth_service: AuthService, key: str) -> None:
    """A code presented again: revoke the token it was exchanged for (the code may have been stolen)."""
    used = await auth_service.store.kv_get(CODE_SPACE, f"used:{key}")
    if used:
        await auth_service.store.kv_put(REVOKED, str(used["jti"]), {"exp": int(used["exp"])},
                                        expires=int(used["exp"]) * 1_000_000 + 1_000_000)

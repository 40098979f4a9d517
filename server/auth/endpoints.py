"""The OAuth endpoints: ``POST /auth/token`` (client_credentials with ``private_key_jwt``;
authorization_code handed to :mod:`server.auth.login`), ``POST /auth/introspect`` (RFC 7662),
``POST /auth/revoke`` (RFC 7009), ``GET /.well-known/jwks.json`` and
``GET /.well-known/smart-configuration`` (SMART App Launch 2.0 discovery).

Forms are parsed here (``application/x-www-form-urlencoded`` only, each parameter once, at most
64 KiB). Answers carry ``Cache-Control: no-store``; tokens and assertions are never logged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.access.principal import Principal
from server.auth import scopes
from server.auth.clients import ClientRecord
from server.auth.oauth import NO_STORE, OAuthError
from server.errors import Unauthenticated

if TYPE_CHECKING:
    from server.auth.service import AuthService

MAX_FORM_BYTES = 64 * 1024
CAPABILITIES = ["client-confidential-asymmetric", "client-public", "permission-v1", "permission-v2",
                "permission-patient", "permission-user", "launch-standalone", "context-standalone-patient"]
SCOPES_SUPPORTED = ["system/*.rs", "system/*.cruds", "user/*.cruds", "patient/*.rs", "launch/patient"]


async def read_form(request: Request) -> dict[str, str]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise OAuthError("invalid_request", f"the body is larger than {MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "the body is not a valid form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", f"parameter {name} is given more than once")
        form[name] = value
    return form


def no_store(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=NO_STORE)


def oauth(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except OAuthError as error:
            return error.response()

    return run


def auth_routes(auth: AuthService) -> list[BaseRoute]:
    from server.auth.service import REQUEST_BASE

    settings = auth.settings

    async def client_credentials(form: dict[str, str], base: str) -> dict[str, Any]:
        client = await auth.authenticate_client(form, base)
        try:
            granted = scopes.grant(form.get("scope"), client.scope)
        except ValueError as error:
            raise OAuthError("invalid_scope", str(error)) from None
        if not granted:
            raise OAuthError("invalid_scope", "none of the requested scopes is registered for this client")
        return await auth.tokens.issue(subject=client.id, client_id=client.id, kind="client", role=client.role,
                                       institution=client.institution, scope=granted, patient=client.patient,
                                       lifetime=settings.token_lifetime, audience=base)

    async def token(request: Request) -> Response:
        form = await read_form(request)
        base = auth.base(request)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant_type == "client_credentials":
            return no_store(await client_credentials(form, base))
        if grant_type == "authorization_code":
            try:
                from server.auth.login import exchange_code
            except ImportError:
                raise OAuthError("unsupported_grant_type", "authorization_code is not available") from None
            reset = REQUEST_BASE.set(base)
            try:
                return no_store(await exchange_code(auth, form))
            finally:
                REQUEST_BASE.reset(reset)
        raise OAuthError("unsupported_grant_type",
                         f"grant_type {grant_type!r} is not supported (client_credentials, authorization_code)")

    async def caller(request: Request, form: dict[str, str], base: str) -> Principal | ClientRecord:
        """Who calls introspect/revoke: a client assertion, or a bearer token of a registered client."""
        if form.get("client_assertion"):
            return await auth.authenticate_client(form, base)
        headers = request.headers.getlist("authorization")
        if len(headers) > 1:
            raise OAuthError("invalid_client", "send one Authorization header, not several")
        scheme, _, value = (headers[0] if headers else "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise OAuthError("invalid_client", "authenticate with a client_assertion or a client's bearer token")
        try:
            principal = await auth.tokens.verify(value.strip(), base)
        except Unauthenticated as error:
            raise OAuthError("invalid_client", error.message) from None
        if principal.kind != "client":
            raise OAuthError("invalid_client", "only a registered client's token may call this endpoint")
        return principal

    async def introspect(request: Request) -> Response:
        form = await read_form(request)
        base = auth.base(request)
        await caller(request, form, base)
        value = form.get("token")
        if not value:
            raise OAuthError("invalid_request", "token is required")
        return no_store(await auth.tokens.introspect(value, base))

    async def revoke(request: Request) -> Response:
        form = await read_form(request)
        base = auth.base(request)
        who = await caller(request, form, base)
        value = form.get("token")
        if not value:
            raise OAuthError("invalid_request", "token is required")
        client_id, role = (who.id, who.role) if isinstance(who, ClientRecord) else (who.client_id, who.role)
        try:
            target = await auth.tokens.verify(value, base)
        except Unauthenticated:
            return no_store({})  # RFC 7009 §2.2: an invalid token is answered 200 too
        if role != "platform" and target.client_id != client_id:
            raise OAuthError("unauthorized_client", "the token was issued to another client")
        await auth.tokens.revoke(value, base)
        return no_store({})

    async def jwks(request: Request) -> Response:
        return JSONResponse(auth.keys.jwks(), headers={"Cache-Control": "public, max-age=60"})

    async def smart_configuration(request: Request) -> Response:
        base = auth.base(request)
        return JSONResponse({
            "issuer": settings.auth_issuer or base,
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "authorization_endpoint": f"{base}/auth/authorize",
            "token_endpoint": auth.token_url(base),
            "introspection_endpoint": f"{base}/auth/introspect",
            "revocation_endpoint": f"{base}/auth/revoke",
            "grant_types_supported": ["client_credentials", "authorization_code"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "scopes_supported": SCOPES_SUPPORTED,
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "capabilities": CAPABILITIES,
        })

    routes: list[BaseRoute] = [
        Route("/auth/token", oauth(token), methods=["POST"]),
        Route("/auth/introspect", oauth(introspect), methods=["POST"]),
        Route("/auth/revoke", oauth(revoke), methods=["POST"]),
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        Route("/.well-known/smart-configuration", smart_configuration, methods=["GET"]),
    ]
    try:
        from server.auth.login import login_routes
    except ImportError:
        return routes
    return [*routes, *login_routes(auth)]

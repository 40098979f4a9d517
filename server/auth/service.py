"""The authorization service one app holds (``app.state.auth``): key ring, token service, the
client-key cache, and :meth:`AuthService.principal`, which turns a request into the
:class:`~server.access.principal.Principal` it acts as."""

from __future__ import annotations

from contextvars import ContextVar

from starlette.requests import Request
from starlette.routing import BaseRoute

from server.access.principal import OPEN, Principal
from server.auth.assertion import authenticate
from server.auth.clients import ClientRecord
from server.auth.jwks import JwksCache
from server.auth.keys import KeyRing
from server.auth.oauth import OAuthError
from server.auth.tokens import TokenService
from server.errors import Unauthenticated
from server.settings import Settings
from server.stores.base import Store

REQUEST_BASE: ContextVar[str | None] = ContextVar("yidang_auth_base", default=None)
"""The base URL of the token request being answered (set by the token endpoint)."""


def request_base(settings: Settings, request: Request) -> str:
    """The FHIR base URL: settings.base_url, else the request's (worked out once per request: the
    token check and the handler both ask)."""
    if settings.base_url:
        return settings.base_url.rstrip("/")
    scope = request.scope
    base = scope.get("yidang.base")
    if base is None:
        host = next((value for name, value in scope.get("headers") or () if name == b"host"), None)
        key = (scope.get("scheme"), host, scope.get("app_root_path"), scope.get("root_path"), scope.get("server"))
        base = _BASES.get(key)
        if base is None:
            if len(_BASES) >= 256:
                _BASES.clear()
            base = _BASES[key] = str(request.base_url).rstrip("/")
        scope["yidang.base"] = base
    return str(base)


_BASES: dict[tuple[object, ...], str] = {}
"""Base URLs by what Starlette builds them from (scheme, Host header, root path, server address)."""


class AuthService:
    def __init__(self, settings: Settings, store: Store, keys: KeyRing | None = None,
                 jwks: JwksCache | None = None) -> None:
        self.settings = settings
        self.store = store
        self.keys = keys or KeyRing.from_settings(settings)
        self.jwks = jwks or JwksCache()
        self.tokens = TokenService(settings, store, self.keys, self.jwks)

    @property
    def enabled(self) -> bool:
        return self.settings.auth == "smart"

    def base(self, request: Request) -> str:
        return request_base(self.settings, request)

    def token_url(self, base: str) -> str:
        return f"{base}/auth/token"

    async def principal(self, request: Request) -> Principal:
        """OPEN when authorization is off; else the bearer token's principal (401 when missing or not valid)."""
        if not self.enabled:
            return OPEN
        token = bearer(request)
        if token is None:
            raise Unauthenticated("This server needs a bearer token (Authorization: Bearer …)", error=None)
        return await self.tokens.verify(token, self.base(request))

    async def authenticate_client(self, form: dict[str, str], base: str) -> ClientRecord:
        """The client a ``private_key_jwt`` assertion in ``form`` proves (OAuthError otherwise)."""
        return await authenticate(self.store, self.settings, self.jwks, form, self.token_url(base))

    async def check_assertion(self, client: ClientRecord, form: dict[str, str]) -> None:
        """The assertion in ``form`` proves ``client`` (for the authorization-code grant, called
        within the token endpoint, whose base URL it uses)."""
        base = REQUEST_BASE.get() or self.settings.base_url.rstrip("/")
        proved = await authenticate(self.store, self.settings, self.jwks, form, self.token_url(base))
        if proved.id != client.id:
            raise OAuthError("invalid_client", "the client_assertion is not the client's")

    def routes(self) -> list[BaseRoute]:
        from server.auth.endpoints import auth_routes

        return auth_routes(self)


def bearer(request: Request) -> str | None:
    """The bearer token of ``request`` (None: no Authorization header); Unauthenticated for another
    scheme, or for two headers (a proxy reading the other one would disagree about who asks)."""
    # the raw ASGI headers (names lower-cased by the server): cheaper than building request.headers
    values = [raw for name, raw in request.scope.get("headers") or () if name == b"authorization"]
    if len(values) > 1:
        raise Unauthenticated("Send one Authorization header, not several", error="invalid_request")
    value = values[0].decode("latin-1") if values else None
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("The Authorization header must be 'Bearer <token>'", error="invalid_request")
    return token.strip()

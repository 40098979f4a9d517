"""Security headers on every response and CORS with an allow-list (issue 13 §4), as pure ASGI
middleware (no per-request objects beyond a header list: they wrap every FHIR request).

- :class:`SecurityHeaders`: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``,
  ``Referrer-Policy: no-referrer``, ``Content-Security-Policy`` (:data:`API_CSP` unless the response
  brings its own: the HTML pages do, see :func:`page_csp`), ``Strict-Transport-Security`` when the
  request came over TLS, and ``Cache-Control: no-store`` (with ``Pragma: no-cache``, RFC 6749 §5.1) on
  ``/auth/*``.
- :class:`Cors`: for an origin in ``settings.cors_origins`` (``*``: any), the CORS response headers and
  preflight answers (before authentication: a preflight carries no token). Other origins get no CORS
  header at all, so the browser keeps the response from the page. Never ``Allow-Credentials``: the
  API authenticates with a bearer token in ``Authorization``, which is not a CORS credential.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Any, ClassVar

from server.http.ratelimit import AuthThrottle, RateLimiter, local_path
from server.settings import Settings

API_CSP = "default-src 'none'; frame-ancestors 'none'"
"""For API responses (JSON, XML): nothing may load, nothing may frame it."""
HSTS = "max-age=31536000"
CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
CORS_HEADERS = ("Accept", "Authorization", "Content-Type", "If-Match", "If-Modified-Since", "If-None-Exist",
                "If-None-Match", "Prefer", "X-Request-Id")
CORS_EXPOSE = ("ETag", "Location", "Content-Location", "Last-Modified", "Retry-After", "WWW-Authenticate")
CORS_MAX_AGE = 600

Headers = list[tuple[bytes, bytes]]


def page_csp(*, styles: Iterable[str] = (), form_action: str = "'none'") -> str:
    """A strict CSP for a server-rendered HTML page: nothing loads but its own inline ``<style>``
    blocks (allowed by hash, so no ``'unsafe-inline'``), no scripts, no framing."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in styles)
    style = f"style-src {hashes}; " if hashes else ""
    return (f"default-src 'none'; {style}img-src 'self' data:; base-uri 'none'; form-action {form_action}; "
            f"frame-ancestors 'none'")


def _names(headers: Headers) -> set[bytes]:
    return {name.lower() for name, _ in headers}


class SecurityHeaders:
    """Adds the security headers to every HTTP response, keeping any the response already set."""

    COMMON: ClassVar[tuple[tuple[bytes, bytes], ...]] = (
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"content-security-policy", API_CSP.encode()),
    )

    def __init__(self, app: Any, *, no_store_prefix: str = "/auth/") -> None:
        self.app = app
        self.no_store_prefix = no_store_prefix

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = scope.get("scheme") == "https"
        no_store = local_path(scope).startswith(self.no_store_prefix)

        async def send_secured(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers: Headers = list(message.get("headers", ()))
                present = _names(headers)
                if no_store:
                    headers = [(n, v) for n, v in headers if n.lower() not in (b"cache-control", b"pragma")]
                    headers += [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
                headers += [(n, v) for n, v in self.COMMON if n not in present]
                if tls and b"strict-transport-security" not in present:
                    headers.append((b"strict-transport-security", HSTS.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_secured)


class Cors:
    """CORS for the allowed origins only (``*`` in the list: any origin, answered with ``*``)."""

    def __init__(self, app: Any, origins: Iterable[str]) -> None:
        self.app = app
        allowed = {o.rstrip("/") for o in origins}
        self.any = "*" in allowed
        self.allowed = frozenset(allowed - {"*"})
        self.preflight: Headers = [
            (b"access-control-allow-methods", ", ".join(CORS_METHODS).encode()),
            (b"access-control-allow-headers", ", ".join(CORS_HEADERS).encode()),
            (b"access-control-max-age", str(CORS_MAX_AGE).encode()),
        ]
        self.expose = (b"access-control-expose-headers", ", ".join(CORS_EXPOSE).encode())

    def allow_origin(self, origin: str | None) -> bytes | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or None when it is not allowed."""
        if origin is None:
            return None
        if self.any:
            return b"*"
        return origin.encode("latin-1") if origin in self.allowed else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = preflight_method = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"access-control-request-method":
                preflight_method = value
        allow = self.allow_origin(origin)
        vary = [] if self.any else [(b"vary", b"Origin")]
        if allow is not None and scope["method"] == "OPTIONS" and preflight_method is not None:
            headers = [(b"access-control-allow-origin", allow), *self.preflight, *vary, (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        if allow is None and not vary:
            await self.app(scope, receive, send)
            return
        added = vary if allow is None else [(b"access-control-allow-origin", allow), self.expose, *vary]

        async def send_cors(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *added]}
            await send(message)

        await self.app(scope, receive, send_cors)


def install(app: Any, settings: Settings, limiter: RateLimiter) -> None:
    """Add the middleware to a Starlette/FastAPI app, outermost last: security headers around CORS
    around the ``/auth/*`` IP limit (so a 429 or a preflight answer carries them too)."""
    app.add_middleware(AuthThrottle, limiter=limiter)
    if settings.cors_origins:
        app.add_middleware(Cors, origins=settings.cors_origins)
    app.add_middleware(SecurityHeaders)

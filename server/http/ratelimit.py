"""Per-client rate limits (issue 13 §4): a token bucket per key, refilled at the rate of the client's
role (``settings.rate_limits``, requests per second; bursts of twice the rate; 0 = no limit).

The FHIR endpoint calls :meth:`RateLimiter.hit` with the client id and role after authentication;
:class:`AuthThrottle` limits ``/auth/*`` (token, authorize, login) by client IP, before any credential
is looked at, with the pseudo-role ``auth`` (default :data:`AUTH_RATE`). The buckets live in the
process: with ``--workers N`` a client may get up to N times its rate (each worker counts alone).
Memory is bounded: idle buckets (full again) are dropped as new hits come, and at most ``max_keys``
are kept (the least recently used goes first).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from server.errors import TooManyRequests
from server.http.responses import error_response
from server.settings import Settings

AUTH_ROLE = "auth"
"""The pseudo-role of ``/auth/*`` requests, limited per client IP."""
AUTH_RATE = 10.0
"""Requests per second per IP to ``/auth/*`` unless ``rate_limits`` names ``auth``."""
BURST = 2.0
"""Bucket capacity, in seconds of rate."""
DEFAULT_RATES: dict[str, float] = dict(Settings.model_fields["rate_limits"].default)
"""A role ``YIDANG_RATE_LIMITS`` leaves out keeps its default (give 0 to lift the limit)."""
MAX_KEYS = 100_000
SWEEP = 2
"""Idle buckets looked at (and dropped when full again) per hit."""


class Bucket:
    """A token bucket: ``tokens`` left at ``stamp`` (seconds of the limiter's clock)."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate * BURST)
        self.tokens = self.capacity
        self.stamp = now

    def take(self, now: float) -> float:
        """Take one token; returns 0 when taken, else the seconds until one is there."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def idle(self, now: float) -> bool:
        """Full again: dropping it changes nothing."""
        return self.tokens + (now - self.stamp) * self.rate >= self.capacity


class RateLimiter:
    """Token buckets by key (client id, or ``ip:…``); the rate comes from the role."""

    def __init__(self, settings: Settings | Mapping[str, float], *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = MAX_KEYS) -> None:
        rates = settings.rate_limits if isinstance(settings, Settings) else settings
        self.rates: dict[str, float] = {AUTH_ROLE: AUTH_RATE, **DEFAULT_RATES, **rates}
        self.clock = clock
        self.max_keys = max_keys
        self.buckets: OrderedDict[str, Bucket] = OrderedDict()

    def rate(self, role: str) -> float:
        """Requests per second for ``role`` (the default for a role the settings leave out); 0: no limit."""
        return max(0.0, float(self.rates.get(role, 0.0)))

    def hit(self, key: str, role: str) -> None:
        """Count one request of ``key``; :class:`TooManyRequests` (429, ``Retry-After`` in whole
        seconds, at least 1) when its bucket is empty."""
        rate = self.rate(role)
        if rate <= 0:
            return
        now = self.clock()
        bucket = self.buckets.get(key)
        if bucket is None or bucket.rate != rate:
            bucket = self.buckets[key] = Bucket(rate, now)
        else:
            self.buckets.move_to_end(key)
        wait = bucket.take(now)
        self._sweep(now)
        if wait:
            seconds = max(1, math.ceil(wait))
            raise TooManyRequests(f"Too many requests: the limit is {rate:g} per second (bursts of "
                                  f"{bucket.capacity:g}); retry after {seconds} s",
                                  headers={"Retry-After": str(seconds)})

    def _sweep(self, now: float) -> None:
        for _ in range(SWEEP):
            if not self.buckets:
                return
            oldest = next(iter(self.buckets))
            if len(self.buckets) > self.max_keys or self.buckets[oldest].idle(now):
                del self.buckets[oldest]
            else:
                return


class AuthThrottle:
    """ASGI middleware: ``/auth/*`` requests limited per client IP (password guessing, token floods);
    answers 429 with an OperationOutcome itself (middleware runs outside the exception handlers)."""

    def __init__(self, app: Any, limiter: RateLimiter, prefix: str = "/auth/") -> None:
        self.app = app
        self.limiter = limiter
        self.prefix = prefix

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and local_path(scope).startswith(self.prefix):
            client = scope.get("client")
            try:
                self.limiter.hit(f"ip:{client[0] if client else '?'}", AUTH_ROLE)
            except TooManyRequests as error:
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def local_path(scope: Mapping[str, Any]) -> str:
    """The request path below the mount point (``root_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path

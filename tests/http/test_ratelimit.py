"""Per-client rate limits (issue 13 §4): the token bucket with an injected clock, the per-role rates
of the settings, bounded memory, and over HTTP the ``/auth/*`` per-IP limit (429 with ``Retry-After``
and an OperationOutcome)."""

from __future__ import annotations

import httpx
import pytest

from server.errors import TooManyRequests
from server.http.ratelimit import AUTH_RATE, RateLimiter
from server.settings import Settings
from server.stores.base import Store
from tests.conftest import make_client


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(rates: dict[str, float], **kwargs: int) -> tuple[RateLimiter, Clock]:
    clock = Clock()
    return RateLimiter(rates, clock=clock, **kwargs), clock


def test_a_burst_of_twice_the_rate_then_refused_with_retry_after() -> None:
    rl, _ = limiter({"resident": 2})
    for _ in range(4):  # burst: 2 x 2/s
        rl.hit("app-1", "resident")
    with pytest.raises(TooManyRequests) as refused:
        rl.hit("app-1", "resident")
    assert refused.value.status == 429
    assert refused.value.headers["Retry-After"] == "1"
    assert "2 per second" in refused.value.message


def test_tokens_come_back_at_the_rate() -> None:
    rl, clock = limiter({"resident": 2})
    for _ in range(4):
        rl.hit("app-1", "resident")
    clock.now += 0.5  # one token back
    rl.hit("app-1", "resident")
    with pytest.raises(TooManyRequests):
        rl.hit("app-1", "resident")
    clock.now += 10  # refilled to the burst, not beyond
    for _ in range(4):
        rl.hit("app-1", "resident")
    with pytest.raises(TooManyRequests):
        rl.hit("app-1", "resident")


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    rl, _ = limiter({"slow": 0.1})  # one request per 10 s, burst of 1
    rl.hit("c", "slow")
    with pytest.raises(TooManyRequests) as refused:
        rl.hit("c", "slow")
    assert refused.value.headers["Retry-After"] == "10"
    rl2, _ = limiter({"fast": 1000})
    for _ in range(2000):
        rl2.hit("c", "fast")
    with pytest.raises(TooManyRequests) as fast:
        rl2.hit("c", "fast")
    assert fast.value.headers["Retry-After"] == "1"


def test_clients_are_counted_apart() -> None:
    rl, _ = limiter({"institution": 1})
    rl.hit("a", "institution")
    rl.hit("a", "institution")
    with pytest.raises(TooManyRequests):
        rl.hit("a", "institution")
    rl.hit("b", "institution")  # b has its own bucket


def test_zero_means_no_limit_and_left_out_roles_keep_their_default() -> None:
    rl, _ = limiter({"platform": 0, "resident": 5})
    for _ in range(10_000):
        rl.hit("ops", "platform")
    assert rl.buckets == {}
    assert rl.rate("institution") == Settings().rate_limits["institution"]
    assert rl.rate("auth") == AUTH_RATE
    assert rl.rate("nobody") == 0
    assert RateLimiter(Settings(rate_limits={"auditor": 3})).rate("auditor") == 3


def test_memory_is_bounded_idle_buckets_dropped() -> None:
    rl, clock = limiter({"resident": 10}, max_keys=100)
    for i in range(1000):
        rl.hit(f"client-{i}", "resident")
    assert len(rl.buckets) <= 101
    clock.now += 60  # every bucket full again: dropped as new hits come
    for _ in range(60):
        rl.hit("busy", "resident")
        clock.now += 0.1
    assert len(rl.buckets) < 10


def test_a_client_with_a_changed_role_rate_gets_a_new_bucket() -> None:
    rl, _ = limiter({"resident": 1, "platform": 100})
    rl.hit("x", "resident")
    rl.hit("x", "resident")
    with pytest.raises(TooManyRequests):
        rl.hit("x", "resident")
    rl.hit("x", "platform")


async def test_auth_endpoints_are_limited_per_ip_with_an_operation_outcome(store: Store) -> None:
    async with make_client(store, rate_limits={"auth": 1}) as client:  # burst of 2
        statuses = [(await client.post("/auth/token", data={"grant_type": "client_credentials"})).status_code
                    for _ in range(2)]
        assert 429 not in statuses
        refused = await client.post("/auth/token", data={"grant_type": "client_credentials"})
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        body = refused.json()
        assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "throttled"
        assert refused.headers["cache-control"] == "no-store"  # still a /auth/* response
        assert (await client.get("/metadata")).status_code == 200  # FHIR requests are not counted by IP


async def test_unlimited_auth_rate(store: Store) -> None:
    async with make_client(store, rate_limits={"auth": 0}) as client:
        for _ in range(30):
            r = await client.get("/auth/nothing-here")
            assert r.status_code != 429


async def test_the_app_carries_the_limiter_the_endpoint_calls(store: Store) -> None:
    async with make_client(store, rate_limits={"institution": 7}) as client:
        transport = client._transport
        assert isinstance(transport, httpx.ASGITransport)
        app = transport.app
        assert app.state.rate_limiter.rate("institution") == 7  # type: ignore[attr-defined]

"""CORS with an allow-list (issue 13 §4): listed origins get the CORS headers (and a preflight
answer without a token), others get none; ``*`` allows any origin without credentials; no
configured origins: no CORS at all."""

from __future__ import annotations

import httpx

from server.stores.base import Store
from tests.conftest import make_client

APP = "https://app.example.cn"
OTHER = "https://evil.example.com"


def cors_headers(r: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.startswith("access-control-")}


async def test_listed_origin_gets_cors_headers(store: Store) -> None:
    async with make_client(store, cors_origins=[APP, "https://other.example.cn"]) as client:
        r = await client.get("/metadata", headers={"Origin": APP})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == APP
    exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert {"etag", "location", "content-location", "last-modified"} <= exposed
    assert "access-control-allow-credentials" not in r.headers
    assert "Origin" in r.headers["vary"]


async def test_other_origins_get_no_cors_headers(store: Store) -> None:
    async with make_client(store, cors_origins=[APP]) as client:
        r = await client.get("/metadata", headers={"Origin": OTHER})
        assert r.status_code == 200 and cors_headers(r) == {}
        assert "Origin" in r.headers["vary"]  # caches keep the answers per origin apart
        preflight = await client.options("/Patient", headers={"Origin": OTHER, "Access-Control-Request-Method": "POST"})
        assert cors_headers(preflight) == {}
        assert preflight.status_code == 405  # not answered as a preflight: the route table's answer
        assert preflight.json()["resourceType"] == "OperationOutcome"


async def test_preflight_for_a_listed_origin_needs_no_token(store: Store) -> None:
    async with make_client(store, cors_origins=[APP], auth="smart") as client:
        r = await client.options("/Patient/123", headers={
            "Origin": APP, "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, content-type, if-match"})
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == APP
    methods = {m.strip() for m in r.headers["access-control-allow-methods"].split(",")}
    assert {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"} <= methods
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "if-match", "if-none-exist", "if-none-match", "prefer"} <= allowed
    assert int(r.headers["access-control-max-age"]) > 0
    assert r.headers["x-content-type-options"] == "nosniff"  # security headers on the preflight too


async def test_any_origin_with_star_and_no_credentials(store: Store) -> None:
    async with make_client(store, cors_origins=["*"]) as client:
        r = await client.get("/metadata", headers={"Origin": OTHER})
        assert r.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in r.headers
        preflight = await client.options("/Patient", headers={"Origin": OTHER, "Access-Control-Request-Method": "GET"})
        assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in preflight.headers


async def test_no_origins_configured_means_no_cors(store: Store) -> None:
    async with make_client(store) as client:
        r = await client.get("/metadata", headers={"Origin": APP})
        assert cors_headers(r) == {}
        preflight = await client.options("/Patient", headers={"Origin": APP, "Access-Control-Request-Method": "GET"})
        assert cors_headers(preflight) == {} and preflight.status_code == 405


async def test_errors_and_throttled_answers_carry_cors_for_listed_origins(store: Store) -> None:
    async with make_client(store, cors_origins=[APP], rate_limits={"auth": 0.5}) as client:
        missing = await client.get("/Patient/no-such-id", headers={"Origin": APP})
        assert missing.status_code == 404 and missing.headers["access-control-allow-origin"] == APP
        await client.get("/auth/x", headers={"Origin": APP})
        throttled = await client.get("/auth/x", headers={"Origin": APP})
        assert throttled.status_code == 429
        assert throttled.headers["access-control-allow-origin"] == APP  # the page can read Retry-After
        assert "retry-after" in throttled.headers["access-control-expose-headers"].lower()

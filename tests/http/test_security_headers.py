"""Security headers on every response (issue 13 §4): API responses, errors, the HTML pages (which
keep their own stricter-but-working CSP), HSTS only over TLS, no-store on ``/auth/*``."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from server.http.security import API_CSP, SecurityHeaders, page_csp
from server.stores.base import Store
from tests.conftest import BASE, make_client

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
COMMON = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}


def assert_common(r: httpx.Response) -> None:
    for name, value in COMMON.items():
        assert r.headers.get(name) == value, (r.request.url, name, r.headers)
    assert len(r.headers.get_list("content-security-policy")) == 1


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/metadata"), ("GET", "/healthz"), ("GET", "/Patient?_count=1"), ("GET", "/Patient/missing"),
    ("GET", "/Patient?bogus:modifier=1"), ("DELETE", "/metadata"), ("GET", "/no/such/route"),
    ("GET", "/openapi.json"),
])
async def test_every_api_response_has_the_headers(store: Store, method: str, path: str) -> None:
    async with make_client(store) as client:
        r = await client.request(method, path)
    assert_common(r)
    assert r.headers["content-security-policy"] == API_CSP
    assert "strict-transport-security" not in r.headers  # plain HTTP


async def test_hsts_when_the_request_came_over_tls(store: Store) -> None:
    async with make_client(store) as client:
        r = await client.get(BASE.replace("http://", "https://") + "/metadata")
    assert r.status_code == 200
    assert r.headers["strict-transport-security"].startswith("max-age=")
    assert_common(r)


async def test_auth_responses_are_not_stored(store: Store) -> None:
    async with make_client(store) as client:
        for r in (await client.post("/auth/token", data={"grant_type": "nonsense"}),
                  await client.get("/auth/no-such-endpoint")):
            assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
            assert_common(r)
        fhir = await client.get("/metadata")
        assert fhir.headers.get("cache-control") != "no-store"


def style_hashes(csp: str) -> set[str]:
    return set(re.findall(r"'sha256-([A-Za-z0-9+/=]+)'", csp))


def inline_styles(page: str) -> list[str]:
    return re.findall(r"<style>(.*?)</style>", page, flags=re.S)


@pytest.mark.parametrize(("path", "accept"), [("/", BROWSER), ("/docs", BROWSER)])
async def test_html_pages_keep_their_own_csp_that_allows_exactly_their_styles(
        store: Store, path: str, accept: str) -> None:
    async with make_client(store) as client:
        r = await client.get(path, headers={"Accept": accept})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert_common(r)
    csp = r.headers["content-security-policy"]
    assert csp != API_CSP
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
    assert "unsafe-inline" not in csp
    styles = inline_styles(r.text)
    assert styles, "the page has its style inline"
    assert style_hashes(csp) == {base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in styles}
    assert "<script" not in r.text


def test_page_csp_without_styles() -> None:
    csp = page_csp()
    assert "style-src" not in csp and csp.startswith("default-src 'none'")


async def test_the_middleware_keeps_headers_a_response_set() -> None:
    async def page(request: object) -> PlainTextResponse:
        return PlainTextResponse("x", headers={"Content-Security-Policy": "default-src 'self'",
                                               "X-Frame-Options": "SAMEORIGIN"})

    app = SecurityHeaders(Starlette(routes=[Route("/", page)]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/")
    assert r.headers.get_list("content-security-policy") == ["default-src 'self'"]
    assert r.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert r.headers["x-content-type-options"] == "nosniff"

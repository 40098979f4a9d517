"""A small Bulk Data client written against the IG (kick-off, poll, download), for the tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def kick_off(client: httpx.AsyncClient, path: str, params: Any = None, token: str | None = None,
                   **kw: Any) -> str:
    response = await client.get(path, params=params, headers={**ASYNC, **auth(token)}, **kw)
    assert response.status_code == 202, response.text
    return str(response.headers["Content-Location"])


async def wait(client: httpx.AsyncClient, status_url: str, token: str | None = None,
               timeout: float = 60.0) -> dict[str, Any]:
    """Poll until the manifest (200) comes; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(status_url, headers=auth(token))
        if response.status_code == 200:
            manifest: dict[str, Any] = response.json()
            return manifest
        assert response.status_code == 202, response.text
        assert "X-Progress" in response.headers and "Retry-After" in response.headers
        assert time.monotonic() < deadline, "the bulk job did not finish"
        await asyncio.sleep(0.05)


async def download(client: httpx.AsyncClient, url: str, token: str | None = None) -> list[dict[str, Any]]:
    response = await client.get(url, headers={"Accept": "application/fhir+ndjson", **auth(token)})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+ndjson")
    return [orjson.loads(line) for line in response.content.splitlines() if line.strip()]


async def everything(client: httpx.AsyncClient, manifest: dict[str, Any],
                     token: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """The exported resources by type, each file's line count checked against the manifest."""
    out: dict[str, list[dict[str, Any]]] = {}
    for item in manifest["output"]:
        rows = await download(client, item["url"], token)
        assert len(rows) == item["count"]
        out.setdefault(item["type"], []).extend(rows)
    return out

"""Helpers of the table-driven search tests (tests/http/test_search_*.py).

A module loads its fixture resources once per store (``load``, with client-chosen ids through
``PUT``), then every case is a query string and the ids it must return. Queries are written as
they would appear in a URL *before* percent-encoding (``date=ge2024-03-15T10:00:00+08:00``):
:func:`params` splits them at ``&`` and the first ``=`` only, and httpx encodes each value, so
``+``, ``#``, ``|`` and ``%`` in a case reach the server as written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import httpx

FHIR_JSON = {"Content-Type": "application/fhir+json"}
STRICT = {"Prefer": "handling=strict"}


def params(query: str) -> list[tuple[str, str]]:
    """``a=1&b=x=y`` -> [("a", "1"), ("b", "x=y")] (no percent-decoding: cases are plain text)."""
    out: list[tuple[str, str]] = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            out.append((name, value))
    return out


async def load(client: httpx.AsyncClient, resources: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Create each resource under its own id (``PUT [type]/[id]``); the stored bodies by id."""
    out: dict[str, dict[str, Any]] = {}
    for resource in resources:
        r = await client.put(f"/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON)
        assert r.status_code in (200, 201), r.text
        out[resource["id"]] = r.json()
    return out


async def bundle(client: httpx.AsyncClient, path: str, query: str | Sequence[tuple[str, str]],
                 headers: dict[str, str] | None = None) -> dict[str, Any]:
    """GET ``path?query``; asserts a 200 searchset Bundle and returns it."""
    items = params(query) if isinstance(query, str) else list(query)
    r = await client.get(path, params=items, headers=headers)
    assert r.status_code == 200, f"{path}?{query}: {r.status_code} {r.text[:800]}"
    body = r.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset", body
    return body


def entries(body: dict[str, Any], mode: str = "match") -> list[dict[str, Any]]:
    return [e["resource"] for e in body.get("entry", ()) if e.get("search", {}).get("mode") == mode]


def ids(body: dict[str, Any], mode: str = "match") -> list[str]:
    return [r["id"] for r in entries(body, mode)]


async def search_ids(client: httpx.AsyncClient, path: str, query: str,
                     headers: dict[str, str] | None = None) -> set[str]:
    """Ids of the matches of ``path?query`` (all on one page: ``_count=1000`` is added)."""
    body = await bundle(client, path, f"{query}&_count=1000", headers)
    found = ids(body)
    assert len(found) == len(set(found)), f"duplicates in {found}"
    return set(found)


async def all_pages(client: httpx.AsyncClient, path: str, query: str) -> list[str]:
    """Ids of every page of ``path?query``, following ``next`` links (order kept)."""
    body = await bundle(client, path, query)
    found = ids(body)
    for _ in range(1000):
        nxt = [link["url"] for link in body.get("link", ()) if link["relation"] == "next"]
        if not nxt:
            return found
        r = await client.get(nxt[0])
        assert r.status_code == 200, r.text
        body = r.json()
        found += ids(body)
    raise AssertionError("paging did not end")


def outcome(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert ``status`` and an OperationOutcome body; return it."""
    assert response.status_code == status, f"{response.status_code} {response.text[:800]}"
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"], body
    return body


def names_parameter(body: dict[str, Any], name: str) -> bool:
    """Whether an OperationOutcome names the search parameter ``name`` (expression or text)."""
    return any(name in i.get("expression", ()) or name in i.get("diagnostics", "") for i in body["issue"])

"""uri search over HTTP on both stores (http://hl7.org/fhir/R4/search.html#uri).

Exact match by default; ``:below`` finds URIs that start with the value, ``:above`` those the value
starts with (at ``/`` boundaries); canonicals with ``|version`` are found with or without it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.http.searching import load, search_ids

ACME = "http://acme.org/fhir/ValueSet"


def value_set(id_: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "ValueSet", "id": id_, "status": "active", "url": url, **extra}


RESOURCES: list[dict[str, Any]] = [
    value_set("v1", f"{ACME}/123"),
    value_set("v2", f"{ACME}/123/_history/5"),
    value_set("v3", "urn:oid:1.2.3.4"),
    value_set("v4", "http://acme.org/other/ValueSet/9"),
    value_set("v5", "http://acme.org"),
    {"resourceType": "ValueSet", "id": "v6", "status": "draft"},
]

CASES: list[tuple[str, set[str]]] = [
    (f"url={ACME}/123", {"v1"}),
    (f"url={ACME}/12", set()),
    (f"url={ACME}/123/", set()),
    (f"url={ACME.upper()}/123", set()),
    ("url=urn:oid:1.2.3.4", {"v3"}),
    ("url=urn:oid:1.2.3", set()),
    (f"url:below={ACME}/123", {"v1", "v2"}),
    ("url:below=http://acme.org/fhir/", {"v1", "v2"}),
    ("url:below=http://acme.org/", {"v1", "v2", "v4"}),
    ("url:below=urn:oid:1.2", {"v3"}),
    ("url:below=http://example.org", set()),
    (f"url:above={ACME}/123/_history/5", {"v1", "v2", "v5"}),
    (f"url:above={ACME}/123", {"v1", "v5"}),
    (f"url:above={ACME}/1234", {"v5"}),
    ("url:above=http://acme.org/other/ValueSet/9/x", {"v4", "v5"}),
    ("url:missing=true", {"v6"}),
    (f"url={ACME}/123,urn:oid:1.2.3.4", {"v1", "v3"}),
]


@pytest_asyncio.fixture(scope="module", autouse=True)
async def resources(client: httpx.AsyncClient) -> None:
    await load(client, RESOURCES)


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[q for q, _ in CASES])
async def test_uri_search(client: httpx.AsyncClient, query: str, expected: set[str]) -> None:
    assert await search_ids(client, "/ValueSet", query) == expected

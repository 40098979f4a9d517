"""A browser at the base URL gets a small HTML page; FHIR clients there still get FHIR."""

from __future__ import annotations

import httpx

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


async def test_browser_gets_the_landing_page(client: httpx.AsyncClient) -> None:
    r = await client.get("/", headers={"Accept": BROWSER})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "Yidang" in r.text and "/metadata" in r.text
    metadata = await client.get("/metadata", params={"_format": "json"})
    assert metadata.json()["resourceType"] == "CapabilityStatement"


async def test_fhir_clients_at_the_base_still_get_fhir(client: httpx.AsyncClient) -> None:
    r = await client.get("/", headers={"Accept": "application/fhir+json"})
    assert r.status_code == 200 and r.json()["resourceType"] == "Bundle"
    r = await client.get("/", params={"_count": "1"}, headers={"Accept": BROWSER})
    assert r.headers["content-type"].startswith("application/xml") or "fhir+xml" in r.headers["content-type"]
    r = await client.get("/", params={"_format": "json"}, headers={"Accept": BROWSER})
    assert r.json()["resourceType"] == "Bundle"

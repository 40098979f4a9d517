"""Large resources: MongoDB refuses one that cannot fit its 16 MiB document limit before doing the
costly work (validating, indexing), not after it; the embedded store has no such limit.

(That a large request does not stall the server's other requests is shown against the real
server process, in tests/test_serve_http.py.)"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from server.app import create_app
from server.errors import PayloadTooLarge
from server.search.model import Entry
from server.settings import Settings
from server.stores.mongo.schema import MAX_DOCUMENT_BYTES, check_document_size
from tests.conftest import BASE, open_store


def _many_given_names(count: int, names: int = 1) -> bytes:
    """A valid Patient whose BSON form is nearly twice its JSON: BSON spends a type byte, the
    array index as a key and a length on every short string."""
    return orjson.dumps({"resourceType": "Patient", "name": [{"given": ["abcdefghij"] * count}] * names})


async def test_mongo_refuses_a_resource_over_bson_limit_before_validating(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    store = await open_store("mongo", request, tmp_path_factory)
    try:
        app = create_app(Settings(base_url=BASE, log_requests=False), store=store)
        services = app.state.services
        validated: list[Any] = []
        validate = services.validate

        def spy(resource: dict[str, Any], **kwargs: Any) -> Any:
            validated.append(resource.get("resourceType"))
            return validate(resource, **kwargs)

        services.validate = spy
        body = _many_given_names(100_000, names=9)  # 11 MiB of JSON, within the body and parser limits
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"),
                                     base_url=BASE) as client:
            r = await client.post("/Patient", content=body, headers={"Content-Type": "application/fhir+json"})
            assert r.status_code == 413, r.text[:500]
            issue = r.json()["issue"][0]
            assert "16 MiB" in issue["diagnostics"] and "MongoDB" in issue["diagnostics"]
            assert validated == []  # refused before the validator ran
            r = await client.put("/Patient/too-big", content=body.replace(b'{"resourceType":"Patient",',
                                                                         b'{"resourceType":"Patient","id":"too-big",'),
                                 headers={"Content-Type": "application/fhir+json"})
            assert r.status_code == 413, r.text[:500]
            assert validated == []
            assert (await client.get("/Patient/too-big")).status_code == 404
            # a small resource is stored as ever
            r = await client.post("/Patient", content=_many_given_names(3),
                                  headers={"Content-Type": "application/fhir+json"})
            assert r.status_code == 201, r.text
    finally:
        await store.close()


def test_mongo_document_size_counts_the_index_entries() -> None:
    body = orjson.dumps({"resourceType": "Patient", "id": "p"})
    check_document_size("Patient", body, [])
    value = "x" * 1000
    entries = [Entry("string", "name", (f"{value}{i}", value)) for i in range(MAX_DOCUMENT_BYTES // 2000)]
    with pytest.raises(PayloadTooLarge, match="search index entries"):
        check_document_size("Patient", body, entries)
    check_document_size("Patient", body, entries[: len(entries) // 2])

"""Large resources: the costly work on them (validating, indexing) runs off the event loop, on every
write path; MongoDB refuses one that cannot fit its 16 MiB document limit before doing that work, not
after it; the embedded store has no such limit.

(That /healthz keeps answering meanwhile is also shown against the real server process, in
tests/test_serve_http.py.)"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import orjson
import pytest

from server.app import create_app
from server.errors import PayloadTooLarge
from server.search.model import Entry
from server.settings import Settings
from server.stores.base import Store
from server.stores.mongo.schema import MAX_DOCUMENT_BYTES, check_document_size
from tests.conftest import BASE, open_store, unique


def _many_given_names(count: int, names: int = 1) -> bytes:
    """A valid Patient whose BSON form is nearly twice its JSON: BSON spends a type byte, the
    array index as a key and a length on every short string."""
    return orjson.dumps({"resourceType": "Patient", "name": [{"given": ["abcdefghij"] * count}] * names})


@pytest.mark.slow  # builds an 11 MiB Patient: CI runs it
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


def _patient(id_: str | None = None, names: int = 6000) -> dict[str, Any]:
    """About 500 KiB, half a second of validating: well above the size from which the work leaves the loop."""
    return {"resourceType": "Patient", **({"id": id_} if id_ else {}),
            "name": [{"family": f"Fam{i}", "given": [f"Given{i}"]} for i in range(names)],
            "identifier": [{"system": "urn:oid:1.2.3", "value": f"v{i}"} for i in range(names)]}


async def _request(client: httpx.AsyncClient, how: str) -> httpx.Response:
    if how == "create":
        return await client.post("/Patient", json=_patient())
    if how == "update":
        return await client.put(f"/Patient/{(pid := unique())}", json=_patient(pid))
    if how == "transaction":
        entry = {"resource": _patient(), "request": {"method": "POST", "url": "Patient"}}
        return await client.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": [entry]})
    if how == "patch":
        created = await client.post("/Patient", json=_patient())
        patch = [{"op": "add", "path": "/gender", "value": "female"}]
        return await client.patch(f"/Patient/{created.json()['id']}", json=patch,
                                  headers={"Content-Type": "application/json-patch+json"})
    if how == "patch-in-transaction":
        created = await client.post("/Patient", json=_patient())
        data = base64.b64encode(orjson.dumps([{"op": "add", "path": "/gender", "value": "male"}])).decode()
        entry = {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data},
                 "request": {"method": "PATCH", "url": f"Patient/{created.json()['id']}"}}
        return await client.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": [entry]})
    assert how == "$validate"
    return await client.post("/Patient/$validate", json=_patient())


@pytest.mark.slow  # several MiB validated per case, ~50 s in all: CI runs it
@pytest.mark.parametrize("how", ["create", "update", "transaction", "patch", "patch-in-transaction", "$validate"])
async def test_validating_a_large_resource_leaves_the_event_loop_free(store: Store, how: str) -> None:
    """Ordering, not timing: the event loop ticks between the start and the end of validating the
    large resource. Were the validator run on the loop, no tick could come in between."""
    app = create_app(Settings(base_url=BASE, log_requests=False), store=store)
    services = app.state.services
    events: list[str] = []
    validate = services.validate

    def spy(resource: dict[str, Any], **kwargs: Any) -> Any:
        large = len(resource.get("name", ())) >= 6000
        events.append("start" if large else "small")
        try:
            return validate(resource, **kwargs)
        finally:
            events.append("end" if large else "small")

    services.validate = spy
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            events.append("tick")
            await asyncio.sleep(0.001)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE) as client:
        ticking = asyncio.create_task(ticker())
        try:
            r = await _request(client, how)
        finally:
            done.set()
            await ticking
    assert r.status_code in (200, 201), r.text[:500]
    last_start = len(events) - 1 - events[::-1].index("start")
    end = events.index("end", last_start)
    assert "tick" in events[last_start:end], "validation ran on the event loop"

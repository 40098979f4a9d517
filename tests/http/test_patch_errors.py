"""A JSON Patch that is malformed, or that leaves no well-formed resource, is the client's error: a 4xx
OperationOutcome that names the problem, on both stores, and nothing is stored
(http://hl7.org/fhir/R4/http.html#patch, RFC 6902, RFC 6901 for pointers)."""

from __future__ import annotations

import httpx
import pytest

PATCH = {"Content-Type": "application/json-patch+json"}


async def _patient(client: httpx.AsyncClient) -> dict:
    r = await client.post("/Patient", json={"resourceType": "Patient", "gender": "male",
                                            "meta": {"tag": [{"code": "t"}]}})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize(
    ("ops", "named"),
    [
        ([{"op": "add", "path": "x", "value": 1}], "'x'"),  # a pointer starts with /
        ([{"op": "add", "path": "/x/~2", "value": 1}], "~2"),  # only ~0 and ~1 are escapes
        ([{"op": "copy", "from": "gender", "path": "/x"}], "'gender'"),
        ([{"op": "add", "path": "/gender", "value": "male"}, {"op": "move", "from": "/a~", "path": "/b"}], "1"),
    ],
)
async def test_invalid_pointer_is_400(client: httpx.AsyncClient, ops: list, named: str) -> None:
    p = await _patient(client)
    r = await client.patch(f"/Patient/{p['id']}", json=ops, headers=PATCH)
    assert r.status_code == 400, r.text
    issue = r.json()["issue"][0]
    assert "pointer" in issue["diagnostics"].lower() and named in issue["diagnostics"]
    assert (await client.get(f"/Patient/{p['id']}")).json()["meta"]["versionId"] == "1"


@pytest.mark.parametrize(
    ("ops", "element"),
    [
        ([{"op": "replace", "path": "/meta", "value": []}], "meta"),
        ([{"op": "replace", "path": "/meta", "value": "text"}], "meta"),
        ([{"op": "replace", "path": "/meta", "value": None}], "meta"),
        ([{"op": "replace", "path": "/id", "value": 5}], "id"),
        ([{"op": "remove", "path": "/id"}], "id"),
        ([{"op": "remove", "path": "/resourceType"}], "resourceType"),
        ([{"op": "replace", "path": "/resourceType", "value": ["Patient"]}], "resourceType"),
    ],
)
async def test_patch_that_breaks_the_resource_frame_is_422(client: httpx.AsyncClient, ops: list,
                                                           element: str) -> None:
    p = await _patient(client)
    r = await client.patch(f"/Patient/{p['id']}", json=ops, headers=PATCH)
    assert r.status_code == 422, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == [element]
    assert (await client.get(f"/Patient/{p['id']}")).json()["meta"]["versionId"] == "1"


async def test_conditional_patch_with_invalid_pointer_is_400(client: httpx.AsyncClient) -> None:
    p = await _patient(client)
    r = await client.patch(f"/Patient?_id={p['id']}", json=[{"op": "remove", "path": "meta"}], headers=PATCH)
    assert r.status_code == 400, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_patch_in_a_transaction_with_invalid_pointer_is_400(client: httpx.AsyncClient) -> None:
    import base64
    import json

    p = await _patient(client)
    ops = [{"op": "replace", "path": "/meta", "value": []}]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": {"resourceType": "Binary", "contentType": "application/json-patch+json",
                     "data": base64.b64encode(json.dumps(ops).encode()).decode()},
        "request": {"method": "PATCH", "url": f"Patient/{p['id']}"}}]}
    r = await client.post("/", json=bundle)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert (await client.get(f"/Patient/{p['id']}")).json()["meta"]["versionId"] == "1"

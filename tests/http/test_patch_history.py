"""patch (JSON Patch) and history on both stores (http://hl7.org/fhir/R4/http.html#patch, #history)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import unique

PATCH = {"Content-Type": "application/json-patch+json"}


async def _patient(client: httpx.AsyncClient, **extra: object) -> dict:
    r = await client.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "Liu"}], **extra})
    assert r.status_code == 201
    return r.json()


async def test_json_patch_updates_and_versions(client: httpx.AsyncClient) -> None:
    p = await _patient(client)
    ops = [
        {"op": "add", "path": "/gender", "value": "female"},
        {"op": "replace", "path": "/name/0/family", "value": "Ma"},
    ]
    r = await client.patch(f"/Patient/{p['id']}", json=ops, headers=PATCH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["gender"] == "female" and body["name"][0]["family"] == "Ma"
    assert body["meta"]["versionId"] == "2"
    history = (await client.get(f"/Patient/{p['id']}/_history")).json()
    assert history["entry"][0]["request"]["method"] == "PUT"


@pytest.mark.parametrize(
    ("ops", "headers", "status"),
    [
        ([{"op": "add", "path": "/active", "value": "yes"}], PATCH, 422),  # result invalid
        ([{"op": "replace", "path": "/id", "value": "other"}], PATCH, 422),  # id change
        ([{"op": "replace", "path": "/resourceType", "value": "Group"}], PATCH, 422),
        ([{"op": "test", "path": "/gender", "value": "male"}], PATCH, 422),  # failed test op
        ([{"op": "remove", "path": "/nothing/here"}], PATCH, 422),
        ([{"op": "jump", "path": "/gender"}], PATCH, 400),  # not an operation
        ({"op": "add"}, PATCH, 400),  # not an array
        ([{"op": "add", "path": "/gender", "value": "male"}], {"Content-Type": "application/fhir+json"}, 415),
    ],
)
async def test_bad_patches_change_nothing(client: httpx.AsyncClient, ops: object, headers: dict, status: int) -> None:
    p = await _patient(client)
    r = await client.patch(f"/Patient/{p['id']}", json=ops, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert (await client.get(f"/Patient/{p['id']}")).json()["meta"]["versionId"] == "1"


async def test_patch_missing_and_deleted(client: httpx.AsyncClient) -> None:
    ops = [{"op": "add", "path": "/gender", "value": "male"}]
    assert (await client.patch(f"/Patient/{unique()}", json=ops, headers=PATCH)).status_code == 404
    p = await _patient(client)
    await client.delete(f"/Patient/{p['id']}")
    assert (await client.patch(f"/Patient/{p['id']}", json=ops, headers=PATCH)).status_code == 410


async def test_patch_with_if_match(client: httpx.AsyncClient) -> None:
    p = await _patient(client)
    ops = [{"op": "add", "path": "/gender", "value": "male"}]
    r = await client.patch(f"/Patient/{p['id']}", json=ops, headers={**PATCH, "If-Match": 'W/"5"'})
    assert r.status_code == 412


async def test_instance_history_newest_first_with_deletes(client: httpx.AsyncClient) -> None:
    p = await _patient(client)
    url = f"/Patient/{p['id']}"
    await client.put(url, json={**p, "gender": "male"})
    await client.delete(url)
    bundle = (await client.get(f"{url}/_history")).json()
    assert bundle["type"] == "history"
    versions = [e["response"]["etag"] for e in bundle["entry"]]
    assert versions == ['W/"3"', 'W/"2"', 'W/"1"']
    assert "resource" not in bundle["entry"][0]
    assert bundle["entry"][0]["request"]["method"] == "DELETE"
    assert bundle["entry"][2]["request"] == {"method": "POST", "url": "Patient"}


async def test_history_paging_count_and_since(client: httpx.AsyncClient) -> None:
    p = await _patient(client)
    url = f"/Patient/{p['id']}"
    current = p
    for n in range(4):
        current = (await client.put(url, json={**current, "birthDate": f"200{n}-01-01"})).json()
    page = (await client.get(f"{url}/_history?_count=2")).json()
    assert [e["response"]["etag"] for e in page["entry"]] == ['W/"5"', 'W/"4"']
    next_url = next(link["url"] for link in page["link"] if link["relation"] == "next")
    page2 = (await client.get(next_url)).json()
    assert [e["response"]["etag"] for e in page2["entry"]] == ['W/"3"', 'W/"2"']
    since = current["meta"]["lastUpdated"]
    recent = (await client.get(f"{url}/_history", params={"_since": since})).json()
    assert [e["response"]["etag"] for e in recent["entry"]] == ['W/"5"']
    assert (await client.get(f"{url}/_history?_since=yesterday")).status_code == 400
    assert (await client.get(f"{url}/_history?_count=-1")).status_code == 400


async def test_history_at_gives_the_version_current_then(client: httpx.AsyncClient) -> None:
    p = await _patient(client)
    url = f"/Patient/{p['id']}"
    v2 = (await client.put(url, json={**p, "gender": "male"})).json()
    await client.put(url, json={**v2, "gender": "female"})
    at = (await client.get(f"{url}/_history", params={"_at": v2["meta"]["lastUpdated"]})).json()
    assert [e["response"]["etag"] for e in at["entry"]] == ['W/"2"']


async def test_type_and_system_history(client: httpx.AsyncClient) -> None:
    marker = unique("hist")
    r = await client.post("/Organization", json={"resourceType": "Organization", "name": marker})
    type_history = (await client.get("/Organization/_history?_count=5")).json()
    assert any(e.get("resource", {}).get("name") == marker for e in type_history["entry"])
    system = (await client.get("/_history?_count=5")).json()
    assert system["entry"][0]["fullUrl"].endswith(f"Organization/{r.json()['id']}")


async def test_history_of_unknown_resource_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"/Patient/{unique()}/_history")).status_code == 404
    assert (await client.get("/NoSuchType/_history")).status_code == 404

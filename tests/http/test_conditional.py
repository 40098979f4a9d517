"""Conditional create/update/delete/patch and concurrency on both stores
(http://hl7.org/fhir/R4/http.html#ccreate, #cond-update, #3.1.0.7.1)."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import unique

SYSTEM = "urn:oid:2.16.156.10011.1.3"


def person(value: str, **extra: object) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": value}], **extra}


async def test_conditional_create_matches_existing(client: httpx.AsyncClient) -> None:
    value = unique("id")
    header = {"If-None-Exist": f"identifier={SYSTEM}|{value}"}
    first = await client.post("/Patient", json=person(value), headers=header)
    assert first.status_code == 201
    second = await client.post("/Patient", json=person(value, gender="male"), headers=header)
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert "gender" not in second.json()


async def test_conditional_create_with_several_matches_is_412(client: httpx.AsyncClient) -> None:
    value = unique("dup")
    await client.post("/Patient", json=person(value))
    await client.post("/Patient", json=person(value))
    r = await client.post("/Patient", json=person(value), headers={"If-None-Exist": f"identifier={value}"})
    assert r.status_code == 412
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_conditional_create_bad_criteria_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post("/Patient", json=person("x"), headers={"If-None-Exist": "birthdate=notadate"})
    assert r.status_code == 400


async def test_64_concurrent_conditional_creates_make_one_resource(client: httpx.AsyncClient) -> None:
    value = unique("race")
    header = {"If-None-Exist": f"identifier={SYSTEM}|{value}"}
    responses = await asyncio.gather(*(client.post("/Patient", json=person(value), headers=header) for _ in range(64)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1, statuses
    assert statuses.count(200) == 63, statuses
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    found = (await client.get("/Patient", params={"identifier": f"{SYSTEM}|{value}"})).json()
    assert found["total"] == 1 if "total" in found else len(found["entry"]) == 1


async def test_concurrent_if_match_updates_lose_nothing(client: httpx.AsyncClient) -> None:
    created = (await client.post("/Patient", json=person(unique("cc")))).json()
    url = f"/Patient/{created['id']}"
    attempts = [
        client.put(url, json={**created, "birthDate": f"19{n:02d}-01-01"}, headers={"If-Match": 'W/"1"'})
        for n in range(16)
    ]
    responses = await asyncio.gather(*attempts)
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1, statuses
    assert statuses.count(412) == 15, statuses
    winner = next(r.json() for r in responses if r.status_code == 200)
    assert (await client.get(url)).json()["birthDate"] == winner["birthDate"]


async def test_conditional_update(client: httpx.AsyncClient) -> None:
    value = unique("cu")
    url = f"/Patient?identifier={SYSTEM}|{value}"
    created = await client.put(url, json=person(value, gender="male"))
    assert created.status_code == 201
    updated = await client.put(url, json=person(value, gender="female"))
    assert updated.status_code == 200
    assert updated.json()["id"] == created.json()["id"]
    assert updated.json()["meta"]["versionId"] == "2"
    wrong_id = await client.put(url, json=person(value, id="someone-else"))
    assert wrong_id.status_code == 400
    await client.post("/Patient", json=person(value))
    several = await client.put(url, json=person(value))
    assert several.status_code == 412


async def test_conditional_delete_single_and_multiple(client: httpx.AsyncClient) -> None:
    value = unique("cd")
    a = (await client.post("/Patient", json=person(value))).json()
    b = (await client.post("/Patient", json=person(value))).json()
    r = await client.delete(f"/Patient?identifier={value}")
    assert r.status_code == 204
    assert (await client.get(f"/Patient/{a['id']}")).status_code == 410
    assert (await client.get(f"/Patient/{b['id']}")).status_code == 410
    none = await client.delete(f"/Patient?identifier={unique('nomatch')}")
    assert none.status_code == 204
    assert (await client.delete("/Patient")).status_code == 400


async def test_conditional_delete_single_mode_refuses_several(store) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import make_client

    async with make_client(store, conditional_delete="single") as single:
        value = unique("cds")
        await single.post("/Patient", json=person(value))
        await single.post("/Patient", json=person(value))
        r = await single.delete(f"/Patient?identifier={value}")
        assert r.status_code == 412
        assert len((await single.get(f"/Patient?identifier={value}")).json()["entry"]) == 2


async def test_conditional_patch(client: httpx.AsyncClient) -> None:
    value = unique("cp")
    await client.post("/Patient", json=person(value))
    ops = [{"op": "add", "path": "/gender", "value": "other"}]
    r = await client.patch(f"/Patient?identifier={value}", json=ops,
                           headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 200
    assert r.json()["gender"] == "other"
    missing = await client.patch(f"/Patient?identifier={unique()}", json=ops,
                                 headers={"Content-Type": "application/json-patch+json"})
    assert missing.status_code == 404

"""SearchParameter resources through the API, on both stores
(http://hl7.org/fhir/R4/searchparameter.html, http://hl7.org/fhir/R4/search.html#custom).

Created, updated and deleted ones take effect for new writes at once; one the server cannot index
is refused with 422 and nothing is stored; stored ones are active again after a restart; the
CapabilityStatement lists every active parameter.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from server.search.registry import SearchRegistry
from server.settings import Settings
from server.stores.base import Store
from server.stores.mongo import MongoStore
from server.stores.sqlite import SqliteStore
from tests.conftest import BASE, database_uri, make_client

NICKNAME = "Patient.name.where(use='nickname').given"


def search_parameter(code: str, **changes: object) -> dict:
    sp = {
        "resourceType": "SearchParameter",
        "url": f"http://example.org/fhir/SearchParameter/{code}",
        "name": code,
        "status": "active",
        "description": f"test parameter {code}",
        "code": code,
        "base": ["Patient"],
        "type": "string",
        "expression": NICKNAME,
    }
    sp.update(changes)
    return sp


def patient(nickname: str, family: str = "Custom") -> dict:
    return {"resourceType": "Patient", "name": [{"use": "nickname", "given": [nickname]},
                                                {"use": "official", "family": family}]}


async def ids(client: httpx.AsyncClient, params: dict, headers: dict | None = None) -> set[str]:
    r = await client.get("/Patient", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return {e["resource"]["id"] for e in r.json().get("entry", ()) if e["search"]["mode"] == "match"}


async def create(client: httpx.AsyncClient, resource: dict) -> str:
    r = await client.post(f"/{resource['resourceType']}", json=resource)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def capability_params(cs: dict, type_: str) -> dict[str, dict]:
    resource = next(r for r in cs["rest"][0]["resource"] if r["type"] == type_)
    return {p["name"]: p for p in resource.get("searchParam", ())}


async def test_created_parameter_indexes_new_writes_at_once(client: httpx.AsyncClient) -> None:
    code = f"nick{uuid.uuid4().hex[:6]}"
    before = await create(client, patient("Zhaoyun"))
    strict = {"Prefer": "handling=strict"}
    r = await client.get("/Patient", params={code: "Zhao"}, headers=strict)
    assert r.status_code == 400  # not a parameter yet
    sp_id = await create(client, search_parameter(code))
    after = await create(client, patient("Zhaofei"))
    assert await ids(client, {code: "Zhao"}, strict) == {after}  # the earlier write awaits $reindex
    assert await ids(client, {code: "zhaofei"}) == {after}
    r = await client.post(f"/Patient/{before}/$reindex")
    assert r.status_code == 200, r.text
    assert await ids(client, {code: "Zhao"}) == {before, after}
    cs = (await client.get("/metadata")).json()
    listed = capability_params(cs, "Patient")[code]
    assert listed == {"name": code, "type": "string", "definition": search_parameter(code)["url"]}
    assert code not in capability_params(cs, "Observation")
    # update: a new expression applies to the next write
    sp = (await client.get(f"/SearchParameter/{sp_id}")).json()
    sp["expression"] = "Patient.name.where(use='official').family"
    assert (await client.put(f"/SearchParameter/{sp_id}", json=sp)).status_code == 200
    third = await create(client, patient("Other", family="Zhaoqian"))
    assert third in await ids(client, {code: "Zhaoqian"})
    # delete: the parameter is gone from search and from the CapabilityStatement
    assert (await client.delete(f"/SearchParameter/{sp_id}")).status_code == 204
    r = await client.get("/Patient", params={code: "Zhao"}, headers=strict)
    assert r.status_code == 400
    assert code not in capability_params((await client.get("/metadata")).json(), "Patient")


async def test_url_change_deactivates_the_old_url(client: httpx.AsyncClient) -> None:
    old, new = f"old{uuid.uuid4().hex[:6]}", f"new{uuid.uuid4().hex[:6]}"
    sp_id = await create(client, search_parameter(old))
    sp = (await client.get(f"/SearchParameter/{sp_id}")).json()
    sp.update(url=search_parameter(new)["url"], code=new, name=new)
    assert (await client.put(f"/SearchParameter/{sp_id}", json=sp)).status_code == 200
    params = capability_params((await client.get("/metadata")).json(), "Patient")
    assert new in params and old not in params


async def test_two_stored_parameters_with_one_url(client: httpx.AsyncClient) -> None:
    code = f"dup{uuid.uuid4().hex[:6]}"
    first = await create(client, search_parameter(code))
    second = await create(client, search_parameter(code, expression="Patient.name.where(use='official').family"))
    pid = await create(client, patient("Nick", family="Dupfamily"))
    assert await ids(client, {code: "Dupfamily"}) == {pid}  # the newer one is active
    assert (await client.delete(f"/SearchParameter/{second}")).status_code == 204
    other = await create(client, patient("Dupnick"))
    assert await ids(client, {code: "Dupnick"}) == {other}  # the remaining one took over
    assert (await client.delete(f"/SearchParameter/{first}")).status_code == 204
    r = await client.get("/Patient", params={code: "x"}, headers={"Prefer": "handling=strict"})
    assert r.status_code == 400


async def test_token_parameter_on_two_bases(client: httpx.AsyncClient) -> None:
    code = f"flag{uuid.uuid4().hex[:6]}"
    await create(client, search_parameter(code, type="token", base=["Patient", "Practitioner"],
                                          expression="Patient.active | Practitioner.active"))
    p = await create(client, {"resourceType": "Patient", "active": True})
    d = await create(client, {"resourceType": "Practitioner", "active": True})
    assert p in await ids(client, {code: "true"})
    r = await client.get("/Practitioner", params={code: "true"})
    assert d in {e["resource"]["id"] for e in r.json()["entry"]}


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"expression": "Patient.name.where("}, "expression"),
        ({"type": "reference", "expression": "Patient.generalPractitioner.resolve(("}, "expression"),
        ({"type": "composite", "component": [{"definition": "http://example.org/none", "expression": "code"}]},
         "component"),
        ({"base": ["NotAType"], "expression": "NotAType.name"}, "base"),
        ({"type": "bogus"}, "search-param-type"),  # a required binding, refused by validation first
    ],
)
async def test_parameters_the_server_cannot_index_are_refused(client: httpx.AsyncClient, changes: dict,
                                                              why: str) -> None:
    code = f"bad{uuid.uuid4().hex[:6]}"
    sp = search_parameter(code, **changes)
    r = await client.post("/SearchParameter", json=sp)
    assert r.status_code == 422, r.text
    assert why in r.json()["issue"][0]["diagnostics"]
    r = await client.put(f"/SearchParameter/{code}", json={**sp, "id": code})
    assert r.status_code == 422, r.text
    found = await client.get("/SearchParameter", params={"url": sp["url"], "_summary": "count"})
    assert found.json()["total"] == 0  # nothing stored
    r = await client.get("/Patient", params={code: "x"}, headers={"Prefer": "handling=strict"})
    assert r.status_code == 400  # and nothing activated


async def test_refused_parameter_in_a_transaction_stores_nothing(client: httpx.AsyncClient) -> None:
    good, bad = f"good{uuid.uuid4().hex[:6]}", f"bad{uuid.uuid4().hex[:6]}"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": search_parameter(good), "request": {"method": "POST", "url": "SearchParameter"}},
        {"resource": search_parameter(bad, expression="Patient.(("),
         "request": {"method": "POST", "url": "SearchParameter"}},
    ]}
    r = await client.post("/", json=bundle)
    assert r.status_code == 422, r.text
    r = await client.get("/Patient", params={good: "x"}, headers={"Prefer": "handling=strict"})
    assert r.status_code == 400  # the rolled-back good one never became active


async def test_every_active_parameter_is_in_the_capability_statement(client: httpx.AsyncClient) -> None:
    cs = (await client.get("/metadata")).json()
    registry = SearchRegistry()
    for type_ in ("Observation", "Patient", "Encounter", "Bundle"):
        expected = {code for code, p in registry.for_type(type_).items() if registry.is_supported(p)}
        listed = set(capability_params(cs, type_))
        assert expected <= listed, (type_, expected - listed)
        assert "near" not in listed and "_text" not in listed


async def _reopened(store: Store, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                    ) -> tuple[Store, Store]:
    """Two store objects on one fresh location: the process before and after a restart."""
    if store.kind == "sqlite":
        path = tmp_path_factory.mktemp("restart")
        return SqliteStore(path), SqliteStore(path)
    uri = database_uri(request.getfixturevalue("mongo_server_uri"), f"t_{uuid.uuid4().hex[:12]}")
    return MongoStore(uri), MongoStore(uri)


async def test_stored_parameters_are_active_after_a_restart(  # type: ignore[no-untyped-def]
        store, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
    first, second = await _reopened(store, request, tmp_path_factory)
    await first.open()
    try:
        async with make_client(first) as client:
            await create(client, search_parameter("restartnick"))
            pid = await create(client, patient("Lazarus"))
    finally:
        await first.close()
    from server.app import create_app

    app = create_app(Settings(base_url=BASE, log_requests=False), store=second)
    async with app.router.lifespan_context(app):  # opens the store, loads SearchParameters
        transport = httpx.ASGITransport(app=app, root_path="/fhir")
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            assert await ids(client, {"restartnick": "Laz"}, {"Prefer": "handling=strict"}) == {pid}
            params = capability_params((await client.get("/metadata")).json(), "Patient")
            assert "restartnick" in params

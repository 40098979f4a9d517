"""Data grading and masking through HTTP on both stores (issue 14 §3).

Institution A writes a Patient (居民身份证号, phone, address, Chinese name), an HIV Condition (level 5)
and an ordinary Observation. Readers of institution A with different clearances (per-client
overrides: ``a3`` = 3, ``a2`` = 2; ``a`` has the institution role's 4; ``btg`` declares break-glass)
read them by every response path; the platform sees everything whole; with authorization off
nothing is masked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from server.access.principal import Principal
from server.app import create_app
from server.settings import Settings
from server.stores.base import Store
from tests.access.test_leaks import FakeAuth
from tests.conftest import BASE, make_client, unique

ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"
LEVEL = "http://yidang.org/fhir/CodeSystem/data-level"
CATEGORY = "http://yidang.org/fhir/CodeSystem/data-category"
CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
REDACTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "REDACTED",
            "display": "redacted"}
ICD10 = "http://hl7.org/fhir/sid/icd-10"


def patient(run: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "text": {"status": "generated",
                 "div": '<div xmlns="http://www.w3.org/1999/xhtml">张三 11010519491231002X</div>'},
        "identifier": [{"system": ID_SYSTEM, "value": "11010519491231002X"},
                       {"system": "http://example.org/run", "value": run}],
        "name": [{"text": "张三", "family": "张", "given": ["三"]}],
        "telecom": [{"system": "phone", "value": "13812345678"}],
        "gender": "male",
        "birthDate": "1949-12-31",
        "address": [{"text": "北京市东城区东华门街道1号", "line": ["东华门街道1号"], "state": "北京市",
                     "city": "北京市", "district": "东城区", "postalCode": "100010"}],
    }


def security(resource: dict[str, Any]) -> dict[str, str]:
    return {c["system"]: c["code"] for c in resource.get("meta", {}).get("security", [])}


class World:
    def __init__(self, client: httpx.AsyncClient, run: str) -> None:
        self.client = client
        self.run = run
        self.ids: dict[str, str] = {}

    async def as_(self, who: str, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {who}", **kw.pop("headers", {})}
        return await self.client.request(method, url, headers=headers, **kw)

    async def get(self, who: str, url: str, **kw: Any) -> dict[str, Any]:
        r = await self.as_(who, "GET", url, **kw)
        assert r.status_code == 200, r.text
        return r.json()

    async def create(self, who: str, resource: dict[str, Any], key: str) -> dict[str, Any]:
        r = await self.as_(who, "POST", f"/{resource['resourceType']}", json=resource,
                           headers={"Prefer": "return=representation"})
        assert r.status_code == 201, r.text
        self.ids[key] = r.json()["id"]
        return r.json()


@pytest_asyncio.fixture(scope="module")
async def world(store: Store) -> AsyncIterator[World]:
    run = unique("gr").replace("-", "")
    inst = f"A{run}"
    app = create_app(Settings(base_url=BASE, log_requests=False, clearance_clients={"a3": 3, "a2": 2}), store=store)

    def inst_principal(name: str, purpose: str | None = None) -> Principal:
        return Principal(name, "client", "institution", inst, ("system/*.*",), client_id=name, purpose=purpose)

    app.state.auth = FakeAuth({
        "a": inst_principal("a"), "a3": inst_principal("a3"), "a2": inst_principal("a2"),
        "btg": inst_principal("btg", "BTG"),
        "p": Principal("p", "client", "platform", f"P{run}", ("system/*.*",), client_id="p"),
    })
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE)
    w = World(client, run)
    await w.create("a", patient(run), "pat")
    pid = w.ids["pat"]
    await w.create("a", {"resourceType": "Condition", "subject": {"reference": f"Patient/{pid}", "display": "张三"},
                         "code": {"coding": [{"system": ICD10, "code": "B20.1"}], "text": "HIV disease"},
                         "note": [{"text": "HIV 阳性"}], "identifier": [{"value": run}]}, "hiv")
    await w.create("a", {"resourceType": "Observation", "status": "final", "identifier": [{"value": run}],
                         "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                         "subject": {"reference": f"Patient/{pid}", "display": "张三"},
                         "valueQuantity": {"value": 72, "unit": "/min"}}, "obs")
    yield w
    await client.aclose()


def assert_masked_patient(p: dict[str, Any], *, clearance: int) -> None:
    assert REDACTED in p["meta"]["security"]
    assert "text" not in p  # the narrative repeats what is masked
    assert p["identifier"][0]["value"] == "110105********002X"
    assert p["telecom"][0]["value"] == "138****5678"
    assert p["address"][0] == {"state": "北京市", "city": "北京市", "district": "东城区", "text": "北京市北京市东城区"}
    if clearance < 3:
        assert p["name"][0] == {"text": "张*", "family": "张", "given": ["*"]}
        assert p["birthDate"] == "1949"
    else:
        assert p["name"][0]["text"] == "张三"
        assert p["birthDate"] == "1949-12-31"
    assert security(p)[LEVEL] == "L4"


async def test_stamped_on_create(world: World) -> None:
    p = await world.get("p", f"/Patient/{world.ids['pat']}")
    assert security(p) == {LEVEL: "L4", CATEGORY: "个人属性", CONF: "R"}
    c = await world.get("p", f"/Condition/{world.ids['hiv']}")
    assert security(c) == {LEVEL: "L5", CATEGORY: "健康状况", CONF: "V"}
    o = await world.get("p", f"/Observation/{world.ids['obs']}")
    assert security(o) == {LEVEL: "L3", CATEGORY: "健康状况", CONF: "N"}


async def test_client_labels_replaced_others_kept(world: World) -> None:
    sent = patient(unique("x"))
    sent["meta"] = {"security": [{"system": LEVEL, "code": "L1"}, {"system": CONF, "code": "U"},
                                 {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}]}
    created = await world.create("p", sent, "lab")
    labels = created["meta"]["security"]
    assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"} in labels
    assert [c["code"] for c in labels if c["system"] == LEVEL] == ["L4"]
    assert [c["code"] for c in labels if c["system"] == CONF] == ["R"]
    sent = patient(unique("x"))
    sent["meta"] = {"security": [{"system": CONF, "code": "V"}]}  # stricter than the level's R: kept
    assert [c["code"] for c in (await world.create("p", sent, "lab2"))["meta"]["security"] if c["system"] == CONF] \
        == ["V"]


async def test_stamped_on_update_and_patch(world: World) -> None:
    o = await world.create("a", {"resourceType": "Observation", "status": "final",
                                 "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}}, "upd")
    assert security(o)[LEVEL] == "L3"
    o["code"]["coding"].append({"system": "http://loinc.org", "code": "75622-1"})  # an HIV test: level 5
    r = await world.as_("p", "PUT", f"/Observation/{o['id']}", json=o, headers={"Prefer": "return=representation"})
    assert r.status_code == 200, r.text
    assert security(r.json()) == {LEVEL: "L5", CATEGORY: "健康状况", CONF: "V"}
    r = await world.as_("a", "GET", f"/Observation/{o['id']}")  # clearance 4: the writer's answer is masked too
    assert REDACTED in r.json()["meta"]["security"] and "code" in r.json() and "75622-1" not in r.text
    r = await world.as_("p", "PATCH", f"/Observation/{o['id']}", content=b'[{"op":"remove","path":"/code/coding/1"}]',
                        headers={"Content-Type": "application/json-patch+json", "Prefer": "return=representation"})
    assert r.status_code == 200, r.text
    assert security(r.json())[LEVEL] == "L3"


async def test_stamped_in_transaction(world: World) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": patient(unique("t")), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Condition", "subject": {"reference": "urn:uuid:1"},
                      "code": {"coding": [{"system": ICD10, "code": "F32.1"}]}},
         "request": {"method": "POST", "url": "Condition"}}]}
    r = await world.as_("p", "POST", "/", json=bundle, headers={"Prefer": "return=representation"})
    assert r.status_code == 200, r.text
    p, c = (e["resource"] for e in r.json()["entry"])
    assert security(p)[LEVEL] == "L4" and security(c) == {LEVEL: "L5", CATEGORY: "健康状况", CONF: "V"}


async def test_security_search(world: World) -> None:
    found = await world.get("p", f"/Condition?identifier={world.run}&_security={LEVEL}|L5")
    assert [e["resource"]["id"] for e in found["entry"]] == [world.ids["hiv"]]
    found = await world.get("p", f"/Observation?identifier={world.run}&_security={LEVEL}|L5")
    assert found.get("entry", []) == []
    found = await world.get("p", f"/Observation?identifier={world.run}&_security={CONF}|N")
    assert [e["resource"]["id"] for e in found["entry"]] == [world.ids["obs"]]


async def test_read_masked_by_clearance(world: World) -> None:
    pid = world.ids["pat"]
    whole = await world.as_("p", "GET", f"/Patient/{pid}")
    same = await world.as_("a", "GET", f"/Patient/{pid}")  # clearance 4 covers L4: the stored bytes
    assert same.content == whole.content
    r = await world.as_("a3", "GET", f"/Patient/{pid}")
    assert r.status_code == 200 and r.headers["ETag"] == whole.headers["ETag"]
    assert "Last-Modified" in r.headers
    assert_masked_patient(r.json(), clearance=3)
    assert_masked_patient(await world.get("a2", f"/Patient/{pid}"), clearance=2)
    assert "11010519491231002X" not in r.text and "13812345678" not in r.text


async def test_level5_masked_inside_the_institution(world: World) -> None:
    url = f"/Condition/{world.ids['hiv']}"
    c = await world.get("a", url)  # clearance 4: the HIV condition is level 5
    assert REDACTED in c["meta"]["security"]
    assert c["code"] == {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                        "valueCode": "masked"}]}
    assert "note" not in c and "HIV" not in str(c)
    assert c["subject"]["reference"] == f"Patient/{world.ids['pat']}"
    assert c["subject"]["display"] == "张三"  # a name is level 3
    assert (await world.get("a2", url))["subject"]["display"] == "张*"
    whole = await world.get("btg", url)  # break-glass lifts it
    assert whole["code"]["text"] == "HIV disease" and REDACTED not in whole["meta"]["security"]


async def test_vread_and_history_masked(world: World) -> None:
    pid = world.ids["pat"]
    assert_masked_patient(await world.get("a3", f"/Patient/{pid}/_history/1"), clearance=3)
    history = await world.get("a3", f"/Patient/{pid}/_history")
    assert_masked_patient(history["entry"][0]["resource"], clearance=3)
    typed = await world.get("a3", "/Patient/_history?_count=1000")
    mine = [e["resource"] for e in typed["entry"] if e.get("resource", {}).get("id") == pid]
    assert mine and all(REDACTED in m["meta"]["security"] for m in mine)


async def test_search_and_includes_masked(world: World) -> None:
    found = await world.get("a3", f"/Patient?identifier={world.run}")
    assert_masked_patient(found["entry"][0]["resource"], clearance=3)
    found = await world.get("a3", f"/Observation?identifier={world.run}&_include=Observation:subject")
    modes = {e["search"]["mode"]: e["resource"] for e in found["entry"]}
    assert REDACTED not in modes["match"]["meta"]["security"]  # level 3: shown as stored
    assert_masked_patient(modes["include"], clearance=3)
    found = await world.get("a3", f"/Patient?identifier={world.run}&_revinclude=Condition:subject")
    cond = [e["resource"] for e in found["entry"] if e["resource"]["resourceType"] == "Condition"]
    assert cond and "note" not in cond[0]
    found = await world.get("a3", f"/Patient?identifier={world.run}&_elements=identifier")
    assert found["entry"][0]["resource"]["identifier"][0]["value"] == "110105********002X"
    found = await world.get("a3", f"/?_type=Patient&identifier={world.run}")
    assert_masked_patient(found["entry"][0]["resource"], clearance=3)


async def test_compartment_and_everything_masked(world: World) -> None:
    pid = world.ids["pat"]
    conditions = await world.get("a", f"/Patient/{pid}/Condition")
    assert [e["resource"]["id"] for e in conditions["entry"]] == [world.ids["hiv"]]
    assert "note" not in conditions["entry"][0]["resource"]
    everything = await world.get("a3", f"/Patient/{pid}/$everything")
    by_type = {e["resource"]["resourceType"]: e["resource"] for e in everything["entry"]}
    assert_masked_patient(by_type["Patient"], clearance=3)
    assert "note" not in by_type["Condition"]
    assert "HIV" not in str(everything)


async def test_transaction_and_batch_responses_masked(world: World) -> None:
    run = unique("tx")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(run), "request": {"method": "POST", "url": "Patient"}}]}
    r = await world.as_("a3", "POST", "/", json=bundle, headers={"Prefer": "return=representation"})
    assert r.status_code == 200, r.text
    assert_masked_patient(r.json()["entry"][0]["resource"], clearance=3)
    pid = world.ids["pat"]
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Patient/{pid}"}},
        {"request": {"method": "GET", "url": f"Patient?identifier={world.run}"}}]}
    r = await world.as_("a3", "POST", "/", json=batch)
    assert r.status_code == 200, r.text
    read, search = (e["resource"] for e in r.json()["entry"])
    assert_masked_patient(read, clearance=3)
    assert_masked_patient(search["entry"][0]["resource"], clearance=3)


async def test_xml_masked(world: World) -> None:
    r = await world.as_("a3", "GET", f"/Patient/{world.ids['pat']}?_format=xml")
    assert r.status_code == 200
    assert "110105********002X" in r.text and "11010519491231002X" not in r.text


async def test_masked_write_back_refused(world: World) -> None:
    pid = world.ids["pat"]
    masked = await world.get("a2", f"/Patient/{pid}")
    before = (await world.as_("p", "GET", f"/Patient/{pid}")).content
    r = await world.as_("a2", "PUT", f"/Patient/{pid}", json=masked)
    assert r.status_code == 409, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome" and "REDACTED" in outcome["issue"][0]["diagnostics"]
    r = await world.as_("p", "PUT", f"/Patient/{pid}", json=masked)  # refused whoever sends it
    assert r.status_code == 409
    r = await world.as_("a", "POST", "/Patient", json={**masked, "id": None})
    assert r.status_code == 409
    patch = b'[{"op":"add","path":"/meta/security/-","value":' \
            b'{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"REDACTED"}}]'
    r = await world.as_("a", "PATCH", f"/Patient/{pid}", content=patch,
                        headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 409, r.text
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": masked, "request": {"method": "PUT", "url": f"Patient/{pid}"}}]}
    r = await world.as_("a", "POST", "/", json=bundle)
    assert r.status_code == 409, r.text
    assert (await world.as_("p", "GET", f"/Patient/{pid}")).content == before


async def test_open_mode_unmasked(store: Store) -> None:
    async with make_client(store) as client:
        r = await client.post("/Patient", json=patient(unique("o")), headers={"Prefer": "return=representation"})
        assert r.status_code == 201
        assert security(r.json())[LEVEL] == "L4"  # stamped all the same
        read = await client.get(f"/Patient/{r.json()['id']}")
        assert read.json()["identifier"][0]["value"] == "11010519491231002X"
        assert REDACTED not in read.json()["meta"]["security"]


async def test_grading_off(store: Store) -> None:
    async with make_client(store, grading=False) as client:
        r = await client.post("/Patient", json=patient(unique("o")), headers={"Prefer": "return=representation"})
        assert r.status_code == 201 and "security" not in r.json()["meta"]


@pytest.mark.parametrize("bad", ["types: {Patient: {category: 病历, level: 3}}",
                                 "elements: [{path: Patient.name, level: 9}]"])
def test_bad_policy_named(store: Store, tmp_path: Any, bad: str) -> None:
    from server.grading.policy import PolicyError

    file = tmp_path / "bad.yaml"
    file.write_text(bad, encoding="utf-8")
    with pytest.raises(PolicyError, match=r"bad\.yaml"):  # the server does not start
        create_app(Settings(base_url=BASE, grading_policy=file), store=store)

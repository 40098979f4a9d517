"""Compartment search on both stores (http://hl7.org/fhir/R4/search.html#compartments,
http://hl7.org/fhir/R4/compartmentdefinition.html).

A resource is in ``Patient/p``'s compartment when ANY parameter the CompartmentDefinition lists
for its type refers to ``Patient/p`` (Observation: ``subject`` or ``performer``), and the owner is
in its own compartment.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio


@dataclass
class World:
    ids: dict[str, str]
    """name -> id"""
    keys: dict[str, str]
    """name -> Type/id"""

    def key(self, name: str) -> str:
        return self.keys[name]


async def _post(client: httpx.AsyncClient, world: World, name: str, resource: dict) -> None:
    r = await client.post(f"/{resource['resourceType']}", json=resource)
    assert r.status_code == 201, r.text
    world.ids[name] = r.json()["id"]
    world.keys[name] = f"{resource['resourceType']}/{r.json()['id']}"


@pytest_asyncio.fixture(scope="module")
async def world(client: httpx.AsyncClient) -> World:
    w = World({}, {})

    def ref(name: str) -> dict:
        return {"reference": w.keys[name]}

    def obs(code: str, **refs: object) -> dict:
        return {"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]}, **refs}

    await _post(client, w, "P", {"resourceType": "Patient", "name": [{"family": "Compartment"}]})
    await _post(client, w, "Q", {"resourceType": "Patient", "link": [{"other": ref("P"), "type": "seealso"}]})
    await _post(client, w, "D", {"resourceType": "Practitioner"})
    await _post(client, w, "O", {"resourceType": "Organization", "name": "Clinic"})
    await _post(client, w, "E", {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
                                 "subject": ref("P"), "participant": [{"individual": ref("D")}],
                                 "serviceProvider": ref("O")})
    await _post(client, w, "obs1", obs("1-1", subject=ref("P"), encounter=ref("E")))
    # in P's compartment through performer, in Q's through subject
    await _post(client, w, "obs2", obs("2-2", subject=ref("Q"), performer=[ref("P")]))
    await _post(client, w, "obs3", obs("1-1", subject=ref("Q"), performer=[ref("D")]))
    # DiagnosticReport is in the Patient compartment by subject only, in the Practitioner's by performer
    await _post(client, w, "dr1", {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "x"},
                                   "subject": ref("Q"), "performer": [ref("D")]})
    await _post(client, w, "cond1", {"resourceType": "Condition", "subject": ref("Q"), "asserter": ref("P")})
    return w


async def _keys(client: httpx.AsyncClient, url: str, params: dict | None = None) -> list[str]:
    r = await client.get(url, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
    return [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in body.get("entry", ())
            if e["search"]["mode"] == "match"]


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        ("Patient/{P}/Observation", {}, {"obs1", "obs2"}),
        ("Patient/{Q}/Observation", {}, {"obs2", "obs3"}),
        ("Patient/{P}/Observation", {"code": "http://loinc.org|1-1"}, {"obs1"}),
        ("Patient/{P}/Observation", {"code": "3-3"}, set()),
        ("Patient/{P}/DiagnosticReport", {}, set()),
        ("Patient/{Q}/DiagnosticReport", {}, {"dr1"}),
        ("Patient/{P}/Condition", {}, {"cond1"}),
        ("Patient/{Q}/Condition", {}, {"cond1"}),
        ("Patient/{P}/Patient", {}, {"P", "Q"}),  # the owner, and Q links to P
        ("Patient/{Q}/Patient", {}, {"Q"}),
        ("Patient/{P}/*", {}, {"P", "Q", "E", "obs1", "obs2", "cond1"}),
        ("Patient/{P}/*", {"_lastUpdated": "gt2000-01-01"}, {"P", "Q", "E", "obs1", "obs2", "cond1"}),
        ("Practitioner/{D}/*", {}, {"D", "E", "obs3", "dr1"}),
        ("Practitioner/{D}/Observation", {}, {"obs3"}),
        ("Encounter/{E}/*", {}, {"E", "obs1"}),
        ("Patient/unknown-patient/Observation", {}, set()),
    ],
)
async def test_compartment_members(client: httpx.AsyncClient, world: World, path: str, params: dict,
                                   expected: set[str]) -> None:
    found = await _keys(client, "/" + path.format(**world.ids), params)
    assert len(found) == len(set(found))
    assert set(found) == {world.key(n) for n in expected}


async def test_compartment_summary_count_and_include(client: httpx.AsyncClient, world: World) -> None:
    r = await client.get(f"/Patient/{world.ids['P']}/*", params={"_summary": "count"})
    assert r.status_code == 200 and r.json()["total"] == 6
    r = await client.get(f"/Patient/{world.ids['P']}/Encounter",
                         params={"_include": "Encounter:service-provider"})
    modes = {(e["search"]["mode"], e["resource"]["resourceType"]) for e in r.json()["entry"]}
    assert modes == {("match", "Encounter"), ("include", "Organization")}


async def test_compartment_paging_follows_next_links(client: httpx.AsyncClient, world: World) -> None:
    url: str | None = f"/Patient/{world.ids['P']}/*?_count=2"
    seen: list[str] = []
    while url:
        r = await client.get(url)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body.get("entry", [])) <= 2
        seen += [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in body.get("entry", [])]
        links = {link["relation"]: link["url"] for link in body["link"]}
        assert f"Patient/{world.ids['P']}/*" in links["self"]
        url = links.get("next")
    assert sorted(seen) == sorted(world.key(n) for n in ("P", "Q", "E", "obs1", "obs2", "cond1"))


async def test_compartment_search_by_post(client: httpx.AsyncClient, world: World) -> None:
    r = await client.post(f"/Patient/{world.ids['P']}/Observation/_search", data={"code": "2-2"})
    assert r.status_code == 200, r.text
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [world.ids["obs2"]]
    r = await client.post(f"/Patient/{world.ids['P']}/Observation/_search", json={"code": "2-2"})
    assert r.status_code == 400


@pytest.mark.parametrize(
    ("path", "params", "headers", "status"),
    [
        ("/Organization/{O}/Observation", {}, {}, 404),  # not a compartment type
        ("/Foo/1/Observation", {}, {}, 404),  # not a resource type
        ("/Patient/{P}/Foo", {}, {}, 404),
        ("/Patient/{P}/Organization", {}, {}, 400),  # never in a Patient compartment
        ("/Patient/{P}/Observation", {"date": "not-a-date"}, {}, 400),
        ("/Patient/{P}/Observation", {"bogus": "1"}, {"Prefer": "handling=strict"}, 400),
        ("/Patient/{P}/Observation", {"_count": "-1"}, {}, 400),
        ("/Patient/{P}/*", {"code": "1-1"}, {"Prefer": "handling=strict"}, 400),  # not common to all types
        ("/Patient/bad id/Observation", {}, {}, 400),
    ],
)
async def test_compartment_failures(client: httpx.AsyncClient, world: World, path: str, params: dict,
                                    headers: dict, status: int) -> None:
    r = await client.get(path.format(**world.ids), params=params, headers=headers)
    assert r.status_code == status, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["severity"] == "error"


async def test_unknown_parameter_is_reported_in_lenient_mode(client: httpx.AsyncClient, world: World) -> None:
    r = await client.get(f"/Patient/{world.ids['P']}/Observation", params={"bogus": "1"})
    assert r.status_code == 200
    modes = [e["search"]["mode"] for e in r.json()["entry"]]
    assert modes.count("match") == 2 and modes.count("outcome") == 1


async def test_capability_statement_lists_compartments(client: httpx.AsyncClient) -> None:
    cs = (await client.get("/metadata")).json()
    assert "http://hl7.org/fhir/CompartmentDefinition/patient" in cs["rest"][0]["compartment"]

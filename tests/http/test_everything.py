"""``Patient/[id]/$everything`` and ``Patient/$everything`` on both stores
(http://hl7.org/fhir/R4/patient-operation-everything.html).

Matches are the patient and its compartment; resources they point at that carry no patient
reference (Organization, Practitioner, Medication …) come as ``search.mode = include``. The slow
test reproduces the Synthea ``index.json`` counts through ``$everything`` and compartment search.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio

from profiles.definitions import core
from server.search.compartment import compartment
from tests.conftest import make_client, open_store
from tests.paths import SAMPLES

SYNTHEA = SAMPLES / "synthea"


@dataclass
class World:
    keys: dict[str, str]

    def id(self, name: str) -> str:
        return self.keys[name].split("/")[1]


async def _post(client: httpx.AsyncClient, w: World, name: str, resource: dict) -> dict:
    r = await client.post(f"/{resource['resourceType']}", json=resource)
    assert r.status_code == 201, r.text
    w.keys[name] = f"{resource['resourceType']}/{r.json()['id']}"
    return r.json()


@pytest_asyncio.fixture(scope="module")
async def world(client: httpx.AsyncClient) -> World:
    w = World({})

    def ref(name: str) -> dict:
        return {"reference": w.keys[name]}

    await _post(client, w, "P", {"resourceType": "Patient", "name": [{"family": "Everything"}]})
    await _post(client, w, "Q", {"resourceType": "Patient", "name": [{"family": "Other"}]})
    await _post(client, w, "gone", {"resourceType": "Patient"})
    assert (await client.delete(f"/{w.keys['gone']}")).status_code == 204
    await _post(client, w, "O", {"resourceType": "Organization", "name": "Clinic"})
    await _post(client, w, "O2", {"resourceType": "Organization", "name": "Not referenced"})
    await _post(client, w, "D", {"resourceType": "Practitioner"})
    await _post(client, w, "M", {"resourceType": "Medication", "code": {"text": "aspirin"}})
    await _post(client, w, "E", {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
                                 "subject": ref("P"), "participant": [{"individual": ref("D")}],
                                 "serviceProvider": ref("O")})
    for n in (1, 2, 3):
        await _post(client, w, f"obs{n}", {"resourceType": "Observation", "status": "final", "code": {"text": f"o{n}"},
                                           "subject": ref("P"), "performer": [ref("D")]})
    await _post(client, w, "rx", {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
                                  "subject": ref("P"), "medicationReference": ref("M")})
    await _post(client, w, "qobs", {"resourceType": "Observation", "status": "final", "code": {"text": "q"},
                                    "subject": ref("Q")})
    return w


def _by_mode(body: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in body.get("entry", ()):
        res = e["resource"]
        out.setdefault(e["search"]["mode"], []).append(f"{res['resourceType']}/{res.get('id')}")
    return out


async def _pages(client: httpx.AsyncClient, url: str, **kwargs: object) -> tuple[list[str], set[str], int]:
    """(match keys, distinct include keys, pages) over every page from ``url``."""
    matches: list[str] = []
    includes: set[str] = set()
    pages = 0
    next_url: str | None = url
    while next_url:
        r = await client.get(next_url, **kwargs) if pages == 0 else await client.get(next_url)  # type: ignore[arg-type]
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
        modes = _by_mode(body)
        matches += modes.get("match", [])
        includes.update(modes.get("include", []))
        pages += 1
        next_url = next((link["url"] for link in body["link"] if link["relation"] == "next"), None)
    return matches, includes, pages


@pytest.mark.parametrize(
    ("params", "match", "include"),
    [
        ({}, {"P", "E", "obs1", "obs2", "obs3", "rx"}, {"O", "D", "M"}),
        ({"_type": "Observation"}, {"obs1", "obs2", "obs3"}, set()),
        ({"_type": "Observation,Practitioner"}, {"obs1", "obs2", "obs3"}, {"D"}),
        ({"_type": "Patient,MedicationRequest,Medication"}, {"P", "rx"}, {"M"}),
        ({"_since": "2999-01-01T00:00:00Z"}, set(), set()),
        ({"_count": "2"}, {"P", "E", "obs1", "obs2", "obs3", "rx"}, {"O", "D", "M"}),
    ],
)
async def test_instance_everything(client: httpx.AsyncClient, world: World, params: dict, match: set[str],
                                   include: set[str]) -> None:
    matches, includes, pages = await _pages(client, f"/Patient/{world.id('P')}/$everything", params=params)
    assert len(matches) == len(set(matches))
    assert set(matches) == {world.keys[n] for n in match}
    assert includes == {world.keys[n] for n in include}
    if params.get("_count") == "2":
        assert pages == 3


async def test_everything_since_returns_what_changed(client: httpx.AsyncClient, world: World) -> None:
    current = (await client.get(f"/{world.keys['obs2']}")).json()
    current["status"] = "amended"
    updated = await client.put(f"/{world.keys['obs2']}", json=current)
    assert updated.status_code == 200
    since = updated.json()["meta"]["lastUpdated"]
    matches, includes, _ = await _pages(client, f"/Patient/{world.id('P')}/$everything", params={"_since": since})
    assert matches == [world.keys["obs2"]]
    assert includes == set()  # the practitioner it refers to has not changed since


async def test_everything_by_post_with_parameters(client: httpx.AsyncClient, world: World) -> None:
    body = {"resourceType": "Parameters", "parameter": [{"name": "_type", "valueString": "Observation"},
                                                        {"name": "_count", "valueInteger": 2}]}
    r = await client.post(f"/Patient/{world.id('P')}/$everything", json=body)
    assert r.status_code == 200, r.text
    first = r.json()
    assert len(_by_mode(first)["match"]) == 2
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    rest, _, _ = await _pages(client, next_url)
    assert set(_by_mode(first)["match"] + rest) == {world.keys[f"obs{n}"] for n in (1, 2, 3)}


async def test_type_level_everything(client: httpx.AsyncClient, world: World) -> None:
    matches, includes, _ = await _pages(client, "/Patient/$everything",
                                        params={"_type": "Patient,Observation", "_count": "50"})
    assert {world.keys[n] for n in ("P", "Q", "obs1", "obs2", "obs3", "qobs")} <= set(matches)
    assert world.keys["gone"] not in matches
    assert all(k.split("/")[0] in ("Patient", "Observation") for k in matches)
    assert includes == set()


async def test_unknown_parameter_is_reported_or_refused(client: httpx.AsyncClient, world: World) -> None:
    url = f"/Patient/{world.id('P')}/$everything"
    r = await client.get(url, params={"start": "2020-01-01", "_type": "Patient"})
    assert r.status_code == 200
    modes = _by_mode(r.json())
    assert modes["match"] == [world.keys["P"]] and len(modes["outcome"]) == 1
    r = await client.get(url, params={"start": "2020-01-01"}, headers={"Prefer": "handling=strict"})
    assert r.status_code == 400


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/Patient/does-not-exist/$everything", {}, 404),
        ("/Patient/{gone}/$everything", {}, 410),
        ("/Patient/{P}/$everything", {"_type": "Foo"}, 400),
        ("/Patient/{P}/$everything", {"_type": "StructureDefinition"}, 400),  # neither member nor referenced
        ("/Patient/{P}/$everything", {"_type": "Organization"}, 400),  # referenced types need a member type
        ("/Patient/{P}/$everything", {"_since": "yesterday"}, 400),
        ("/Patient/{P}/$everything", {"_count": "-1"}, 400),
        ("/Patient/{P}/$everything", {"_cursor": "not-a-cursor"}, 400),
        ("/Observation/$everything", {}, 400),  # only defined on Patient
        ("/Foo/$everything", {}, 404),
    ],
)
async def test_everything_failures(client: httpx.AsyncClient, world: World, path: str, params: dict,
                                   status: int) -> None:
    ids = {name: world.id(name) for name in world.keys}
    r = await client.get(path.format(**ids), params=params)
    assert r.status_code == status, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_capability_statement_lists_everything_on_patient_only(client: httpx.AsyncClient) -> None:
    cs = (await client.get("/metadata")).json()
    by_type = {r["type"]: {op["name"] for op in r.get("operation", ())} for r in cs["rest"][0]["resource"]}
    assert "everything" in by_type["Patient"]
    assert "everything" not in by_type["Observation"]


# --- Synthea: index.json counts through $everything and compartment search ----------------------

MONGO_BUNDLES = 5
"""nx-27017 ingests slowly; the embedded store takes all 61 bundles."""


@pytest.mark.slow
async def test_synthea_counts_by_everything_and_compartments(  # type: ignore[no-untyped-def]
        store, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
    index = json.loads((SYNTHEA / "index.json").read_text())
    if store.kind == "mongo":
        index = index[:MONGO_BUNDLES]
    fresh = await open_store(store.kind, request, tmp_path_factory)
    comp = compartment(core(), "Patient")
    assert comp is not None
    try:
        async with make_client(fresh, validate_on_write=False) as client:
            patients: list[tuple[dict, str]] = []
            for item in index:
                body = gzip.decompress((SYNTHEA / item["file"]).read_bytes())
                r = await client.post("/", content=body, headers={"Content-Type": "application/fhir+json"})
                assert r.status_code == 200, (item["file"], r.text[:300])
                patient = next(e["response"]["location"].split("/")[1] for e in r.json()["entry"]
                               if e["response"]["location"].startswith("Patient/"))
                patients.append((item, patient))
            for item, patient in patients:
                counts: dict[str, int] = item["resource_counts"]
                members = {t: n for t, n in counts.items() if comp.contains_type(t)}
                referenced = {t: n for t, n in counts.items() if not comp.contains_type(t)}
                matches, includes, _ = await _pages(client, f"/Patient/{patient}/$everything",
                                                    params={"_count": "1000"})
                assert Counter(k.split("/")[0] for k in matches) == Counter(members), item["file"]
                assert Counter(k.split("/")[0] for k in includes) == Counter(referenced), item["file"]
                r = await client.get(f"/Patient/{patient}/*", params={"_summary": "count"})
                assert r.json()["total"] == sum(members.values()), item["file"]
                for type_, expected in members.items():
                    r = await client.get(f"/Patient/{patient}/{type_}", params={"_summary": "count"})
                    assert r.json()["total"] == expected, (item["file"], type_)
    finally:
        await fresh.close()

"""``bench/seed.py`` on the embedded store: 2,000 seeded resources are read, searched, validated and
looked up by the server as if they had been written through it, and the Persons are the ones the
identity listener would have made (it finds nothing to change)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from bench import seed
from profiles import resident_id
from server.access.principal import SOURCE_TAG_SYSTEM
from server.app import create_app
from server.identity import linking
from server.settings import Settings
from server.stores.sqlite import SqliteStore

BASE = "http://yidang.test/fhir"
TYPES = ("Organization", "Patient", "Person", "Encounter", "DiagnosticReport", "Observation", "Condition")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("seeded")
    seed.main(["--data-dir", str(directory), "--resources", "2000", "--institutions", "12", "--workers", "0"])
    return directory


@pytest_asyncio.fixture(scope="module")
async def app_client(seeded: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    store = SqliteStore(seeded)
    await store.open()
    app = create_app(Settings(base_url=BASE, log_requests=False, data_dir=seeded), store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE) as c:
        yield c, app.state.services
    await store.close()


async def count(c: httpx.AsyncClient, path: str, **params: str) -> int:
    r = await c.get(path, params={**params, "_summary": "count"})
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


async def test_counts_match_the_manifest(seeded: Path, app_client: tuple[httpx.AsyncClient, Any]) -> None:
    c, _ = app_client
    manifest = json.loads((seeded / seed.MANIFEST).read_text())
    assert 2000 <= manifest["resources"] < 2600
    counts = {t: await count(c, f"/{t}") for t in TYPES}
    assert sum(counts.values()) == manifest["resources"]
    assert counts["Organization"] == 12 and all(counts[t] > 0 for t in TYPES)


def test_rerun_writes_nothing(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed.main(["--data-dir", str(seeded), "--resources", "2000", "--institutions", "12", "--workers", "0"])
    assert "this run wrote 0 " in capsys.readouterr().out
    with pytest.raises(SystemExit):  # another plan for the same store is refused
        seed.main(["--data-dir", str(seeded), "--resources", "2000", "--institutions", "7", "--workers", "0"])


async def test_resources_as_the_server_writes_them(app_client: tuple[httpx.AsyncClient, Any]) -> None:
    c, _ = app_client
    for type_ in TYPES:
        found = (await c.get(f"/{type_}", params={"_count": "3"})).json()["entry"]
        for entry in found:
            resource = entry["resource"]
            meta = resource["meta"]
            assert meta["versionId"] == "1" and meta["lastUpdated"]
            read = await c.get(f"/{type_}/{resource['id']}")
            assert read.status_code == 200 and read.headers["ETag"] == 'W/"1"'
            outcome = await c.post(f"/{type_}/$validate", json=resource)
            errors = [i for i in outcome.json()["issue"] if i["severity"] in ("error", "fatal")]
            assert not errors, (type_, errors)
            if type_ == "Person":
                assert meta["tag"] == [linking.MPI_TAG] and "security" not in meta
            else:  # an institution's create: source tag, source and the grading labels
                assert meta["tag"][0]["system"] == SOURCE_TAG_SYSTEM
                assert meta["source"].endswith(meta["tag"][0]["code"])
                assert {s["system"] for s in meta["security"]} >= {
                    "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"}


async def test_searches(app_client: tuple[httpx.AsyncClient, Any]) -> None:
    c, _ = app_client
    patient = (await c.get("/Patient", params={"_count": "1", "identifier": f"{resident_id.SYSTEM}|"
                                                                           f"{seed.LOOKUP_ID_NUMBER}"})).json()
    assert patient["entry"][0]["resource"]["id"].startswith("pt0-")
    assert await count(c, "/Patient", identifier=f"{resident_id.SYSTEM}|{seed.LOOKUP_ID_NUMBER}") == 10
    glucose = await count(c, "/Observation", code="http://loinc.org|2345-7")
    assert glucose >= 30
    assert await count(c, "/Observation", code="http://loinc.org|2345-7", patient="Patient/pt0-3") == 3
    inst = seed.institution_code(3)
    assert await count(c, "/DiagnosticReport", _tag=f"{SOURCE_TAG_SYSTEM}|{inst}") > 0
    assert await count(c, "/DiagnosticReport", performer="Organization/org-003", date="ge2000-01-01") > 0
    reports = (await c.get("/DiagnosticReport", params={"subject": "Patient/pt0-0",
                                                        "_include": "DiagnosticReport:result"})).json()
    assert sum(e["search"]["mode"] == "include" for e in reports["entry"]) == 3 * 5  # a 5-item panel each


async def test_persons_are_what_linking_makes(app_client: tuple[httpx.AsyncClient, Any]) -> None:
    c, svc = app_client
    found = (await c.get("/Patient", params={"_count": "1000", "_elements": "id"})).json()["entry"]
    ids = [e["resource"]["id"] for e in found]
    assert len(ids) > 50
    assert [p for p in ids if not await linking._settled(svc, p)] == []
    person = (await c.get("/Person", params={"patient": "Patient/pt0-3"})).json()["entry"][0]["resource"]
    assert len(person["link"]) == 10 and {lk["assurance"] for lk in person["link"]} == {"level4"}
    assert {"system": resident_id.SYSTEM, "value": seed.LOOKUP_ID_NUMBER} in person["identifier"]


async def test_cross_lookup_and_match(app_client: tuple[httpx.AsyncClient, Any]) -> None:
    c, _ = app_client
    r = await c.get("/Patient/$cross-lookup", params={
        "identifier": f"{resident_id.SYSTEM}|{seed.LOOKUP_ID_NUMBER}", "_count": "50"})
    assert r.status_code == 200, r.text
    matched = [e for e in r.json()["entry"] if e["search"]["mode"] == "match"]
    assert len(matched) == 30
    assert len({e["resource"]["meta"]["tag"][0]["code"] for e in matched}) == 10
    query = {"resourceType": "Patient", "identifier": [{"system": resident_id.SYSTEM,
                                                         "value": seed.LOOKUP_ID_NUMBER}]}
    r = await c.post("/Patient/$match", json={"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": query}]})
    assert r.status_code == 200, r.text
    assert r.json()["entry"][0]["resource"]["id"].startswith("pt0-")

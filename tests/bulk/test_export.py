"""Bulk Data $export (issue 16 §2) on both stores: kick-off errors, the flow at system, Patient and
Group level with counts equal to searches, _since, _typeFilter, _elements, cancel, expiry, gzip."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.stores.base import Store
from tests.bulk.helpers import ASYNC, download, everything, kick_off, wait
from tests.conftest import make_client, unique

pytestmark = pytest.mark.asyncio


async def total(client: httpx.AsyncClient, query: str) -> int:
    path, _, rest = query.partition("?")
    response = await client.get(f"{path}?{rest + '&' if rest else ''}_summary=count")
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


async def put(client: httpx.AsyncClient, resource: dict[str, Any]) -> dict[str, Any]:
    response = await client.put(f"/{resource['resourceType']}/{resource['id']}", json=resource)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def seed(client: httpx.AsyncClient, patients: int = 3, per_patient: int = 2) -> tuple[str, list[str]]:
    """Patients with Observations tagged with one new code; returns (code, patient ids)."""
    code = unique("code")
    ids = []
    for n in range(patients):
        pid = unique("p")
        ids.append(pid)
        await put(client, {"resourceType": "Patient", "id": pid, "gender": "female",
                           "name": [{"family": f"F{n}", "given": ["G"]}]})
        for m in range(per_patient):
            await put(client, {"resourceType": "Observation", "id": unique("o"), "status": "final",
                               "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                               "subject": {"reference": f"Patient/{pid}"}, "valueString": f"{n}-{m}"})
    return code, ids


@pytest.fixture
async def bulk_client(store: Store, tmp_path: Path) -> Any:
    async with make_client(store, bulk_dir=tmp_path / "bulk") as c:
        yield c


async def test_kick_off_errors(bulk_client: httpx.AsyncClient) -> None:
    c = bulk_client
    no_prefer = await c.get("/$export", headers={"Accept": "application/fhir+json"})
    assert no_prefer.status_code == 400 and "respond-async" in no_prefer.text
    assert no_prefer.json()["resourceType"] == "OperationOutcome"
    bad_format = await c.get("/$export", params={"_outputFormat": "text/csv"}, headers=ASYNC)
    assert bad_format.status_code == 400 and "_outputFormat" in bad_format.text
    bad_type = await c.get("/$export", params={"_type": "Patient,Nonsense"}, headers=ASYNC)
    assert bad_type.status_code == 400 and "Nonsense" in bad_type.text
    not_in_compartment = await c.get("/Patient/$export", params={"_type": "Organization"}, headers=ASYNC)
    assert not_in_compartment.status_code == 400
    strict = await c.get("/$export", params={"_bogus": "1"},
                         headers={**ASYNC, "Prefer": "respond-async, handling=strict"})
    assert strict.status_code == 400 and "_bogus" in strict.text
    bad_since = await c.get("/$export", params={"_since": "yesterday"}, headers=ASYNC)
    assert bad_since.status_code == 400 and "_since" in bad_since.text
    bad_filter = await c.get("/$export", params={"_typeFilter": "Observation?nonsense=1"}, headers=ASYNC)
    assert bad_filter.status_code == 400 and "_typeFilter" in bad_filter.text
    xml = await c.get("/$export", headers={"Prefer": "respond-async", "Accept": "application/fhir+xml"})
    assert xml.status_code == 400
    missing_group = await c.get("/Group/nope/$export", headers=ASYNC)
    assert missing_group.status_code == 404
    unknown_job = await c.get("/_bulk/nope")
    assert unknown_job.status_code == 404


async def test_system_export_counts_equal_searches(bulk_client: httpx.AsyncClient) -> None:
    c = bulk_client
    await seed(c)
    expected = {t: await total(c, f"/{t}") for t in ("Patient", "Observation")}
    url = await kick_off(c, "/$export", {"_type": "Patient,Observation", "_outputFormat": "application/fhir+ndjson"})
    manifest = await wait(c, url)
    assert manifest["requiresAccessToken"] is False
    assert manifest["request"].endswith("$export?_type=Patient%2CObservation&_outputFormat=application%2Ffhir%2Bndjson")
    assert manifest["transactionTime"] and manifest["error"] == []
    got = await everything(c, manifest)
    assert {t: len(rows) for t, rows in got.items()} == expected
    assert all(r["resourceType"] == t for t, rows in got.items() for r in rows)
    assert len({r["id"] for r in got["Observation"]}) == expected["Observation"]  # nothing twice


async def test_system_export_without_type_covers_every_stored_type(bulk_client: httpx.AsyncClient) -> None:
    c = bulk_client
    await seed(c, 1, 1)
    manifest = await wait(c, await kick_off(c, "/$export"))
    types = {o["type"] for o in manifest["output"]}
    assert {"Patient", "Observation"} <= types
    counts = {o["type"]: o["count"] for o in manifest["output"]}
    assert counts["Patient"] == await total(c, "/Patient")


async def test_patient_and_group_export(bulk_client: httpx.AsyncClient) -> None:
    c = bulk_client
    _, ids = await seed(c, 3, 2)
    await put(c, {"resourceType": "Organization", "id": unique("org"), "name": "not in a compartment"})
    patient_level = await wait(c, await kick_off(c, "/Patient/$export"))
    types = {o["type"] for o in patient_level["output"]}
    assert "Organization" not in types and {"Patient", "Observation"} <= types
    counts = {o["type"]: o["count"] for o in patient_level["output"]}
    assert counts["Patient"] == await total(c, "/Patient")
    assert counts["Observation"] == await total(c, "/Observation")  # every Observation here has a patient
    group = unique("g")
    await put(c, {"resourceType": "Group", "id": group, "type": "person", "actual": True,
                  "member": [{"entity": {"reference": f"Patient/{ids[0]}"}},
                             {"entity": {"reference": f"Patient/{ids[1]}"}}]})
    manifest = await wait(c, await kick_off(c, f"/Group/{group}/$export"))
    got = await everything(c, manifest)
    assert sorted(p["id"] for p in got["Patient"]) == sorted(ids[:2])
    subjects = {o["subject"]["reference"] for o in got["Observation"]}
    assert subjects == {f"Patient/{ids[0]}", f"Patient/{ids[1]}"}
    assert len(got["Observation"]) == await total(c, f"/Observation?subject=Patient/{ids[0]},Patient/{ids[1]}")
    # POST with Parameters: the patient parameter narrows a Patient-level export
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": f"Patient/{ids[2]}"}},
        {"name": "_type", "valueString": "Patient,Observation"}]}
    response = await c.post("/Patient/$export", json=body, headers=ASYNC)
    assert response.status_code == 202, response.text
    got = await everything(c, await wait(c, response.headers["Content-Location"]))
    assert [p["id"] for p in got["Patient"]] == [ids[2]] and len(got["Observation"]) == 2


async def test_since_type_filter_and_elements(bulk_client: httpx.AsyncClient) -> None:
    c = bulk_client
    code, ids = await seed(c, 2, 2)
    await asyncio.sleep(0.01)
    middle = (await c.get(f"/Patient/{ids[0]}")).json()["meta"]["lastUpdated"]
    await asyncio.sleep(0.01)
    await put(c, {"resourceType": "Patient", "id": ids[1], "gender": "male", "name": [{"family": "Changed"}]})
    since = await everything(c, await wait(c, await kick_off(c, "/$export", {"_type": "Patient", "_since": middle})))
    assert [p["id"] for p in since["Patient"]] == [ids[1]]
    filtered = await everything(c, await wait(c, await kick_off(
        c, "/$export", {"_type": "Observation", "_typeFilter": f"Observation?code=http://loinc.org|{code}"})))
    assert len(filtered["Observation"]) == 4
    assert {o["code"]["coding"][0]["code"] for o in filtered["Observation"]} == {code}
    subset = await everything(c, await wait(c, await kick_off(
        c, "/$export", {"_type": "Patient", "_elements": "gender", "_typeFilter": f"Patient?_id={ids[0]}"})))
    assert len(subset["Patient"]) == 1
    only = subset["Patient"][0]
    assert "name" not in only and only["gender"] == "female"
    assert any(t.get("code") == "SUBSETTED" for t in only["meta"]["tag"])


async def test_ignored_parameter_is_noted(bulk_client: httpx.AsyncClient) -> None:
    c = bulk_client
    manifest = await wait(c, await kick_off(c, "/$export", {"_type": "Patient", "_bogus": "1"}))
    assert len(manifest["error"]) == 1
    notes = await download(c, manifest["error"][0]["url"])
    assert "_bogus" in notes[0]["issue"][0]["diagnostics"]


async def test_cancel_removes_job_and_files(bulk_client: httpx.AsyncClient, tmp_path: Path) -> None:
    c = bulk_client
    await seed(c, 1, 1)
    url = await kick_off(c, "/$export")
    await wait(c, url)
    job = url.rsplit("/", 1)[1]
    assert (tmp_path / "bulk" / job).is_dir()
    cancelled = await c.delete(url)
    assert cancelled.status_code == 202
    assert (await c.get(url)).status_code == 404
    assert not (tmp_path / "bulk" / job).exists()
    assert (await c.delete(url)).status_code == 404
    # cancelling a running one: it stops and leaves nothing
    running = await kick_off(c, "/$export")
    assert (await c.delete(running)).status_code == 202
    await asyncio.sleep(0.3)
    assert (await c.get(running)).status_code == 404
    assert not (tmp_path / "bulk" / running.rsplit("/", 1)[1]).exists()


async def test_expiry(store: Store, tmp_path: Path) -> None:
    async with make_client(store, bulk_dir=tmp_path / "b", bulk_retention=0.5) as c:
        await seed(c, 1, 1)
        url = await kick_off(c, "/$export", {"_type": "Patient"})
        manifest = await wait(c, url)
        file_url = manifest["output"][0]["url"]
        assert (await c.get(file_url)).status_code == 200
        await asyncio.sleep(0.8)
        assert (await c.get(url)).status_code == 404
        assert (await c.get(file_url)).status_code == 404
        assert not (tmp_path / "b" / url.rsplit("/", 1)[1]).exists()


async def test_gzip_files(store: Store, tmp_path: Path) -> None:
    async with make_client(store, bulk_dir=tmp_path / "z", bulk_gzip=True, bulk_page_size=2) as c:
        await seed(c, 3, 1)
        expected = await total(c, "/Patient")
        manifest = await wait(c, await kick_off(c, "/$export", {"_type": "Patient"}))
        url = manifest["output"][0]["url"]
        job = url.split("/")[-2]
        assert (tmp_path / "z" / job / "Patient-1.ndjson.gz").is_file()
        plain = await download(c, url)  # httpx decompresses Content-Encoding: gzip
        assert len(plain) == expected == manifest["output"][0]["count"]
        raw = await c.get(url, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in raw.headers
        assert len(raw.content.splitlines()) == expected

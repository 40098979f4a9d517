"""Bulk Data $import (issue 16 §2) on both stores: an upload with a bad line, files from an allowed
directory, refusals, and the round trip export → import into another store → the same resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from server.stores.base import Store
from server.stores.sqlite import SqliteStore
from tests.bulk.helpers import ASYNC, download, everything, kick_off, wait
from tests.bulk.test_export import seed
from tests.conftest import make_client, unique

pytestmark = pytest.mark.asyncio
NDJSON = {**ASYNC, "Content-Type": "application/fhir+ndjson"}


def strip_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


async def test_upload_with_a_bad_line(store: Store, tmp_path: Path) -> None:
    async with make_client(store, bulk_dir=tmp_path / "b") as c:
        good = [unique("p") for _ in range(3)]
        lines = [orjson.dumps({"resourceType": "Patient", "id": good[0], "gender": "male"}),
                 b"{not json",
                 orjson.dumps({"resourceType": "Patient", "id": good[1], "gender": "nonsense-code"}),
                 orjson.dumps({"resourceType": "Patient", "gender": "male"}),
                 b"",
                 orjson.dumps({"resourceType": "Patient", "id": good[2], "gender": "female"})]
        response = await c.post("/$import", content=b"\n".join(lines), headers=NDJSON)
        assert response.status_code == 202, response.text
        manifest = await wait(c, response.headers["Content-Location"])
        assert manifest["output"] == [{"type": "Patient", "count": 2}]
        assert manifest["error"][0]["count"] == 3
        errors = await download(c, manifest["error"][0]["url"])
        lines_reported = [e["issue"][0]["location"][0] for e in errors]
        assert lines_reported == ["line 2", "line 3", "line 4"]
        assert "id" in errors[2]["issue"][0]["diagnostics"]
        assert (await c.get(f"/Patient/{good[0]}")).json()["gender"] == "male"
        assert (await c.get(f"/Patient/{good[2]}")).status_code == 200
        assert (await c.get(f"/Patient/{good[1]}")).status_code == 404


async def test_import_refusals(store: Store, tmp_path: Path) -> None:
    allowed = tmp_path / "in"
    allowed.mkdir()
    outside = tmp_path / "secret.ndjson"
    outside.write_text('{"resourceType":"Patient","id":"x"}\n')
    async with make_client(store, bulk_dir=tmp_path / "b", bulk_import_dirs=[allowed]) as c:
        no_prefer = await c.post("/$import", content=b"{}", headers={"Content-Type": "application/fhir+ndjson"})
        assert no_prefer.status_code == 400
        def params(url: str, fmt: str = "application/fhir+ndjson") -> dict[str, Any]:
            return {"resourceType": "Parameters", "parameter": [
                {"name": "inputFormat", "valueCode": fmt},
                {"name": "input", "part": [{"name": "type", "valueCode": "Patient"},
                                           {"name": "url", "valueUri": url}]}]}
        out = await c.post("/$import", json=params(f"file://{outside}"), headers=ASYNC)
        assert out.status_code == 403, out.text
        escape = await c.post("/$import", json=params(f"file://{allowed}/../secret.ndjson"), headers=ASYNC)
        assert escape.status_code == 403
        remote = await c.post("/$import", json=params("https://example.org/x.ndjson"), headers=ASYNC)
        assert remote.status_code == 400
        bad_format = await c.post("/$import", json=params(f"file://{allowed}/a.ndjson", "text/csv"), headers=ASYNC)
        assert bad_format.status_code == 400
        assert (await c.get("/$import")).status_code == 405


@asynccontextmanager
async def target_client(tmp_path: Path) -> AsyncIterator[Any]:
    """A client of a fresh embedded store that may import the files under ``tmp_path/src``."""
    target = SqliteStore(tmp_path / "target")
    await target.open()
    try:
        async with make_client(target, bulk_dir=tmp_path / "dst", bulk_import_dirs=[tmp_path / "src"]) as client:
            yield client
    finally:
        await target.close()


async def import_files(target: Any, folder: Path, outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """``$import`` the files of an export's manifest ``outputs`` (in that order) from ``folder``; the
    finished job's manifest."""
    inputs = [{"name": "input", "part": [
        {"name": "type", "valueCode": o["type"]},
        {"name": "url", "valueUri": f"file://{folder}/{o['url'].rsplit('/', 1)[1]}"}]} for o in outputs]
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "inputFormat", "valueCode": "application/fhir+ndjson"}, *inputs]}
    response = await target.post("/$import", json=body, headers=ASYNC)
    assert response.status_code == 202, response.text
    result: dict[str, Any] = await wait(target, response.headers["Content-Location"])
    return result


async def test_round_trip_into_another_store(store: Store, tmp_path: Path) -> None:
    async with make_client(store, bulk_dir=tmp_path / "src") as source:
        await seed(source, 3, 2)
        exported = await everything(source, await wait(source, await kick_off(
            source, "/$export", {"_type": "Patient,Observation"})))
        manifest = await wait(source, await kick_off(source, "/$export", {"_type": "Patient,Observation"}))
        job = manifest["output"][0]["url"].split("/")[-2]
    async with target_client(tmp_path) as target:
        result = await import_files(target, tmp_path / "src" / job, manifest["output"])
        assert result["error"] == []
        assert {o["type"]: o["count"] for o in result["output"]} == {t: len(r) for t, r in exported.items()}
        for type_, rows in exported.items():
            for row in rows:
                got = await target.get(f"/{type_}/{row['id']}")
                assert got.status_code == 200
                assert strip_meta(got.json()) == strip_meta(row)
        again = await everything(target, await wait(target, await kick_off(
            target, "/$export", {"_type": "Patient,Observation"})))
        assert {t: sorted(map(orjson.dumps, map(strip_meta, r))) for t, r in again.items()} == \
            {t: sorted(map(orjson.dumps, map(strip_meta, r))) for t, r in exported.items()}


async def test_an_export_with_persons_imports_to_one_person_per_resident(store: Store, tmp_path: Path) -> None:
    """An export of Patients and the platform's Persons, imported Patients first: the Patients' import
    links them into a new Person, the Persons' import brings the exported one; the two hold one
    resident's keys and are folded into one (one person, one record), with every Patient linked."""
    from server.identity.keys import HEALTH_CARD

    card = unique("HC")
    async with make_client(store, bulk_dir=tmp_path / "src") as source:
        ids = []
        for family in ("Zhang", "Zhang"):
            made = await source.post("/Patient", json={"resourceType": "Patient", "name": [{"family": family}],
                                                       "identifier": [{"system": HEALTH_CARD, "value": card}]})
            assert made.status_code == 201, made.text
            ids.append(made.json()["id"])
        assert len((await source.get(f"/Person?identifier={HEALTH_CARD}|{card}")).json().get("entry", [])) == 1
        manifest = await wait(source, await kick_off(source, "/$export", {"_type": "Patient,Person"}))
        job = manifest["output"][0]["url"].split("/")[-2]
    async with target_client(tmp_path) as target:
        order = sorted(manifest["output"], key=lambda o: o["type"] != "Patient")  # Patients first
        assert (await import_files(target, tmp_path / "src" / job, order))["error"] == []
        persons = (await target.get(f"/Person?identifier={HEALTH_CARD}|{card}")).json().get("entry", [])
        assert len(persons) == 1
        linked = {link["target"]["reference"] for link in persons[0]["resource"]["link"]}
        assert linked == {f"Patient/{i}" for i in ids}

"""Benchmark of ``Patient/$cross-lookup`` (issue 15 §2): one person with results at 10 institutions
in a store of N resources; p50/p95 of the look-up over the in-process app (no network).

Filler: persons with one Patient at one of 50 institutions and lab DiagnosticReports with two
Observations each, written straight to the store in batches (indexed as the server indexes them,
not validated: the load is not what is measured). The measured person has a Patient and 3 reports
(with Observations) at each of 10 institutions, linked by the 居民身份证号; a catalogue item and
qualifications make the statuses real.

    .venv/bin/python bench/lookup.py --resources 1000000 [--store sqlite|mongo] [--runs 200]
    .venv/bin/python bench/lookup.py --data-dir DIR [--runs 200]

With ``--data-dir`` the look-up runs against an embedded store seeded by ``bench/seed.py`` (its
look-up person: a Patient and 3 recent glucose reports at each of 10 institutions) instead of
loading a filler; the catalogue and qualifications (idempotent imports) are added to it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from server.access.principal import SOURCE_TAG_SYSTEM
from server.app import create_app
from server.fhir.instant import now_us, to_instant
from server.fhir.json import dumps
from server.search.index import Indexer
from server.search.registry import SearchRegistry
from server.settings import Settings
from server.stores.base import Store, Version, Write

ID_CARD = "urn:oid:2.16.156.10011.1.3"
LOINC = "http://loinc.org"
BATCH = 2000
PERSON_ID = "110101199001011237"


def stamp(resource: dict[str, Any], inst: str, lu: int) -> dict[str, Any]:
    resource["meta"] = {"versionId": "1", "lastUpdated": to_instant(lu),
                        "tag": [{"system": SOURCE_TAG_SYSTEM, "code": inst}]}
    return resource


def filler(n: int, day: str) -> list[dict[str, Any]]:
    """About ``n`` resources: per person 1 Patient + 3 reports x (1 + 2 Observations) = 10."""
    out: list[dict[str, Any]] = []
    person = 0
    while len(out) < n:
        inst = f"INST{person % 50:02d}"
        pid = f"f{person}"
        out.append(stamp({"resourceType": "Patient", "id": pid, "identifier": [
            {"system": ID_CARD, "value": f"F{person:017d}"}]}, inst, 0))
        for r in range(3):
            obs = [f"{pid}o{r}{k}" for k in range(2)]
            for oid in obs:
                out.append(stamp({"resourceType": "Observation", "id": oid, "status": "final",
                                  "code": {"coding": [{"system": LOINC, "code": "2345-7"}]},
                                  "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": day}, inst, 0))
            out.append(stamp({"resourceType": "DiagnosticReport", "id": f"{pid}r{r}", "status": "final",
                              "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                                        "code": "LAB"}]}],
                              "code": {"coding": [{"system": LOINC, "code": "24323-8"}]},
                              "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": day, "issued": day,
                              "result": [{"reference": f"Observation/{o}"} for o in obs]}, inst, 0))
        person += 1
    return out


def person(day: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(10):
        inst = f"INST{i:02d}"
        out.append(stamp({"resourceType": "Organization", "id": f"org{i}", "identifier": [{"value": inst}]}, inst, 0))
        pid = f"me{i}"
        out.append(stamp({"resourceType": "Patient", "id": pid, "identifier": [{"system": ID_CARD,
                                                                                 "value": PERSON_ID}]}, inst, 0))
        for r in range(3):
            oid = f"{pid}o{r}"
            out.append(stamp({"resourceType": "Observation", "id": oid, "status": "final",
                              "code": {"coding": [{"system": LOINC, "code": "2345-7"}]},
                              "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": day}, inst, 0))
            out.append(stamp({"resourceType": "DiagnosticReport", "id": f"{pid}r{r}", "status": "final",
                              "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                                        "code": "LAB"}]}],
                              "code": {"coding": [{"system": LOINC, "code": "2345-7"}]},
                              "performer": [{"reference": f"Organization/org{i}"}],
                              "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": day, "issued": day,
                              "result": [{"reference": f"Observation/{oid}"}]}, inst, 0))
    return out


async def load(store: Store, resources: list[dict[str, Any]]) -> None:
    indexer = Indexer(SearchRegistry())
    for start in range(0, len(resources), BATCH):
        lu = now_us()
        async with store.session() as session:
            for k, resource in enumerate(resources[start:start + BATCH]):
                version = Version(resource["resourceType"], resource["id"], 1, lu + k, False, "POST", dumps(resource))
                await session.write(Write(version, indexer.entries(resource), None))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=100_000)
    parser.add_argument("--store", choices=("sqlite", "mongo"), default="sqlite")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--data-dir", type=Path, help="an embedded store seeded by bench/seed.py (no loading)")
    args = parser.parse_args()
    if args.data_dir is not None:
        await seeded(args.data_dir, args.runs)
        return
    day = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    with tempfile.TemporaryDirectory() as tmp:
        if args.store == "sqlite":
            from server.stores.sqlite import SqliteStore

            store: Store = SqliteStore(tmp)
        else:
            from bench.common import mongo_for_bench
            from server.stores.mongo import MongoStore

            with mongo_for_bench() as uri:
                store = MongoStore(uri, database=f"bench_lookup_{int(time.time())}")
        await store.open()
        started = time.perf_counter()
        mine = person(day)
        await load(store, filler(args.resources - len(mine), day) + mine)
        loaded = time.perf_counter() - started
        app = create_app(Settings(log_requests=False, data_dir=Path(tmp)), store=store)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as client:
            catalog = "item_system,item_code,item_name,category,validity_days,scope\n" \
                      f"{LOINC},2345-7,血糖,laboratory,30,province\n"
            quals = "institution,item_system,item_code,valid_from,valid_to\n" + "".join(
                f"INST{i:02d},{LOINC},2345-7,2020-01-01,2099-12-31\n" for i in range(0, 10, 2))
            for kind, body in (("catalog", catalog), ("qualifications", quals)):
                r = await client.post("/$recognition-import", params={"kind": kind}, content=body.encode(),
                                      headers={"Content-Type": "text/csv"})
                assert r.status_code == 200, r.text
            url = f"/Patient/$cross-lookup?identifier={ID_CARD}|{PERSON_ID}&_count=50"
            first = await client.get(url)
            assert first.status_code == 200, first.text
            entries = first.json()["entry"]
            matched = sum(1 for e in entries if e["search"]["mode"] == "match")
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                r = await client.get(url)
                times.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200
        await store.close()
    times.sort()
    print(f"store: {args.store}, resources: {args.resources:,} (loaded in {loaded:.0f} s), person: 10 institutions, "
          f"{matched} reports + includes per look-up, {args.runs} runs")
    print(f"$cross-lookup p50 {statistics.median(times):.1f} ms, p95 {times[int(len(times) * 0.95) - 1]:.1f} ms, "
          f"max {times[-1]:.1f} ms")


async def measure(client: httpx.AsyncClient, url: str, runs: int) -> tuple[int, list[float]]:
    """(reports matched, sorted latencies in ms) of ``runs`` look-ups after one warm-up."""
    first = await client.get(url)
    assert first.status_code == 200, first.text
    matched = sum(1 for e in first.json().get("entry", []) if e["search"]["mode"] == "match")
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r = await client.get(url)
        times.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200
    return matched, sorted(times)


async def seeded(directory: Path, runs: int) -> None:
    """The look-up of ``bench/seed.py``'s look-up person in the store at ``directory``."""
    import json

    from bench.seed import LOOKUP_INSTITUTIONS, MANIFEST, institution_code
    from server.stores.sqlite import SqliteStore

    manifest = json.loads((directory / MANIFEST).read_text())
    store = SqliteStore(directory)
    await store.open()
    app = create_app(Settings(log_requests=False, data_dir=directory), store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as client:
        catalog = "item_system,item_code,item_name,category,validity_days,scope\n" \
                  f"{LOINC},2345-7,血糖,laboratory,30,province\n{LOINC},24323-8,生化全套,laboratory,30,province\n"
        quals = "institution,item_system,item_code,valid_from,valid_to\n" + "".join(
            f"{institution_code(i)},{LOINC},{code},2020-01-01,2099-12-31\n"
            for i in range(0, LOOKUP_INSTITUTIONS, 2) for code in ("2345-7", "24323-8"))
        for kind, body in (("catalog", catalog), ("qualifications", quals)):
            r = await client.post("/$recognition-import", params={"kind": kind}, content=body.encode(),
                                  headers={"Content-Type": "text/csv"})
            assert r.status_code == 200, r.text
        url = f"/Patient/$cross-lookup?identifier={manifest['lookup_identifier']}&_count=50"
        matched, times = await measure(client, url, runs)
    await store.close()
    print(f"store: sqlite (seeded {directory}), resources: {manifest['resources']:,}, person: "
          f"{LOOKUP_INSTITUTIONS} institutions, {matched} reports (+ their Observations) per look-up, {runs} runs, "
          "in-process ASGI (no network)")
    print(f"$cross-lookup p50 {statistics.median(times):.1f} ms, p95 {times[int(len(times) * 0.95) - 1]:.1f} ms, "
          f"max {times[-1]:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())

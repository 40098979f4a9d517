"""``Patient/$match`` latency on a store of N resources (issue 15: figures at 1,000,000 resources).

    python -m bench.match [--resources 1000000] [--queries 300] [--store sqlite|mongo] [--mongodb-uri URI]
    python -m bench.match --data-dir DIR [--queries 300]

Loads a synthetic region straight into the store (no HTTP, no linking listener: only the search
index matters here): persons with a valid 居民身份证号 (every tenth without one), Chinese names drawn
from common surnames and given names (so names and birth dates collide as they do in a real
region), birth dates over 80 years, phones; each person has one Patient and nine Observations, so
N resources hold N/10 Patients. Then sends ``POST Patient/$match`` through the app in-process
(ASGI, no network) for random persons: half by their ID number, half by name + birth date + sex
only (the weak-match path, the costlier one), and prints p50/p95/p99 per kind.

With ``--data-dir`` it queries an embedded store seeded by ``bench/seed.py`` instead (no loading):
the queried Patients are rebuilt from the seed's plan (deterministic), persons with several Patients
at several institutions included, so an identifier query has several certain matches (any of them
may come first: the check is that the first carries the number).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from profiles import resident_id
from server.app import create_app
from server.fhir.instant import now_us
from server.fhir.json import dumps
from server.search.index import Indexer
from server.search.registry import SearchRegistry
from server.settings import Settings
from server.stores.base import Store, Version, Write

BASE = "http://bench.test/fhir"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英霞平刚桂兰华红玉萍建国文辉鹏飞斌宇浩凯婷雪琳晨欣怡"
BATCH = 2000


def person(n: int, rng: random.Random) -> dict[str, Any]:
    born = f"{rng.randint(1940, 2019)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    male = rng.random() < 0.5
    name = rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.6 else "")
    out: dict[str, Any] = {"resourceType": "Patient", "id": f"p{n}", "name": [{"text": name}], "birthDate": born,
                           "gender": "male" if male else "female",
                           "telecom": [{"system": "phone", "value": f"13{rng.randint(0, 999999999):09d}"}]}
    if n % 10:
        seq = rng.randint(0, 99) * 10 + rng.choice((1, 3, 5, 7, 9) if male else (0, 2, 4, 6, 8))
        first17 = "440304" + born.replace("-", "") + f"{seq:03d}"
        out["identifier"] = [{"system": resident_id.SYSTEM, "value": first17 + resident_id.check_character(first17)}]
    return out


def observation(n: int, k: int) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": f"o{n}-{k}", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
            "subject": {"reference": f"Patient/p{n}"}, "valueQuantity": {"value": 5.0 + k / 10, "unit": "mmol/L"}}


async def load(store: Store, resources: int, seed: int = 15) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    indexer = Indexer(SearchRegistry(), base_url=BASE)
    persons = resources // 10
    patients: list[dict[str, Any]] = []
    started = time.monotonic()
    for start in range(0, persons, BATCH):
        async with store.session() as session:
            for n in range(start, min(persons, start + BATCH)):
                p = person(n, rng)
                patients.append(p)
                for resource in (p, *(observation(n, k) for k in range(9))):
                    resource["meta"] = {"versionId": "1", "lastUpdated": "2024-01-01T00:00:00Z"}
                    version = Version(resource["resourceType"], resource["id"], 1, now_us(), False, "PUT",
                                      dumps(resource))
                    await session.write(Write(version, indexer.entries(resource), None))
        if start // BATCH % 10 == 0:
            print(f"  {min(persons, start + BATCH) * 10:>9} resources loaded ({time.monotonic() - started:.0f} s)",
                  flush=True)
    return patients


def query(p: dict[str, Any], by_id: bool) -> dict[str, Any]:
    q: dict[str, Any] = {"resourceType": "Patient", "name": p["name"], "birthDate": p["birthDate"],
                         "gender": p["gender"]}
    if by_id:
        q["identifier"] = p["identifier"]
    return {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": q},
                                                        {"name": "count", "valueInteger": 10}]}


def seeded_patients(directory: Path, count: int) -> list[dict[str, Any]]:
    """``count`` random Patients of the store ``bench/seed.py`` wrote in ``directory`` (first of each person)."""
    import json

    from bench.seed import MANIFEST, Plan, person_resources

    manifest = json.loads((directory / MANIFEST).read_text())
    plan = Plan(**manifest["plan"])
    persons = len(manifest["chunks"]) - 1  # chunk -1 holds the Organizations
    persons *= plan.chunk
    rng = random.Random(7)
    out = []
    for p in rng.sample(range(1, persons), min(count, persons - 1)):
        out.append(next(r for _, r in person_resources(plan, p) if r["resourceType"] == "Patient"))
    return out


async def measure(store: Store, patients: list[dict[str, Any]], queries: int, *,
                  same_id: bool = True) -> dict[str, list[float]]:
    app = create_app(Settings(base_url=BASE, log_requests=False), store=store)
    rng = random.Random(1)
    times: dict[str, list[float]] = {"identifier": [], "demographics": []}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE) as c:
        for i in range(queries):
            p = rng.choice([x for x in rng.sample(patients, 5) if "identifier" in x] or patients[1:2])
            by_id = i % 2 == 0
            t0 = time.perf_counter()
            r = await c.post("/Patient/$match", json=query(p, by_id))
            elapsed = (time.perf_counter() - t0) * 1000
            assert r.status_code == 200, r.text
            top = r.json()["entry"][0]
            if by_id and same_id:
                assert top["resource"]["id"] == p["id"]
            elif by_id:
                assert any(i in top["resource"].get("identifier", []) for i in p["identifier"]), (p, top)
            times["identifier" if by_id else "demographics"].append(elapsed)
    return times


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[int(p) - 1] if len(values) > 2 else max(values)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resources", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--store", choices=("sqlite", "mongo"), default="sqlite")
    parser.add_argument("--mongodb-uri", default="mongodb://localhost:27017/yidang_bench_match")
    parser.add_argument("--data-dir", type=Path, help="an embedded store seeded by bench/seed.py (no loading)")
    args = parser.parse_args()
    if args.data_dir is not None:
        from server.stores.sqlite import SqliteStore

        store: Store = SqliteStore(args.data_dir)
        await store.open()
        patients = seeded_patients(args.data_dir, 2000)
        print(f"seeded store {args.data_dir}: {len(patients)} candidate persons; in-process ASGI (no network)")
        report(await measure(store, patients, args.queries, same_id=False))
        await store.close()
        return
    if args.store == "sqlite":
        from server.stores.sqlite import SqliteStore

        store = SqliteStore(Path(tempfile.mkdtemp(prefix="bench-match-")))
    else:
        from server.stores.mongo import MongoStore

        store = MongoStore(args.mongodb_uri)
    await store.open()
    t0 = time.monotonic()
    patients = await load(store, args.resources)
    print(f"loaded {args.resources} resources ({len(patients)} Patients) into {args.store} "
          f"in {time.monotonic() - t0:.0f} s")
    report(await measure(store, patients, args.queries))
    await store.close()


def report(times: dict[str, list[float]]) -> None:
    for kind, values in times.items():
        print(f"$match by {kind:<12} n={len(values):<4} p50 {pct(values, 50):7.1f} ms  p95 {pct(values, 95):7.1f} ms"
              f"  p99 {pct(values, 99):7.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())

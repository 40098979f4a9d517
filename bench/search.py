"""Search latency on a replicated Synthea corpus, on either store.

    python -m bench.search --store sqlite|mongo --resources N [--runs 200] [--data-dir DIR]

Ingests the 61 Synthea transaction bundles (round 1 as published, later rounds with fresh ids,
see :func:`bench.ingest.fresh_ids`) through the ASGI app until N resources exist, printing the
ingest rate with indexing; then times ``--runs`` requests of each search below through the app
in-process (parsing, store, Bundle; no network) and prints a markdown table of p50/p99 latency
and result counts (the accurate total of each distinct query, and the entries of its page).

Search values are drawn from the published bundles, so the hit counts grow with the number of
replicas: a patient identifier is unique (1 hit), a family name or a rare code is repeated once per
round. ``--data-dir`` keeps the SQLite database between runs (ingest is skipped when it already
holds N resources); ``--database`` does the same on MongoDB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from bench.common import mongo_for_bench, mongo_server, synthea_bundles
from bench.ingest import fresh_ids
from server.app import create_app
from server.settings import Settings
from server.stores.base import Store

SYNTHEA_ID = "https://github.com/synthetichealth/synthea"
LOINC = "http://loinc.org"
PAGE = 100
"""``_count`` of every timed search: a selective search (≤ 100 hits) returns all of them at once."""


@dataclass
class Sample:
    """Values drawn from the published bundles."""

    identifiers: list[str]
    families: list[str]
    rare_codes: list[str]
    common_code: str
    hours: list[str]


def sample(bundles: list[bytes]) -> Sample:
    codes: Counter[str] = Counter()
    identifiers: list[str] = []
    families: list[str] = []
    hours: list[str] = []
    for raw in bundles:
        for entry in json.loads(raw)["entry"]:
            r = entry["resource"]
            kind = r["resourceType"]
            if kind == "Patient":
                identifiers += [i["value"] for i in r.get("identifier", ()) if i.get("system") == SYNTHEA_ID]
                families += [n["family"] for n in r.get("name", ()) if n.get("family")]
            elif kind == "Observation":
                codes.update(c["code"] for c in r["code"].get("coding", ()) if c.get("system") == LOINC)
                if "effectiveDateTime" in r:
                    hours.append(r["effectiveDateTime"][:13])
    by_rarity = sorted(codes, key=lambda c: (codes[c], c))
    return Sample(identifiers, families, by_rarity[:10], codes.most_common(1)[0][0], hours)


def searches(s: Sample, encounters: list[str], rng: random.Random, runs: int) -> dict[str, list[str]]:
    """Name -> ``runs`` request paths (values drawn at random from the sample; ``encounters`` are
    server-assigned ids)."""

    def pick(values: list[str]) -> list[str]:
        return [rng.choice(values) for _ in range(runs)]

    def next_hour(h: str) -> str:
        return (datetime.strptime(h, "%Y-%m-%dT%H") + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    return {
        "token (Observation?code, rare code)": [f"/Observation?code={LOINC}|{c}" for c in pick(s.rare_codes)],
        "token (Observation?code, common code)": [f"/Observation?code={LOINC}|{s.common_code}"] * runs,
        "identifier (Patient?identifier)": [f"/Patient?identifier={SYNTHEA_ID}|{v}" for v in pick(s.identifiers)],
        "string prefix (Patient?name)": [f"/Patient?name={f[:5]}" for f in pick(s.families)],
        "date range (Observation?date=ge&date=lt, 1 h)": [
            f"/Observation?date=ge{h}:00:00Z&date=lt{next_hour(h)}" for h in pick(s.hours)],
        "chained (Observation?subject:Patient.identifier)": [
            f"/Observation?subject:Patient.identifier={SYNTHEA_ID}|{v}" for v in pick(s.identifiers)],
        "_has (Patient?_has:Observation:patient:code, rare code)": [
            f"/Patient?_has:Observation:patient:code={LOINC}|{c}" for c in pick(s.rare_codes)],
        "_include (Encounter?_id&_include=Encounter:subject)": [
            f"/Encounter?_id={e}&_include=Encounter:subject" for e in pick(encounters)],
    }


@asynccontextmanager
async def opened(kind: str, data_dir: str | None, database: str | None) -> AsyncIterator[tuple[Store, str]]:
    if kind == "sqlite":
        from server.stores.sqlite import SqliteStore

        with tempfile.TemporaryDirectory() as tmp:
            store: Store = SqliteStore(data_dir or tmp)
            await store.open()
            try:
                yield store, "embedded SQLite"
            finally:
                await store.close()
    else:
        from server.stores.mongo import MongoStore

        with mongo_for_bench() as uri:
            store = MongoStore(uri, database=database or f"bench_{uuid.uuid4().hex[:8]}")
            await store.open()
            try:
                yield store, f"MongoDB store on {mongo_server(uri)}"
            finally:
                await store.close()


async def ingest(client: httpx.AsyncClient, bundles: list[bytes], have: int, target: int) -> tuple[int, float]:
    """POST transactions until ``target`` resources exist; (resources written, seconds)."""
    written, elapsed, n = 0, 0.0, 0
    report = time.perf_counter()
    while have + written < target:
        body = bundles[n % len(bundles)] if n < len(bundles) else fresh_ids(bundles[n % len(bundles)])
        started = time.perf_counter()
        r = await client.post("/", content=body, headers={"Content-Type": "application/fhir+json"})
        elapsed += time.perf_counter() - started
        if r.status_code != 200:
            raise SystemExit(f"transaction failed: {r.status_code} {r.text[:500]}")
        written += len(r.json()["entry"])
        n += 1
        if time.perf_counter() - report > 30:
            report = time.perf_counter()
            print(f"  ... {have + written} resources, {written / elapsed:.0f}/s", file=sys.stderr, flush=True)
    return written, elapsed


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure(client: httpx.AsyncClient, paths: list[str]) -> dict[str, Any]:
    totals: dict[str, int] = {}
    for path in dict.fromkeys(paths):  # untimed: the accurate total of each distinct query
        r = await client.get(f"{path}&_summary=count")
        totals[path] = r.json()["total"]
    for path in paths[:5]:  # warm caches
        await client.get(f"{path}&_count={PAGE}")
    times: list[float] = []
    entries: list[int] = []
    for path in paths:
        started = time.perf_counter()
        r = await client.get(f"{path}&_count={PAGE}")
        body = r.content
        times.append((time.perf_counter() - started) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{path}: {r.status_code} {body[:500]!r}")
        entries.append(len(json.loads(body).get("entry", ())))
    hits = [totals[p] for p in paths]
    return {"p50": statistics.median(times), "p99": percentile(times, 99), "hits": statistics.median(hits),
            "max_hits": max(hits), "entries": statistics.median(entries)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=["sqlite", "mongo"], default="sqlite")
    parser.add_argument("--resources", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--data-dir", help="SQLite: keep the database here (reused when it holds enough)")
    parser.add_argument("--database", help="MongoDB: database name (reused when it holds enough)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    bundles = synthea_bundles()
    values = sample(bundles)
    async with opened(args.store, args.data_dir, args.database) as (store, label):
        app = create_app(Settings(log_requests=False, max_count=PAGE), store=store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=3600) as client:
            have = sum((await store.stats())["resources"].values())
            written, seconds = await ingest(client, bundles, have, args.resources)
            total = sum((await store.stats())["resources"].values())
            load = os.getloadavg()
            print(f"\n{label}, {total:,} resources, {os.cpu_count()} cores, load {load[0]:.1f}/{load[1]:.1f}")
            if written:
                print(f"ingest with indexing: {written:,} resources in {seconds:.0f} s = "
                      f"{written / seconds:,.0f} resources/s\n")
            print("| search | p50 ms | p99 ms | hits (median / max) | entries per page |")
            print("|---|---:|---:|---:|---:|")
            page = (await client.get("/Encounter", params={"_count": "100", "_elements": "id"})).json()
            encounters = [e["resource"]["id"] for e in page.get("entry", ())]
            for name, paths in searches(values, encounters, rng, args.runs).items():
                m = await measure(client, paths)
                print(f"| {name} | {m['p50']:.1f} | {m['p99']:.1f} | {m['hits']:.0f} / {m['max_hits']} | "
                      f"{m['entries']:.0f} |", flush=True)
            print(f"\nload after: {os.getloadavg()[0]:.1f}; _count={PAGE}; {args.runs} runs per search, "
                  f"in-process ASGI (no network)")


if __name__ == "__main__":
    asyncio.run(main())

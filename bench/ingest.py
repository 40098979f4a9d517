"""Transaction ingest of the 61 Synthea bundles (20,680 resources), on both stores.

    python bench/ingest.py [--store sqlite|mongo|both] [--rounds N]

Each bundle is POSTed as a transaction through the ASGI app in-process (no network), so the figure
is the server's own cost: JSON parsing, validation, reference rewriting, indexing and the store.
Round 2+ replicate the bundles with fresh ids (urn:uuid fullUrls are renamed) so every round
creates new resources.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
import uuid

import httpx

from bench.common import mongo_for_bench, mongo_server, server_process, synthea_bundles
from server.app import create_app
from server.settings import Settings
from server.stores.base import Store

UUID_RE = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def fresh_ids(bundle: bytes) -> bytes:
    """Rename every UUID in the bundle consistently, so a replicated bundle creates new resources."""
    mapping: dict[bytes, bytes] = {}

    def swap(m: re.Match[bytes]) -> bytes:
        return mapping.setdefault(m.group(0), str(uuid.uuid4()).encode())

    return UUID_RE.sub(swap, bundle)


async def ingest(store: Store, bundles: list[bytes], rounds: int) -> tuple[int, float]:
    app = create_app(Settings(log_requests=False), store=store)
    resources = 0
    elapsed = 0.0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench",
                                 timeout=600) as client:
        for n in range(rounds):
            batch = bundles if n == 0 else [fresh_ids(b) for b in bundles]
            started = time.perf_counter()
            for body in batch:
                r = await client.post("/", content=body, headers={"Content-Type": "application/fhir+json"})
                if r.status_code != 200:
                    raise SystemExit(f"transaction failed: {r.status_code} {r.text[:500]}")
                resources += len(r.json()["entry"])
            elapsed += time.perf_counter() - started
    return resources, elapsed


async def ingest_http(env: dict[str, str], bundles: list[bytes], rounds: int, workers: int) -> tuple[int, float]:
    """POST the bundles to ``uvicorn --workers N`` with N concurrent clients."""
    batches = [bundles if n == 0 else [fresh_ids(b) for b in bundles] for n in range(rounds)]
    work = [b for batch in batches for b in batch]
    resources = 0
    with server_process(env, workers=workers) as (host, port):
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=600) as client:
            queue = list(reversed(work))
            started = time.perf_counter()

            async def worker() -> int:
                done = 0
                while queue:
                    body = queue.pop()
                    r = await client.post("/", content=body, headers={"Content-Type": "application/fhir+json"})
                    if r.status_code != 200:
                        raise SystemExit(f"transaction failed: {r.status_code} {r.text[:500]}")
                    done += len(r.json()["entry"])
                return done

            resources = sum(await asyncio.gather(*(worker() for _ in range(workers))))
            elapsed = time.perf_counter() - started
    return resources, elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["sqlite", "mongo", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--http-workers", type=int, default=0,
                        help="also POST over HTTP to uvicorn with this many worker processes")
    args = parser.parse_args()
    bundles = synthea_bundles()
    kinds = ["sqlite", "mongo"] if args.store == "both" else [args.store]
    if args.http_workers and "sqlite" in kinds:
        with tempfile.TemporaryDirectory() as tmp:
            count, seconds = await ingest_http({"YIDANG_DATA_DIR": tmp}, bundles, args.rounds, args.http_workers)
        label = f"embedded SQLite, HTTP, {args.http_workers} workers"
        print(f"ingest  {label:40s} {count:7d} resources in {seconds:6.1f} s = {count / seconds:7.0f} resources/s")
    for kind in kinds:
        if kind == "sqlite":
            from server.stores.sqlite import SqliteStore

            with tempfile.TemporaryDirectory() as tmp:
                store: Store = SqliteStore(tmp)
                await store.open()
                count, seconds = await ingest(store, bundles, args.rounds)
                await store.close()
            label = "embedded SQLite"
        else:
            from server.stores.mongo import MongoStore

            with mongo_for_bench() as uri:
                store = MongoStore(uri, database=f"bench_{uuid.uuid4().hex[:8]}")
                await store.open()
                count, seconds = await ingest(store, bundles, args.rounds)
                await store.close()
            label = f"MongoDB store on {mongo_server(uri)}"
        print(f"ingest  {label:40s} {count:7d} resources in {seconds:6.1f} s = {count / seconds:7.0f} resources/s")


if __name__ == "__main__":
    asyncio.run(main())

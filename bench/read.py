"""Read-by-id throughput over HTTP with 32 concurrent keep-alive clients, on both stores.

    python bench/read.py [--store sqlite|mongo|both] [--seconds 10] [--clients 32]

Loads the Synthea bundles, starts ``uvicorn server.asgi:app`` in a subprocess on the chosen store
and reads random resources by id (``GET /Type/id``) from a light asyncio client in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid

from bench.common import mongo_for_bench, mongo_server, server_process, synthea_bundles
from bench.httpload import run
from server.stores.base import Store


async def measure(env: dict[str, str], paths: list[str], seconds: float, clients: int, label: str) -> None:
    with server_process(env) as (host, port):
        result = await run(host, port, paths, clients=clients, seconds=seconds)
    print(f"read    {label:40s} {result.rate:7.0f} reads/s  p50 {result.percentile(50) * 1000:6.2f} ms  "
          f"p99 {result.percentile(99) * 1000:6.2f} ms  errors {result.errors}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["sqlite", "mongo", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    bundles = synthea_bundles()
    kinds = ["sqlite", "mongo"] if args.store == "both" else [args.store]
    for kind in kinds:
        if kind == "sqlite":
            from server.stores.sqlite import SqliteStore

            with tempfile.TemporaryDirectory() as tmp:
                targets = await load_and_list(SqliteStore(tmp), bundles)
                await measure({"YIDANG_DATA_DIR": tmp}, targets, args.seconds, args.clients, "embedded SQLite")
        else:
            from server.stores.mongo import MongoStore

            with mongo_for_bench() as uri:
                database = f"bench_{uuid.uuid4().hex[:8]}"
                targets = await load_and_list(MongoStore(uri, database=database), bundles)
                await measure({"YIDANG_MONGODB_URI": uri, "YIDANG_MONGODB_DATABASE": database}, targets,
                              args.seconds, args.clients, f"MongoDB store on {mongo_server(uri)}")


async def load_and_list(store: Store, bundles: list[bytes]) -> list[str]:
    """Ingest the bundles and return ``/Type/id`` paths of what was created."""
    import httpx

    from server.app import create_app
    from server.settings import Settings

    await store.open()
    app = create_app(Settings(log_requests=False), store=store)
    paths: list[str] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        for body in bundles:
            r = await client.post("/", content=body, headers={"Content-Type": "application/fhir+json"})
            for entry in r.json()["entry"]:
                paths.append("/" + entry["response"]["location"].split("/_history")[0])
    await store.close()
    return paths


if __name__ == "__main__":
    asyncio.run(main())

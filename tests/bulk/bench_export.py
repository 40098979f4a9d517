"""Export/import throughput and memory on the embedded store (not a test: run it by hand).

    .venv/bin/python -m tests.bulk.bench_export 300000

Seeds N Observations (through the store's own transaction path), exports them with the bulk job,
and reports resources/s, the peak of Python allocations (tracemalloc) during the export and the RSS.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import httpx

from server.app import create_app
from server.settings import Settings
from server.stores.sqlite import SqliteStore

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


async def main(n: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bulkbench-"))
    store = SqliteStore(work / "store")
    await store.open()
    app = create_app(Settings(base_url="http://b/fhir", log_requests=False, data_dir=work, grading=False), store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"),
                                 base_url="http://b/fhir", timeout=600) as c:
        started = time.perf_counter()
        for first in range(0, n, 1000):
            bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
                {"resource": {"resourceType": "Observation", "id": f"o{i}", "status": "final",
                              "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                              "subject": {"reference": f"Patient/p{i % 1000}"}, "valueQuantity": {
                                  "value": 60 + i % 40, "unit": "/min", "system": "http://unitsofmeasure.org",
                                  "code": "/min"}},
                 "request": {"method": "PUT", "url": f"Observation/o{i}"}} for i in range(first, min(n, first + 1000))]}
            assert (await c.post("/", json=bundle)).status_code == 200
        print(f"seeded {n} in {time.perf_counter() - started:.0f}s")
        tracemalloc.start()
        base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        kick = await c.get("/$export", params={"_type": "Observation"}, headers=ASYNC)
        url = kick.headers["Content-Location"]
        while (polled := await c.get(url)).status_code == 202:
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        count = sum(o["count"] for o in polled.json()["output"])
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"export: {count} resources in {elapsed:.1f}s = {count / elapsed:.0f}/s; "
              f"peak traced allocations {peak / 1e6:.1f} MB; max RSS {base_rss / 1e3:.0f} MB before, "
              f"{rss / 1e3:.0f} MB after")
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))

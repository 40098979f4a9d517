"""Bulk Data export and import throughput and memory on the embedded store (issue 16 acceptance).

    python -m bench.export --data-dir DIR [--import-resources 100000] [--work DIR2]

Export: a system-level ``$export`` of every type from the store in ``DIR`` (seeded by ``bench/seed.py``),
kicked off and polled through the app in-process (ASGI, no network; the export job runs in this process,
as in ``yidang serve``). Every 0.5 s the status answer's ``X-Progress`` count and this process's
current RSS (``VmRSS``) are sampled; the samples at 250k, 500k, 1M … resources show whether memory
grows with the data. Reports resources/s and the peak RSS (``ru_maxrss``) before and after.

Import: the first ``--import-resources`` lines of the export files (every type in proportion) are
imported with ``$import`` (files from a path the server may read) into a fresh embedded store
(in-process), each line validated and written as an update, like any write; resources/s, errors and
the peak RSS of that phase (the import runs in a child process, so its RSS is its own).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import re
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from server.app import create_app
from server.settings import Settings
from server.stores.sqlite import SqliteStore

BASE = "http://bench.test/fhir"
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
NUMBER = re.compile(r"\d+")
MARKS = (250_000, 500_000, 1_000_000, 2_000_000, 4_000_000)


def rss_mib(kind: str = "VmRSS") -> float:
    """This process's resident set now, MiB: ``VmRSS`` (all), ``RssAnon`` (heap and other private memory)
    or ``RssFile`` (mapped files: the store's 1 GiB SQLite ``mmap`` of the database, pages the kernel may
    drop at any time)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(kind + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def wait(c: httpx.AsyncClient, url: str, on_sample: Any = None) -> dict[str, Any]:
    while (polled := await c.get(url)).status_code == 202:
        found = NUMBER.search(polled.headers.get("x-progress", ""))
        if on_sample is not None and found:
            on_sample(int(found.group()))
        await asyncio.sleep(0.5)
    assert polled.status_code == 200, polled.text
    manifest: dict[str, Any] = polled.json()
    return manifest


async def export(directory: Path, work: Path) -> Path:
    """Export everything in ``directory``; print the figures; return the folder of the NDJSON files."""
    store = SqliteStore(directory)
    await store.open()
    bulk = work / "export"
    app = create_app(Settings(base_url=BASE, log_requests=False, data_dir=directory, bulk_dir=bulk), store=store)
    samples: list[tuple[int, float, float, float]] = []
    started = 0.0

    def sample(done: int) -> None:
        samples.append((done, time.perf_counter() - started, rss_mib("RssAnon"), rss_mib("RssFile")))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE,
                                 timeout=600) as c:
        assert (await c.get("/metadata")).status_code == 200  # warm: the app's first request loads its tables
        base_rss, base_peak = rss_mib(), peak_mib()
        started = time.perf_counter()
        kick = await c.get("/$export", headers=ASYNC)
        assert kick.status_code == 202, kick.text
        manifest = await wait(c, kick.headers["Content-Location"], sample)
        elapsed = time.perf_counter() - started
        count = sum(int(o["count"]) for o in manifest["output"])
        sample(count)
    await store.close()
    types = len({o["type"] for o in manifest["output"]})
    print(f"export (in-process ASGI, system $export, {types} types): {count:,} resources in {elapsed:.1f} s = "
          f"{count / elapsed:,.0f} resources/s; RSS {base_rss:,.0f} MiB before, peak {peak_mib():,.0f} MiB "
          f"(peak before {base_peak:,.0f} MiB)")
    shown = 0
    for done, at, anon, mapped in samples:
        if (shown < len(MARKS) and done >= MARKS[shown]) or (done, at, anon, mapped) == samples[-1]:
            print(f"  at {done:>9,} exported ({at:6.1f} s): RSS anonymous {anon:,.0f} MiB + mapped store file "
                  f"{mapped:,.0f} MiB")
            while shown < len(MARKS) and done >= MARKS[shown]:
                shown += 1
    if samples:
        anon_max, mapped_max = max(s[2] for s in samples), max(s[3] for s in samples)
        print(f"  max sampled: anonymous {anon_max:,.0f} MiB, mapped {mapped_max:,.0f} MiB "
              f"({len(samples)} samples, every 0.5 s)")
    jobs = [p for p in bulk.iterdir() if p.is_dir()]
    return max(jobs, key=lambda p: p.stat().st_mtime)


def import_files(files: Path, wanted: int, into: Path) -> dict[str, int]:
    """The first lines of each export file, in proportion (``wanted`` in all, about), copied to ``into``;
    lines per type."""
    paths = sorted(files.glob("*.ndjson"))
    sizes = {p: sum(1 for _ in p.open("rb")) for p in paths}
    share = min(1.0, wanted / max(sum(sizes.values()), 1))
    into.mkdir(parents=True, exist_ok=True)
    taken: dict[str, int] = {}
    for p in paths:
        take = round(sizes[p] * share)
        with p.open("rb") as f, (into / p.name).open("wb") as out:
            for _ in range(take):
                out.write(next(f))
        type_ = p.name.split("-")[0].split(".")[0]
        taken[type_] = taken.get(type_, 0) + take
    return taken


def _import_child(files: str, wanted: int, out: Any) -> None:
    asyncio.run(_import(Path(files), wanted, out))


async def _import(files: Path, wanted: int, out: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        inputs = Path(tmp) / "in"
        taken = import_files(files, wanted, inputs)
        lines = sum(taken.values())
        store = SqliteStore(Path(tmp) / "store")
        await store.open()
        app = create_app(Settings(base_url=BASE, log_requests=False, data_dir=Path(tmp), bulk_dir=Path(tmp) / "b",
                                  bulk_import_dirs=[inputs]), store=store)
        params = {"resourceType": "Parameters", "parameter": [
            {"name": "inputFormat", "valueCode": "application/fhir+ndjson"},
            *({"name": "input", "part": [{"name": "type", "valueCode": p.name.split("-")[0].split(".")[0]},
                                         {"name": "url", "valueUri": f"file://{p}"}]}
              for p in sorted(inputs.glob("*.ndjson")))]}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE,
                                     timeout=600) as c:
            assert (await c.get("/metadata")).status_code == 200
            base = rss_mib()
            started = time.perf_counter()
            kick = await c.post("/$import", json=params, headers=ASYNC)
            assert kick.status_code == 202, kick.text
            manifest = await wait(c, kick.headers["Content-Location"])
            elapsed = time.perf_counter() - started
        await store.close()
    count = sum(int(o["count"]) for o in manifest["output"])
    errors = sum(int(o["count"]) for o in manifest.get("error", []))
    out.put(f"import (in-process ASGI, $import of {lines:,} NDJSON lines in {len(taken)} files from a server path, "
            f"each validated and upserted, into a fresh embedded store): {count:,} resources in {elapsed:.1f} s = "
            f"{count / elapsed:,.0f} resources/s; {errors} errors; RSS {base:,.0f} MiB before, "
            f"peak {peak_mib():,.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="an embedded store (e.g. seeded by bench.seed)")
    parser.add_argument("--import-resources", type=int, default=100_000, help="0: no import")
    parser.add_argument("--work", type=Path, help="where the export files go (default: a temporary folder)")
    parser.add_argument("--files", type=Path, help="skip the export; import from these export files")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-export-"))
    files = args.files or asyncio.run(export(args.data_dir, work))
    print(f"export files: {files}", flush=True)
    if args.import_resources:
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        child = ctx.Process(target=_import_child, args=(str(files), args.import_resources, queue))
        child.start()
        print(queue.get())
        child.join()


if __name__ == "__main__":
    main()

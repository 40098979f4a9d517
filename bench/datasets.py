"""Local data-set conversion throughput and end-to-end ingest on the embedded store.

    python -m bench.datasets [--persons N] [--lab-persons N] [--ingest-persons N] [--lab-items K]

    python -m bench.datasets --ingest-persons 100000 --lab-items 5   # 100k person + 500k lab-report rows

Conversion (one core, no storage): read CSV → QC → FHIR → transaction Bundles, for ``person`` rows and
``lab-report`` rows (3 items per report), reported as records/s. End-to-end: ``person`` then
``lab-report`` through the in-process server on a fresh embedded (SQLite) store, as
``yidang ingest --data-dir`` sends them (several persons per transaction, one Patient search per
batch for the identifier merge), reported as records/s with the peak RSS; then the same ``person``
file again to show the re-ingest cost (nothing written).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

from profiles.datasets import spec
from profiles.datasets.run import run
from server.ingest_local import send
from server.load_runner import target
from tests.datasets import generate as g


def conversion(name: str, data: bytes, records: int) -> float:
    started = time.perf_counter()
    result = run(spec.load(name), data, kind="csv")
    persons = sum(1 for _ in result.conversion.iter_bundles())
    elapsed = time.perf_counter() - started
    assert result.report["records_accepted"] == records, result.report["records_rejected"]
    rate = records / elapsed
    print(f"convert {name:<11} {records:>7} records  {elapsed:6.2f} s  {rate:8.0f} records/s  "
          f"{persons} bundles")
    return rate


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def end_to_end(persons: int, lab_items: int, directory: Path, mongodb_uri: str | None = None) -> None:
    """``person`` then ``lab-report`` (``lab_items`` results per person, one report each) into a fresh
    embedded store in ``directory`` (or the MongoDB at ``mongodb_uri``), through the in-process
    server, as ``yidang ingest --data-dir`` does."""
    people = g.people(persons, seed=99)
    person_csv = g.to_csv([g.person_row(p, g.INSTITUTIONS[i % 2], i) for i, p in enumerate(people)])
    items = (g.LAB_ITEMS + g.MORE_LAB_ITEMS)[:lab_items]
    lab_csv = g.to_csv(g.lab_rows(people, items=items))
    del people
    total_records, total_seconds = 0, 0.0
    async with target(None, None if mongodb_uri else directory, mongodb_uri) as client:
        for label, name, data, count in (("person", "person", person_csv, persons),
                                         ("lab-report", "lab-report", lab_csv, persons * len(items)),
                                         ("person again", "person", person_csv, persons)):
            started = time.perf_counter()
            conversion = run(spec.load(name), data, kind="csv").conversion
            converted = time.perf_counter()
            sent = await send(client, conversion.iter_bundles())
            elapsed = time.perf_counter() - started
            del conversion
            assert sent.failed == 0, sent.errors[:3]
            if label != "person again":
                total_records += count
                total_seconds += elapsed
            print(f"ingest  {label:<13} {count:>7} records  {elapsed:7.1f} s  {count / elapsed:6.0f} records/s  "
                  f"(check {converted - started:5.1f} s; {sent.transactions} transactions, {sent.created} created; "
                  f"peak RSS {_peak_mib():,.0f} MiB)", flush=True)
    size = sum(f.stat().st_size for f in directory.iterdir() if f.is_file())
    print(f"ingest  total {total_records:,} records in {total_seconds:,.0f} s = {total_records / total_seconds:,.0f} "
          f"records/s" + ("" if mongodb_uri else f"; store {size / 2**20:,.0f} MiB"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=20000, help="person rows for the conversion figure")
    parser.add_argument("--lab-persons", type=int, default=10000, help="persons (3 lab rows each) for conversion")
    parser.add_argument("--ingest-persons", type=int, default=1000, help="persons for the end-to-end ingest")
    parser.add_argument("--lab-items", type=int, default=3, choices=range(1, 6),
                        help="lab rows per person in the end-to-end ingest (5: 100k persons give 500k rows)")
    parser.add_argument("--data-dir", type=Path, help="store directory (default: a temporary one)")
    parser.add_argument("--store", choices=("sqlite", "mongo"), default="sqlite",
                        help="end-to-end store: embedded SQLite, or MongoDB (YIDANG_BENCH_MONGODB_URI, else nx-27017)")
    args = parser.parse_args()
    people = g.people(args.persons, seed=98)
    conversion("person", g.to_csv([g.person_row(p, g.INSTITUTIONS[i % 2], i) for i, p in enumerate(people)]),
               args.persons)
    lab = g.lab_rows(g.people(args.lab_persons, seed=97))
    conversion("lab-report", g.to_csv(lab), len(lab))
    del people, lab
    if args.store == "mongo":
        from bench.common import mongo_for_bench, mongo_server

        with mongo_for_bench() as uri, tempfile.TemporaryDirectory() as directory:
            print(f"end-to-end store: MongoDB store on {mongo_server(uri)}", flush=True)
            asyncio.run(end_to_end(args.ingest_persons, args.lab_items, Path(directory), uri))
    elif args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(end_to_end(args.ingest_persons, args.lab_items, args.data_dir))
    else:
        with tempfile.TemporaryDirectory() as directory:
            asyncio.run(end_to_end(args.ingest_persons, args.lab_items, Path(directory)))


if __name__ == "__main__":
    main()

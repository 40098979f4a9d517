"""Local data-set conversion throughput and end-to-end ingest on the embedded store.

    python -m bench.datasets [--persons N] [--lab-persons N] [--ingest-persons N]

Conversion (one core, no storage): read CSV → QC → FHIR → transaction Bundles, for ``person`` rows and
``lab-report`` rows (3 items per report), reported as records/s. End-to-end: ``person`` then
``lab-report`` through the in-process server on a fresh embedded (SQLite) store, with per-person
transactions and the identifier merge (one search per person), reported as records/s; then the same
``person`` file again to show re-ingest cost (nothing written).
"""

from __future__ import annotations

import argparse
import asyncio
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
    elapsed = time.perf_counter() - started
    assert result.report["records_accepted"] == records, result.report["records_rejected"]
    rate = records / elapsed
    print(f"convert {name:<11} {records:>7} records  {elapsed:6.2f} s  {rate:8.0f} records/s  "
          f"{len(result.conversion.bundles)} bundles")
    return rate


async def end_to_end(persons: int) -> None:
    people = g.people(persons, seed=99)
    person_csv = g.to_csv([g.person_row(p, g.INSTITUTIONS[i % 2], i) for i, p in enumerate(people)])
    lab_csv = g.to_csv(g.lab_rows(people))
    with tempfile.TemporaryDirectory() as directory:
        async with target(None, Path(directory), None) as client:
            for label, name, data, count in (("person", "person", person_csv, persons),
                                             ("lab-report", "lab-report", lab_csv, persons * len(g.LAB_ITEMS)),
                                             ("person again", "person", person_csv, persons)):
                started = time.perf_counter()
                bundles = run(spec.load(name), data, kind="csv").conversion.bundles
                sent = await send(client, bundles)
                elapsed = time.perf_counter() - started
                assert sent.failed == 0, sent.errors[:3]
                print(f"ingest  {label:<13} {count:>6} records  {elapsed:6.2f} s  {count / elapsed:7.0f} records/s  "
                      f"({sent.transactions} transactions)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=20000)
    parser.add_argument("--lab-persons", type=int, default=10000)
    parser.add_argument("--ingest-persons", type=int, default=1000)
    args = parser.parse_args()
    people = g.people(args.persons, seed=98)
    conversion("person", g.to_csv([g.person_row(p, g.INSTITUTIONS[i % 2], i) for i, p in enumerate(people)]),
               args.persons)
    lab = g.lab_rows(g.people(args.lab_persons, seed=97))
    conversion("lab-report", g.to_csv(lab), len(lab))
    asyncio.run(end_to_end(args.ingest_persons))


if __name__ == "__main__":
    main()

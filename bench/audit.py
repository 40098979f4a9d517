"""Audit cost and ``yidang audit verify`` speed, on the embedded store.

    python -m bench.audit [--seconds 10] [--clients 32] [--rounds 2] [--sustained 0] [--events 100000]
                          [--skip-reads]

1. Read-by-id throughput over HTTP (32 keep-alive clients, ``GET /Type/id`` of the Synthea
   resources) with auditing off and on, alternating in the same run on the same data
   (``YIDANG_AUDIT=false|true``): with the default settings every audited read's event is written
   to the spool before its response (safe against kill -9, not a power cut), and the writer stores
   the spooled events in the chain when the server is idle, at the latest ``audit_max_delay`` (30 s)
   after they were answered; and with ``YIDANG_AUDIT_FSYNC=true`` (each response also waits for a
   group fsync). Each round of ``--seconds`` is a burst: the rate is that of the burst; then the
   bench waits until the server has stored every event (its spool directory is empty) and reports
   how long that took and the server's CPU time per read *including* it (user + system of the server
   process, from ``/proc``), so the audit's whole cost per event shows apart from the load generator.
2. ``--sustained S``: one more pair of runs (off, on) of ``S`` seconds of continuous load, longer
   than ``audit_max_delay``, so the writer has to store at full speed while the reads go on: the
   rate the server keeps up under saturation with audit on.
3. ``audit verify`` speed: ``--events`` AuditEvents chained into a fresh store (as the writer does,
   batches of 500), then the chain walked and checked as ``yidang audit verify`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import server_cpu, server_process, synthea_bundles
from bench.httpload import run
from bench.read import load_and_list

MODES = {"off": {"YIDANG_AUDIT": "false"}, "on": {"YIDANG_AUDIT": "true", "YIDANG_AUDIT_FSYNC": "false"},
         "on, fsync": {"YIDANG_AUDIT": "true", "YIDANG_AUDIT_FSYNC": "true"}}


async def stored_all(spool: Path, timeout: float = 300.0) -> float:
    """Seconds until the server has stored every spooled event (its spool segments are deleted)."""
    started = time.perf_counter()
    while any(spool.glob("spool-*.ndjson")) and time.perf_counter() - started < timeout:
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def one(tmp: str, targets: list[str], mode: str, seconds: float, clients: int) -> tuple[float, float, float]:
    """(reads/s of the load, seconds to store the backlog after it, server CPU ms per read with that)."""
    env = {"YIDANG_DATA_DIR": tmp, **MODES[mode], "YIDANG_LOG_REQUESTS": "false"}
    with server_process(env) as (host, port):
        before = server_cpu()
        result = await run(host, port, targets, clients=clients, seconds=seconds)
        during = server_cpu() - before
        drained = await stored_all(Path(tmp) / "audit")
        used = server_cpu() - before
    per_read = used / max(result.requests, 1) * 1000
    in_load = during / max(result.requests, 1) * 1000
    print(f"read  audit {mode:10s} {seconds:4.0f} s {result.rate:7.0f} reads/s  "
          f"p50 {result.percentile(50) * 1000:6.2f} ms"
          f"  p99 {result.percentile(99) * 1000:6.2f} ms  server CPU {in_load:5.3f} ms/read; stored the rest in "
          f"{drained:5.1f} s, server CPU with that {per_read:5.3f} ms/read  errors {result.errors}", flush=True)
    return result.rate, drained, per_read


async def reads(seconds: float, clients: int, rounds: int, sustained: float) -> None:
    from server.audit import ledger
    from server.stores.sqlite import SqliteStore

    bundles = synthea_bundles()
    with tempfile.TemporaryDirectory() as tmp:
        targets = await load_and_list(SqliteStore(tmp), bundles)
        rates: dict[str, list[float]] = {mode: [] for mode in MODES}
        cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(rounds):
            for mode in MODES:
                rate, _drained, per_read = await one(tmp, targets, mode, seconds, clients)
                rates[mode].append(rate)
                cpu[mode].append(per_read)
        off = sum(rates["off"]) / rounds
        off_cpu = sum(cpu["off"]) / rounds
        for mode in ("on", "on, fsync"):
            on = sum(rates[mode]) / rounds
            on_cpu = sum(cpu[mode]) / rounds
            print(f"read  burst of {seconds:.0f} s: audit {mode} / off = {on:.0f} / {off:.0f} = {on / off:.2f}x; "
                  f"server CPU per read with the backlog stored {on_cpu:.3f} vs {off_cpu:.3f} ms "
                  f"(audit {on_cpu - off_cpu:+.3f} ms)")
        if sustained:
            off_rate, _, off_cpu = await one(tmp, targets, "off", sustained, clients)
            on_rate, _, on_cpu = await one(tmp, targets, "on", sustained, clients)
            print(f"read  sustained {sustained:.0f} s: audit on / off = {on_rate:.0f} / {off_rate:.0f} = "
                  f"{on_rate / off_rate:.2f}x; server CPU per read {on_cpu:.3f} vs {off_cpu:.3f} ms")
        store = SqliteStore(tmp)
        await store.open()
        count = sum([1 async for _ in ledger.events(store)])
        await store.close()
        spool = list((Path(tmp) / "audit").glob("spool-*.ndjson"))
        print(f"read  {count} AuditEvents stored by the audited rounds; {len(spool)} spool segment(s) left")


def event(n: int) -> dict[str, object]:
    """An AuditEvent of a typical read (sizes as the server writes them)."""
    return {
        "resourceType": "AuditEvent", "id": str(uuid.uuid4()),
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "read"}],
        "action": "R", "recorded": "2026-01-01T00:00:00.000000Z", "outcome": "0",
        "agent": [{"type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153"}]},
                   "who": {"identifier": {"system": "http://yidang.org/fhir/sid/client-id", "value": "emr"}},
                   "requestor": True, "network": {"address": "10.0.0.1", "type": "2"}},
                  {"type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110152"}]},
                   "who": {"display": "Yidang FHIR server"}, "requestor": False}],
        "source": {"site": "yidang", "observer": {"display": "Yidang FHIR server"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}]},
        "entity": [{"what": {"reference": f"Patient/p{n % 5000}"}, "type": {"code": "1"}, "role": {"code": "1"}},
                   {"what": {"reference": f"Observation/o{n}/_history/1"}, "type": {"code": "2"},
                    "role": {"code": "4"}}],
    }


async def verify(events: int) -> None:
    from server.audit import ledger
    from server.search.index import Indexer
    from server.search.registry import SearchRegistry
    from server.stores.sqlite import SqliteStore

    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(tmp)
        await store.open()
        indexer = Indexer(SearchRegistry())
        started = time.perf_counter()
        for first in range(0, events, 500):
            await ledger.append(store, indexer, [event(n) for n in range(first, min(first + 500, events))])
        wrote = time.perf_counter() - started
        print(f"chain {events} events appended in {wrote:.1f} s ({events / wrote:,.0f} events/s, batches of 500)",
              flush=True)
        report = await ledger.verify(store, None)
        assert report.ok and report.count == events, report.broken
        rate = report.count / report.seconds
        print(f"verify {report.count} events in {report.seconds:.1f} s = {rate:,.0f} events/s"
              + ("" if events >= 1_000_000 else f"; 1,000,000 events ≈ {1_000_000 / rate:.0f} s (extrapolated)"))
        await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sustained", type=float, default=0.0)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--skip-reads", action="store_true")
    args = parser.parse_args()
    if not args.skip_reads:
        await reads(args.seconds, args.clients, args.rounds, args.sustained)
    if args.events:
        await verify(args.events)


if __name__ == "__main__":
    asyncio.run(main())

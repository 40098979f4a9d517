"""kill -9 during a read burst against a real ``yidang serve`` loses no AuditEvent of an answered
request: every response is sent only after its event is written to the spool (the page cache,
which outlives the process; not fsync'd by default), and the next start replays the spool into the
store."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from server.audit import ledger
from server.audit.keys import load_key
from server.fhir.json import load_stored
from server.stores.sqlite import SqliteStore
from tests.served import served

READERS = 8
BURST_S = 1.5


async def read_events(data_dir: Path) -> tuple[list[dict[str, Any]], ledger.Report]:
    store = SqliteStore(data_dir)
    await store.open()
    try:
        events = [load_stored(row.body) async for row in ledger.events(store) if row.body]
        return events, await ledger.verify(store, load_key(data_dir / "audit"))
    finally:
        await store.close()


def test_kill_9_during_a_read_burst_loses_no_answered_event(tmp_path: Path) -> None:
    env = {"YIDANG_AUDIT": "true", "YIDANG_LOG_REQUESTS": "false"}
    answered = [0] * READERS
    stop = threading.Event()
    with served(tmp_path, env=env) as server:
        created = httpx.post(f"{server.base}/Patient", json={"resourceType": "Patient"}, timeout=10)
        assert created.status_code == 201
        url = f"{server.base}/Patient/{created.json()['id']}"

        def reader(n: int) -> None:
            with httpx.Client(timeout=5) as client:
                while not stop.is_set():
                    try:
                        if client.get(url).status_code == 200:
                            answered[n] += 1
                    except httpx.HTTPError:
                        return

        threads = [threading.Thread(target=reader, args=(n,)) for n in range(READERS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 15
        time.sleep(BURST_S)
        while sum(answered) < 200 and time.monotonic() < deadline:  # a loaded machine reads slowly
            time.sleep(0.1)
        server.kill()  # mid-burst: requests in flight are cut off
        stop.set()
        for t in threads:
            t.join(timeout=10)
    reads = sum(answered)
    assert reads > 50, "the burst was too small to mean anything"
    with served(tmp_path, env=env):  # the next start replays the spool; SIGTERM at exit stores the rest
        pass
    events, report = asyncio.run(read_events(tmp_path / "store"))
    recorded = sum(1 for e in events if e["subtype"][0]["code"] == "read")
    print(f"kill -9: {reads} reads answered, {recorded} read events stored")
    assert recorded >= reads, f"{reads} reads answered, {recorded} read events stored"
    assert report.ok, report.broken
    assert not list((tmp_path / "store" / "audit").glob("spool-*.ndjson"))

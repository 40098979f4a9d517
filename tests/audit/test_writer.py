"""The writer gives way to requests, on both stores: while requests keep coming, events wait in
the spool (on disk, not in memory) and are stored once the server is idle, or when the oldest has
waited ``audit_max_delay``; a reader of AuditEvents first has every event answered before it
stored, so no search, read, include or compartment misses one; a long event line is read back
whole; a segment is deleted once all of it is stored.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from server.audit import ledger
from server.audit.log import AuditLog, reads_audit_events
from server.audit.spool import Spool
from server.hooks import Access
from server.stores.base import Store
from tests.audit.test_spool import app_on, client_of, spooled_ids, stored_ids


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "audit"


async def busy(c: object, seconds: float) -> int:
    """Requests one after another for ``seconds`` (gaps far below the idle interval)."""
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert (await c.get("/Patient?name=busy")).status_code == 200  # type: ignore[attr-defined]
        n += 1
    return n


async def test_events_wait_while_requests_come_and_are_stored_when_idle(store: Store, spool: Path) -> None:
    app = app_on(store, spool, audit_batch_interval=0.4)
    audit: AuditLog = app.state.audit
    before = len(await stored_ids(store))
    async with client_of(app) as c:
        n = await busy(c, 0.3)
        assert audit.pending == n and audit.stored == 0  # all still waiting, in the spool file
        assert len(spooled_ids(spool)) == n
        deadline = time.monotonic() + 10
        while audit.pending and time.monotonic() < deadline:  # idle now: stored within the interval
            await asyncio.sleep(0.05)
        assert audit.pending == 0
    assert len(await stored_ids(store)) == before + n
    await audit.stop()
    assert spooled_ids(spool) == []


async def test_the_oldest_event_waits_at_most_max_delay(store: Store, spool: Path) -> None:
    app = app_on(store, spool, audit_batch_interval=30.0, audit_max_delay=0.3)
    audit: AuditLog = app.state.audit
    async with client_of(app) as c:
        await busy(c, 1.2)  # never idle (the interval is 30 s), yet stored as it goes
        assert audit.stored > 0
    await audit.stop()


@pytest.mark.parametrize("path", [
    "/AuditEvent?_count=1000&_summary=count",
    "/AuditEvent?subtype=search&_total=accurate&_count=1000",
    "/Patient?name=busy&_revinclude=AuditEvent:entity&_count=1",
])
async def test_a_reader_of_audit_events_sees_every_answered_event(store: Store, spool: Path, path: str) -> None:
    app = app_on(store, spool, audit_batch_interval=30.0, audit_max_delay=300.0)
    audit: AuditLog = app.state.audit
    async with client_of(app) as c:
        first = await c.get("/AuditEvent?_summary=count")
        assert first.status_code == 200
        await busy(c, 0.2)
        assert audit.pending > 0  # the writer would keep waiting: the server is busy
        answer = await c.get(path)
        assert answer.status_code == 200
        assert audit.stored >= audit.appended - 1  # all but the reader's own event, stored before it ran
        total = (await c.get("/AuditEvent?_summary=count")).json()["total"]
        assert total >= first.json()["total"] + audit.appended - 2
    await audit.stop()


def test_which_requests_read_audit_events() -> None:
    def access(interaction: str, path: str, type_: str | None = None, query: str = "") -> Access:
        return Access(interaction, "GET", path, type_, query=query)

    assert reads_audit_events(access("search-type", "/AuditEvent", "AuditEvent"))
    assert reads_audit_events(access("read", "/AuditEvent/1", "AuditEvent"))
    assert reads_audit_events(access("search-compartment", "/Patient/1/AuditEvent", "Patient"))
    assert reads_audit_events(access("search-compartment", "/Patient/1/*", "Patient"))
    assert reads_audit_events(access("search-type", "/Patient", "Patient", "_revinclude=AuditEvent:patient"))
    assert reads_audit_events(access("search-system", "/", None, "_type=AuditEvent"))
    assert reads_audit_events(access("transaction", "/", None))
    assert reads_audit_events(access("operation", "/Patient/1/$everything", "Patient"))
    assert reads_audit_events(access("operation", "/$export", None))
    assert not reads_audit_events(access("read", "/Patient/1", "Patient"))
    assert not reads_audit_events(access("search-type", "/Observation", "Observation", "patient=1"))


async def test_lines_are_read_back_whole_in_order_across_chunks(tmp_path: Path) -> None:
    spool = Spool(tmp_path, fsync=False)
    events = [{"resourceType": "AuditEvent", "id": str(n), "x": "y" * (n * 997 % 3_000_000)} for n in range(12)]
    segment = None
    for event in events:
        segment = spool.write(event)
    assert segment is not None and segment.written == 12
    seen: list[bytes] = []
    while segment.stored < segment.written:
        lines, offset = segment.peek(5)
        assert lines
        seen += lines
        segment.consume(len(lines), offset)
    assert [line.split(b'"id":"')[1].split(b'"')[0] for line in seen] == [str(n).encode() for n in range(12)]
    assert segment.read_at == segment.size
    spool.close()


async def test_stored_segments_are_deleted_and_the_chain_verifies(store: Store, spool: Path) -> None:
    app = app_on(store, spool, audit_batch_size=7)
    audit: AuditLog = app.state.audit
    async with client_of(app) as c:
        for _ in range(20):
            assert (await c.get("/Patient?name=segments")).status_code == 200
        assert await audit.drain()
        assert not audit.queue or audit.queue[0] is audit.spool.current
    await audit.stop()
    assert list(spool.glob("spool-*.ndjson")) == []
    report = await ledger.verify(store, None)
    assert report.ok, report.broken


async def test_a_reader_in_one_worker_sees_the_events_another_worker_holds(store: Store, spool: Path) -> None:
    """Worker processes share the spool directory: a reader of AuditEvents in one asks the others
    (the drain marker) and waits for their progress files to cover what they had spooled."""
    from tests.audit.test_spool import second_store

    other = second_store(store)
    await other.open()
    try:
        reader = app_on(store, spool, audit_batch_interval=30.0, audit_max_delay=300.0)
        holder = app_on(other, spool, audit_batch_interval=30.0, audit_max_delay=300.0)
        async with client_of(reader) as r, client_of(holder) as h:
            before = (await r.get("/AuditEvent?_summary=count")).json()["total"]
            await busy(h, 0.3)
            held = holder.state.audit.pending
            assert held > 0 and holder.state.audit.stored == 0
            total = (await r.get("/AuditEvent?_summary=count")).json()["total"]
            assert total >= before + held  # plus the reader's own first search
            assert holder.state.audit.stored >= held
        for app in (reader, holder):
            await app.state.audit.stop()
        report = await ledger.verify(store, None)
        assert report.ok, report.broken
    finally:
        await other.close()


def test_a_dead_process_segment_resumes_after_what_it_had_stored(tmp_path: Path) -> None:
    from server.audit.spool import orphans

    spool = Spool(tmp_path, fsync=False)
    for n in range(7):
        segment = spool.write({"resourceType": "AuditEvent", "id": str(n)})
    lines, offset = segment.peek(4)
    segment.consume(len(lines), offset)  # four stored, then the process dies
    spool.close()
    with open(segment.path, "ab") as f:
        f.write(b'{"resourceType":"AuditEvent","id":"torn')  # died mid-write: never answered
    [found] = list(orphans(tmp_path))
    assert (found.written, found.stored, found.read_at) == (7, 4, offset)
    rest, end = found.peek(10)
    assert [line.split(b'"id":"')[1][:1] for line in rest] == [b"4", b"5", b"6"]
    found.consume(len(rest), end)
    assert found.done()
    found.remove()
    assert list(tmp_path.iterdir()) == []

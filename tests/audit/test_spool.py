"""Never lost, on both stores: while the store refuses writes, events are spooled before
each response (fsync'd too with ``audit_fsync``) and stored when it is back; a dead process's
spool is replayed at the next start without duplicates; a full queue sheds requests with 503 +
Retry-After instead of dropping events.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from server.app import create_app
from server.audit import ledger
from server.audit.chain import link_of
from server.audit.keys import load_key
from server.audit.log import AuditLog
from server.errors import StoreUnavailable
from server.fhir.json import load_stored
from server.settings import Settings
from server.stores.base import Session, Store
from tests.conftest import BASE, database_uri


class Switch:
    """The store, except that write sessions fail while :attr:`down` (reads keep working)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.down = False

    def session(self) -> AbstractAsyncContextManager[Session]:
        if self.down:
            raise StoreUnavailable("the store is down (test)")
        return self.inner.session()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def app_on(store: Any, spool: Path, **settings: Any) -> Any:
    settings = {"audit_batch_interval": 0.002, **settings}
    return create_app(Settings(base_url=BASE, log_requests=False, audit=True, data_dir=spool.parent,
                               audit_spool_dir=spool, **settings), store=store)


def client_of(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE)


async def stored_ids(store: Store) -> list[str]:
    return [row.id async for row in ledger.events(store)]


def spooled_ids(spool: Path) -> list[str]:
    """The ids of the spooled events (an event, or the facts record it is built from: id second)."""
    records = [json.loads(line) for path in sorted(spool.glob("spool-*.ndjson"))
               for line in path.read_text().splitlines() if line.strip()]
    return [record[1] if isinstance(record, list) else record["id"] for record in records]


async def crash(audit: AuditLog) -> None:
    """What kill -9 leaves: the writer gone mid-flight, the spool files closed (locks released)."""
    assert audit._task is not None
    audit._task.cancel()
    await asyncio.gather(audit._task, return_exceptions=True)
    audit.spool.close()


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "audit"


async def test_spooled_while_the_store_is_down_then_stored(store: Store, spool: Path) -> None:
    switch = Switch(store)
    app = app_on(switch, spool)
    audit: AuditLog = app.state.audit
    before = await stored_ids(store)
    async with client_of(app) as c:
        switch.down = True
        for _ in range(5):
            assert (await c.get("/Patient?name=spooled")).status_code == 200
        # each answered request's event is on disk already, none is in the store
        assert len(spooled_ids(spool)) == 5
        await asyncio.sleep(0.05)
        assert await stored_ids(store) == before and audit.failures >= 1 and audit.pending == 5
        switch.down = False
        assert await audit.drain()
    after = await stored_ids(store)
    assert len(after) == len(before) + 5
    assert set(after) - set(before) == set(spooled_ids(spool) or after[len(before):])
    await audit.stop()
    assert spooled_ids(spool) == []  # everything stored: the spool is emptied
    report = await ledger.verify(store, load_key(spool))
    assert report.ok, report.broken


async def test_a_dead_process_spool_is_replayed_once(store: Store, spool: Path) -> None:
    switch = Switch(store)
    first = app_on(switch, spool)
    async with client_of(first) as c:
        switch.down = True
        for _ in range(4):
            assert (await c.get("/Patient?name=replayed")).status_code == 200
    lost = spooled_ids(spool)
    assert len(lost) == 4
    await crash(first.state.audit)

    second = app_on(store, spool)  # the next start on the same spool directory
    async with client_of(second) as c:
        assert (await c.get("/Patient?name=after")).status_code == 200
        assert await second.state.audit.drain()
    ids = await stored_ids(store)
    assert set(lost) <= set(ids) and len(ids) == len(set(ids))
    await second.state.audit.stop()

    # a crash after the store committed but before the segment was deleted: replay stores nothing twice
    spool.mkdir(exist_ok=True)
    lines = [json.dumps({k: v for k, v in json.loads(row.body or b"{}").items() if k not in ("meta", "extension")})
             async for row in ledger.events(store)]
    (spool / "spool-1-1-1.ndjson").write_text("".join(line + "\n" for line in lines) + '{"torn": ')
    count = len(await stored_ids(store))
    third = app_on(store, spool)
    async with client_of(third) as c:
        assert (await c.get("/Patient?name=again")).status_code == 200
        assert await third.state.audit.drain()
    ids = await stored_ids(store)
    assert len(ids) == count + 1 and len(set(ids)) == len(ids)
    await third.state.audit.stop()
    report = await ledger.verify(store, load_key(spool))
    assert report.ok, report.broken


async def test_a_full_queue_sheds_load_with_503(store: Store, spool: Path) -> None:
    switch = Switch(store)
    app = app_on(switch, spool, audit_queue_size=3)
    audit: AuditLog = app.state.audit
    async with client_of(app) as c:
        switch.down = True
        for _ in range(3):
            assert (await c.get("/Patient?name=full")).status_code == 200
        shed = await c.get("/Patient?name=full")
        assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
        assert shed.json()["resourceType"] == "OperationOutcome" and "audit" in shed.text
        assert audit.pending == 3 and len(spooled_ids(spool)) == 3  # the shed request did nothing
        switch.down = False
        assert await audit.drain()
        assert (await c.get("/Patient?name=full")).status_code == 200
        assert await audit.drain()
    await audit.stop()


async def test_the_lifespan_starts_and_stops_the_writer(fresh: Store, spool: Path) -> None:
    app = app_on(fresh, spool)  # the app's lifespan closes its store at the end: not the module's
    async with app.router.lifespan_context(app):
        assert app.state.audit._task is not None
        await app.state.audit.authentication(success=True, subject="c1")
    assert app.state.audit._task is None and not app.state.audit.pending


async def test_with_fsync_answered_events_are_synced_in_groups(store: Store, spool: Path) -> None:
    """``audit_fsync``: each response waits for an fsync of its event; concurrent requests share one."""
    app = app_on(store, spool, audit_fsync=True)
    audit: AuditLog = app.state.audit
    async with client_of(app) as c:
        answers = await asyncio.gather(*(c.get("/Patient?name=synced") for _ in range(20)))
        assert [r.status_code for r in answers] == [200] * 20
        assert len(spooled_ids(spool)) + audit.stored >= 20
        assert 1 <= audit.spool.fsyncs < 20
        assert await audit.drain()
    await audit.stop()
    assert spooled_ids(spool) == []


async def test_without_fsync_the_event_is_in_the_spool_file_before_the_answer(store: Store, spool: Path) -> None:
    switch = Switch(store)
    app = app_on(switch, spool)
    audit: AuditLog = app.state.audit
    async with client_of(app) as c:
        switch.down = True
        assert (await c.get("/Patient?name=written")).status_code == 200
        assert len(spooled_ids(spool)) == 1 and audit.spool.fsyncs == 0
        switch.down = False
        assert await audit.drain()
    await audit.stop()


def second_store(store: Store) -> Store:
    """Another connection to the same data, as a second worker process has."""
    opened: Any = store
    if store.kind == "sqlite":
        from server.stores.sqlite import SqliteStore

        return SqliteStore(opened.path.parent)
    from server.stores.mongo import MongoStore

    return MongoStore(opened._uri, database=opened._database)


async def test_two_workers_append_to_one_gapless_chain(store: Store, tmp_path: Path) -> None:
    """Two audit logs on two connections to one store (two worker processes) writing at once:
    their appends are serialised by the chain lock, so the chain stays gapless and verifies."""
    other = second_store(store)
    await other.open()
    try:
        apps = [app_on(store, tmp_path / "a"), app_on(other, tmp_path / "b", audit_batch_size=3)]
        before = len(await stored_ids(store))
        async with client_of(apps[0]) as one, client_of(apps[1]) as two:
            await asyncio.gather(*(c.get("/Patient?name=workers") for _ in range(15) for c in (one, two)))
            assert await apps[0].state.audit.drain() and await apps[1].state.audit.drain()
        assert len(await stored_ids(store)) == before + 30
        for app in apps:
            await app.state.audit.stop()
        report = await ledger.verify(store, None)
        assert report.ok, report.broken
    finally:
        await other.close()


@pytest_asyncio.fixture(params=["sqlite", "mongo"])
async def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An empty store of each kind (the chain tests below need one to themselves)."""
    if request.param == "sqlite":
        from server.stores.sqlite import SqliteStore

        made: Store = SqliteStore(tmp_path / "fresh")
    else:
        from server.stores.mongo import MongoStore

        made = MongoStore(database_uri(request.getfixturevalue("mongo_server_uri"), f"f_{uuid.uuid4().hex[:12]}"))
    await made.open()
    yield made
    await made.close()


async def test_unchained_audit_events_never_restart_the_chain(fresh: Store, tmp_path: Path) -> None:
    """AuditEvents clients wrote before auditing was on are passed over by verify; one written past
    the 405 (a transaction entry) does not restart the chain and is named by verify."""
    plain = create_app(Settings(base_url=BASE, log_requests=False, audit=False, data_dir=tmp_path), store=fresh)
    foreign = {"resourceType": "AuditEvent", "type": {"code": "x"}, "recorded": "2026-01-01T00:00:00Z",
               "source": {"observer": {"display": "other"}}, "agent": [{"requestor": True, "who": {"display": "a"}}]}
    async with client_of(plain) as c:
        assert (await c.post("/AuditEvent", json=foreign)).status_code == 201
    app = app_on(fresh, tmp_path / "audit")
    async with client_of(app) as c:
        for _ in range(3):
            assert (await c.get("/Patient")).status_code == 200
        assert await app.state.audit.drain()
        report = await ledger.verify(fresh, None)
        assert report.ok and report.count == 3, report.broken
        assert "1 AuditEvent(s) stored before the chain began were passed over" in report.notes
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": foreign, "request": {"method": "POST", "url": "AuditEvent"}}]}
        await c.post("/", json=bundle)  # refused once server/bundles applies the 405; if not, still no harm
        assert (await c.get("/Patient")).status_code == 200
        assert await app.state.audit.drain()
    sequences = [link.sequence for row in [r async for r in ledger.events(fresh)]
                 if row.body and (link := link_of(load_stored(row.body))) is not None]
    assert sequences == list(range(1, len(sequences) + 1)) and len(sequences) == 5
    await app.state.audit.stop()

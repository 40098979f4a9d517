"""The journal of MongoDB write sessions where transactions are not isolated (nx-27017, standalone
``mongod``): all-or-nothing across failures and crashes, nothing visible before the commit point,
read-your-writes inside the session, compare-and-set against concurrent plain writers, and
recovery at ``open()`` of journals left by a crashed process (server/stores/mongo/journal.py).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio

from server.errors import Contention, StoreUnavailable
from server.search.model import Entry, FieldTest, Match, Query
from server.stores.base import HistoryQuery, Version, VersionConflict, Write
from server.stores.mongo import MongoStore, recovery
from server.stores.mongo.journal import JournalSession
from server.stores.mongo.schema import JOURNAL, PENDING, RESOURCES

pytestmark = pytest.mark.mongo

_clock = itertools.count(1_800_000_000_000_000, 1_000)


@pytest_asyncio.fixture(scope="module")
async def database(mongo_server_uri: str) -> AsyncIterator[tuple[str, str]]:
    name = f"t_journal_{uuid.uuid4().hex[:8]}"
    yield mongo_server_uri, name
    reader = MongoStore(mongo_server_uri, database=name)
    await reader.open()
    await reader.db.client.drop_database(name)
    await reader.close()


@pytest_asyncio.fixture(scope="module")
async def store(database: tuple[str, str]) -> AsyncIterator[MongoStore]:
    opened = MongoStore(database[0], database=database[1], use_transactions=False)
    await opened.open()
    yield opened
    await opened.close()


@pytest_asyncio.fixture(scope="module")
async def other(database: tuple[str, str]) -> AsyncIterator[MongoStore]:
    """A second client of the same database (another node)."""
    opened = MongoStore(database[0], database=database[1], use_transactions=False)
    await opened.open()
    yield opened
    await opened.close()


def version(type_: str, id_: str, number: int = 1, *, deleted: bool = False, **content: object) -> Version:
    body = None
    if not deleted:
        body = orjson.dumps({"resourceType": type_, "id": id_, "meta": {"versionId": str(number)}, **content})
    return Version(type_, id_, number, next(_clock), deleted, "DELETE" if deleted else "PUT", body)


def tag(code: str) -> list[Entry]:
    return [Entry("token", "tag", ("urn:t", code, None))]


def by_tag(code: str) -> Match:
    return Match("token", "tag", (FieldTest("code", "eq", code),))


def kind() -> str:
    return f"K{uuid.uuid4().hex[:8]}"


async def put(store: MongoStore, v: Version, expected: int | None = None, code: str = "x") -> Version:
    async with store.session() as s:
        await s.write(Write(v, tag(code), expected))
    return v


async def clean(store: MongoStore) -> None:
    """Nothing claimed, no journal left, no placeholder."""
    assert await store.db[RESOURCES].count_documents({PENDING: {"$exists": True}}) == 0
    assert await store.db[RESOURCES].count_documents({"version": 0}) == 0
    assert await store.db[JOURNAL].count_documents({}) == 0


async def versions(store: MongoStore, type_: str, id_: str) -> list[int]:
    return sorted(v.version for v in await store.history(HistoryQuery(type_, id_)))


def dead_owner() -> recovery.Owner:
    """The identity of a process of this host that has ended (as after ``kill -9``)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    me = recovery.Owner.this_process()
    return recovery.Owner(uuid.uuid4().hex, me.host, me.ns, proc.pid, "0")


class Boom(Exception):
    pass


# --- all or nothing ---------------------------------------------------------------------------


async def test_a_session_failing_midway_leaves_nothing(store: MongoStore) -> None:
    k = kind()
    kept = await put(store, version(k, "kept"))
    with pytest.raises(Boom):
        async with store.session() as s:
            for i in range(5):
                await s.write(Write(version(k, f"new{i}"), tag("new"), None))
            await s.write(Write(version(k, "kept", 2), tag("new"), 1))
            raise Boom
    assert await store.read(k, "kept") == kept
    assert [await store.read(k, f"new{i}") for i in range(5)] == [None] * 5
    assert (await store.search(Query((k,), by_tag("new")))).rows == []
    await clean(store)
    # the version the rolled-back session would have used is the next one written: no gap
    await put(store, version(k, "kept", 2), 1)
    assert await versions(store, k, "kept") == [1, 2]


async def test_readers_see_nothing_of_a_transaction_before_it_commits(store: MongoStore, other: MongoStore) -> None:
    k = kind()
    await put(store, version(k, "old"), code="before")
    async with store.session() as s:
        await s.write(Write(version(k, "a"), tag("t"), None))
        await s.write(Write(version(k, "b"), tag("t"), None))
        await s.write(Write(version(k, "old", 2), tag("t"), 1))
        await s.find(k, by_tag("t"), 10)  # flushes the journal: the entries are durable now
        assert await store.db[JOURNAL].count_documents({"txn": {"$exists": True}}) == 3
        for reader in (store, other):
            assert await reader.read(k, "a") is None
            assert await reader.vread(k, "a", 1) is None
            assert (await reader.read(k, "old") or version(k, "x", 9)).version == 1
            assert (await reader.search(Query((k,), by_tag("t")))).rows == []
            assert [v.version for v in await reader.history(HistoryQuery(k))] == [1]
            assert (await reader.stats())["resources"].get(k) == 1
    for reader in (store, other):
        assert sorted(r.id for r in (await reader.search(Query((k,), by_tag("t")))).rows) == ["a", "b", "old"]
    await clean(store)


async def test_the_session_reads_and_finds_its_own_buffered_writes(store: MongoStore) -> None:
    k = kind()
    await put(store, version(k, "c1"), code="same")
    await put(store, version(k, "c2"), code="same")
    async with store.session() as s:
        a = version(k, "a")
        await s.write(Write(a, tag("same"), None))
        assert await s.read(k, "a") == a
        await s.write(Write(version(k, "c2", 2), tag("other"), 1))  # no longer matches
        await s.write(Write(version(k, "a", 2, deleted=True), [], 1))
        assert (await s.read(k, "a") or a).deleted
        await s.write(Write(version(k, "b"), tag("same"), None))
        assert await s.find(k, by_tag("same"), 10) == ["b", "c1"]
        assert await s.find(k, by_tag("same"), 1) == ["b"]
        assert await s.find(k, by_tag("other"), 10) == ["c2"]
    assert await versions(store, k, "a") == [1, 2]
    assert (await store.read(k, "a") or a).deleted
    await clean(store)


# --- concurrent writers -----------------------------------------------------------------------


async def test_a_plain_write_cannot_slip_under_a_claim(store: MongoStore, other: MongoStore) -> None:
    k = kind()
    await put(store, version(k, "x"))
    async with store.session() as s:
        assert isinstance(s, JournalSession)
        await s.write(Write(version(k, "y"), tag("t"), None))
        await s.write(Write(version(k, "x", 2), tag("t"), 1))
        await s.prepare()  # claimed, as between the checks and the apply of a commit
        for reader in (store, other):
            assert await reader.read(k, "y") is None
            assert (await reader.read(k, "x") or version(k, "x", 9)).version == 1
            assert (await reader.search(Query((k,), by_tag("t")))).rows == []
        with pytest.raises(VersionConflict):  # x is claimed: the other node's compare-and-set fails
            await put(other, version(k, "x", 2), 1)
        with pytest.raises(VersionConflict):  # so is y, which does not exist yet
            await put(other, version(k, "y"))
        with pytest.raises((VersionConflict, Contention)):  # and another transaction cannot claim them
            async with other.session() as t:
                await t.write(Write(version(k, "z"), tag("t"), None))
                await t.write(Write(version(k, "x", 2), tag("t"), 1))
    assert await other.read(k, "z") is None
    assert await versions(store, k, "x") == [1, 2]
    assert (await store.read(k, "y")) is not None
    await put(other, version(k, "x", 3), 2)
    assert await versions(store, k, "x") == [1, 2, 3]
    await clean(store)


async def test_a_write_between_read_and_commit_fails_the_transaction(store: MongoStore, other: MongoStore) -> None:
    k = kind()
    await put(store, version(k, "x"))
    await put(store, version(k, "w"))
    with pytest.raises(Contention):
        async with store.session() as s:
            current = await s.read(k, "x")
            assert current is not None
            await s.write(Write(version(k, "x", 2), tag("t"), current.version))
            await s.write(Write(version(k, "w", 2), tag("t"), 1))
            await s.write(Write(version(k, "y"), tag("t"), None))
            await put(other, version(k, "x", 2), 1)  # a plain writer gets there first
    assert await store.read(k, "y") is None
    assert await versions(store, k, "x") == [1, 2]
    assert await versions(store, k, "w") == [1]
    await clean(store)
    await put(other, version(k, "w", 2), 1)  # nothing left claimed


async def test_a_lone_write_takes_no_journal(store: MongoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(self: JournalSession) -> None:
        raise AssertionError("a one-write session must not start a journal")

    monkeypatch.setattr(JournalSession, "_begin", refuse)
    k = kind()
    await put(store, version(k, "one"))
    await put(store, version(k, "one", 2), 1)
    assert await versions(store, k, "one") == [1, 2]


# --- crashes ----------------------------------------------------------------------------------


async def abandoned_session(store: MongoStore, k: str, n: int, owner: recovery.Owner) -> JournalSession:
    """A session that wrote ``n`` resources and made its journal durable, then was never ended
    (what a ``kill -9`` leaves behind)."""
    s = JournalSession(store.db, owner)
    await s.write(Write(version(k, "old", 2), tag("t"), 1))
    for i in range(n):
        await s.write(Write(version(k, f"r{i}"), tag("t"), None))
    await s.prepare()
    return s


async def test_an_uncommitted_journal_of_a_dead_process_is_rolled_back_at_open(
    store: MongoStore, database: tuple[str, str]
) -> None:
    k = kind()
    await put(store, version(k, "old"))
    await abandoned_session(store, k, 5, dead_owner())
    assert await store.db[RESOURCES].count_documents({PENDING: {"$exists": True}}) == 6
    restarted = MongoStore(database[0], database=database[1], use_transactions=False)
    await restarted.open()
    try:
        await clean(restarted)
        assert [await restarted.read(k, f"r{i}") for i in range(5)] == [None] * 5
        assert await versions(restarted, k, "old") == [1]
        await put(restarted, version(k, "old", 2), 1)  # writable again, next version without a gap
        assert await versions(restarted, k, "old") == [1, 2]
    finally:
        await restarted.close()


async def test_a_live_owners_journal_is_left_alone_until_its_lease_passes(store: MongoStore, other: MongoStore) -> None:
    k = kind()
    await put(store, version(k, "old"))
    s = await abandoned_session(store, k, 3, store.owner)
    assert await recovery.recover(other.db, other.owner) == {"completed": 0, "rolled_back": 0}
    assert await store.db[RESOURCES].count_documents({PENDING: {"$exists": True}}) == 4
    await store.db[JOURNAL].update_one({"state": {"$exists": True}}, {"$set": {"expires": 0}})
    assert await recovery.recover(other.db, other.owner) == {"completed": 0, "rolled_back": 1}
    await clean(store)
    with pytest.raises(Exception, match="rolled back"):  # the session cannot commit afterwards
        await s.commit()
    assert await store.read(k, "r0") is None


async def test_a_committed_journal_half_applied_is_completed_at_open(
    store: MongoStore, database: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    k = kind()
    await put(store, version(k, "old"))
    real = recovery.insert_history
    calls = 0

    async def crash_after_first_batch(db: Any, docs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            from pymongo.errors import AutoReconnect

            raise AutoReconnect("connection lost (injected)")
        await real(db, docs)

    monkeypatch.setattr(recovery, "BATCH", 4)
    monkeypatch.setattr(recovery, "insert_history", crash_after_first_batch)
    with pytest.raises(StoreUnavailable, match="committed"):
        async with store.session() as s:
            await s.write(Write(version(k, "old", 2), tag("t"), 1))
            for i in range(9):
                await s.write(Write(version(k, f"r{i}"), tag("t"), None))
    monkeypatch.setattr(recovery, "insert_history", real)
    assert 0 < len((await store.search(Query((k,), by_tag("t")))).rows) < 10  # half applied
    # the owner is this (live) process: simulate its death by letting the lease pass
    await store.db[JOURNAL].update_one({"state": "committed"}, {"$set": {"expires": 0}})
    restarted = MongoStore(database[0], database=database[1], use_transactions=False)
    await restarted.open()
    try:
        await clean(restarted)
        assert len((await restarted.search(Query((k,), by_tag("t")))).rows) == 10
        assert await versions(restarted, k, "old") == [1, 2]
        for i in range(9):
            assert await versions(restarted, k, f"r{i}") == [1]
    finally:
        await restarted.close()


async def test_recovery_is_idempotent(store: MongoStore, other: MongoStore) -> None:
    k = kind()
    await put(store, version(k, "old"))
    s = await abandoned_session(store, k, 3, dead_owner())
    assert s._txn is not None
    await store.db[JOURNAL].update_one({"_id": s._txn}, {"$set": {"state": "committed", "n": 4}})
    entries = [e async for e in store.db[JOURNAL].find({"txn": s._txn})]
    await recovery.apply(store.db, s._txn, entries[:2])  # applied partly, by a recoverer that then died
    await recovery.apply(store.db, s._txn, entries[:1])
    assert await recovery.recover(other.db, other.owner) == {"completed": 1, "rolled_back": 0}
    assert await recovery.recover(other.db, other.owner) == {"completed": 0, "rolled_back": 0}
    await clean(store)
    assert len((await store.search(Query((k,), by_tag("t")))).rows) == 4
    assert await versions(store, k, "old") == [1, 2]


async def test_large_transactions_go_in_batches(store: MongoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recovery, "BATCH", 3)
    k = kind()
    await put(store, version(k, "old"))
    async with store.session() as s:
        await s.write(Write(version(k, "old", 2), tag("t"), 1))
        for i in range(7):
            await s.write(Write(version(k, f"r{i}"), tag("t"), None))
    assert len((await store.search(Query((k,), by_tag("t")))).rows) == 8
    await clean(store)

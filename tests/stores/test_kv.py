"""Key-value records (``Store.kv_*``) on both stores: clients, users, token ids and revocations live
there, and ``create_only`` with an expiry is the replay check of client assertions and codes, so it
must let exactly one of many racing writers through, across processes too."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from server.stores import kv
from server.stores.base import Store
from server.stores.mongo import records
from server.stores.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]


def space() -> str:
    """A space no other test uses (the store fixture is shared by the module)."""
    return f"t{uuid.uuid4().hex[:10]}"


async def test_put_get_overwrite_delete(store: Store) -> None:
    s = space()
    assert await store.kv_get(s, "a") is None
    assert await store.kv_put(s, "a", {"n": 1}) is True
    assert await store.kv_get(s, "a") == {"n": 1}
    assert await store.kv_put(s, "a", {"n": 2}) is True  # plain put overwrites
    assert await store.kv_get(s, "a") == {"n": 2}
    assert await store.kv_put(s, "a", {"n": 3}, create_only=True) is False  # create_only does not
    assert await store.kv_get(s, "a") == {"n": 2}
    assert await store.kv_delete(s, "a") is True
    assert await store.kv_get(s, "a") is None
    assert await store.kv_delete(s, "a") is False
    assert await store.kv_put(s, "a", {"n": 4}, create_only=True) is True
    assert await store.kv_get(s, "a") == {"n": 4}


async def test_spaces_are_separate(store: Store) -> None:
    s = space()
    await store.kv_put(s, "k", {"in": "s"})
    await store.kv_put(s + "2", "k", {"in": "s2"})
    await store.kv_put(s + "2", "j", {"in": "s2"})
    assert await store.kv_get(s, "k") == {"in": "s"}
    assert await store.kv_list(s) == [("k", {"in": "s"})]
    assert [k for k, _ in await store.kv_list(s + "2")] == ["j", "k"]
    assert await store.kv_list(space()) == []
    with pytest.raises(ValueError):
        await store.kv_get("bad\x1fspace", "k")


async def test_list_is_sorted_by_key_with_unicode(store: Store) -> None:
    s = space()
    keys = ["b", "a", "Z", "é", "中文", "😀", "a b", "a/b", "10", "9", "医院-12440000455858436X"]
    for n, key in enumerate(keys):
        await store.kv_put(s, key, {"n": n, "key": key})
    listed = await store.kv_list(s)
    assert [k for k, _ in listed] == sorted(keys)  # code-point order
    assert all(value == {"n": keys.index(k), "key": k} for k, value in listed)


async def test_values_round_trip_exactly(store: Store) -> None:
    s = space()
    value: dict[str, Any] = {
        "name": "张三 Zhāng Sān 😀", "z": 1, "a": [1, 2.5, None, True, {"$ne": 1, "x.y": "dots and dollars"}],
        "big": 2**62, "neg": -(2**63), "empty": {}, "nested": {"jwks": {"keys": [{"kty": "RSA", "n": "AQAB" * 64}]}},
    }
    await store.kv_put(s, "键", value)
    got = await store.kv_get(s, "键")
    assert got == value
    assert got is not None and list(got) == list(value)  # key order kept
    assert await store.kv_list(s) == [("键", value)]


async def test_expired_records_are_absent(store: Store) -> None:
    s = space()
    now = kv.now_us()
    assert await store.kv_put(s, "old", {"v": 1}, expires=now - 1_000_000) is True
    assert await store.kv_put(s, "live", {"v": 2}, expires=now + 60_000_000) is True
    assert await store.kv_put(s, "forever", {"v": 3}) is True
    assert await store.kv_get(s, "old") is None
    assert await store.kv_get(s, "live") == {"v": 2}
    assert [k for k, _ in await store.kv_list(s)] == ["forever", "live"]
    assert await store.kv_delete(s, "old") is False  # already absent
    assert await store.kv_put(s, "old", {"v": 4}, expires=now - 1) is True
    assert await store.kv_put(s, "old", {"v": 5}, create_only=True, expires=now + 60_000_000) is True
    assert await store.kv_get(s, "old") == {"v": 5}
    assert await store.kv_put(s, "old", {"v": 6}, create_only=True) is False
    assert await store.kv_put(s, "forever", {"v": 7}, create_only=True) is False  # never expires
    assert await store.kv_put(s, "live", {"v": 8}, create_only=True) is False
    assert await store.kv_get(s, "live") == {"v": 2}


async def test_a_record_expires_while_stored(store: Store) -> None:
    s = space()
    assert await store.kv_put(s, "jti", {"v": 1}, create_only=True, expires=kv.now_us() + 300_000) is True
    assert await store.kv_put(s, "jti", {"v": 2}, create_only=True, expires=kv.now_us() + 300_000) is False
    assert await store.kv_get(s, "jti") == {"v": 1}
    await asyncio.sleep(0.4)
    assert await store.kv_get(s, "jti") is None
    assert await store.kv_list(s) == []
    assert await store.kv_put(s, "jti", {"v": 3}, create_only=True, expires=kv.now_us() + 60_000_000) is True
    assert await store.kv_get(s, "jti") == {"v": 3}


@pytest.mark.parametrize("over", ["nothing", "an expired record"])
async def test_racing_create_only_lets_exactly_one_through(store: Store, over: str) -> None:
    s = space()
    if over != "nothing":
        await store.kv_put(s, "k", {"w": -1}, expires=kv.now_us() - 1)
    exp = kv.now_us() + 60_000_000
    won = await asyncio.gather(*(store.kv_put(s, "k", {"w": n}, create_only=True, expires=exp) for n in range(50)))
    assert won.count(True) == 1
    assert await store.kv_get(s, "k") == {"w": won.index(True)}


async def second_store(store: Store) -> Store:
    """Another store instance on the same data (another connection pool / another connection)."""
    if isinstance(store, SqliteStore):
        other: Store = SqliteStore(store.path.parent)
    else:
        from server.stores.mongo import MongoStore

        assert isinstance(store, MongoStore)
        other = MongoStore(store._uri, database=store.db.name)
    await other.open()
    return other


async def test_create_only_across_two_store_instances(store: Store) -> None:
    s = space()
    other = await second_store(store)
    try:
        exp = kv.now_us() + 60_000_000
        keys = [f"k{n}" for n in range(40)]
        for key in keys[::2]:  # half of them over expired records
            await store.kv_put(s, key, {"old": True}, expires=kv.now_us() - 1)
        mine = [store.kv_put(s, k, {"by": "a"}, create_only=True, expires=exp) for k in keys]
        theirs = [other.kv_put(s, k, {"by": "b"}, create_only=True, expires=exp) for k in keys]
        results = await asyncio.gather(*(x for pair in zip(mine, theirs, strict=True) for x in pair))
        for n, key in enumerate(keys):
            a, b = results[2 * n], results[2 * n + 1]
            assert a != b, key
            assert await other.kv_get(s, key) == {"by": "a" if a else "b"}
    finally:
        await other.close()


RACER = textwrap.dedent("""
    import asyncio, sys
    from server.stores.sqlite import SqliteStore

    async def main(directory, space, name, n):
        store = SqliteStore(directory)
        await store.open()
        try:
            print("ready", flush=True)
            sys.stdin.readline()
            won = await asyncio.gather(*(store.kv_put(space, f"k{i}", {"by": name}, create_only=True,
                                                      expires=int(sys.argv[5])) for i in range(n)))
            print(" ".join(f"k{i}" for i, w in enumerate(won) if w), flush=True)
        finally:
            await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
""")


async def test_sqlite_create_only_across_processes(tmp_path: Path) -> None:
    """Two processes (as ``yidang serve --workers`` runs) sharing one data directory."""
    store = SqliteStore(tmp_path)
    await store.open()
    n, s = 200, "jti"
    for i in range(0, n, 3):  # a third over expired records
        await store.kv_put(s, f"k{i}", {"old": True}, expires=kv.now_us() - 1)
    await store.close()
    exp = str(kv.now_us() + 60_000_000)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path), s, name, str(n), exp], cwd=ROOT, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for name in ("p1", "p2")]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:  # start both at once
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs)
    won = [set(out.split()) for out in outputs]
    assert won[0].isdisjoint(won[1])
    assert won[0] | won[1] == {f"k{i}" for i in range(n)}
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        for i in range(n):
            who = "p1" if f"k{i}" in won[0] else "p2"
            assert await store.kv_get(s, f"k{i}") == {"by": who}
    finally:
        await store.close()


async def test_sqlite_data_directory_without_the_kv_table_keeps_working(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.open()
    await store.close()
    with sqlite3.connect(tmp_path / "yidang.db") as conn:  # as written before key-value records existed
        conn.execute("DROP TABLE kv")
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        assert await store.kv_put("clients", "c1", {"role": "institution"}, create_only=True) is True
        assert await store.kv_list("clients") == [("c1", {"role": "institution"})]
    finally:
        await store.close()


async def test_sqlite_writes_remove_expired_rows(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        for i in range(5):
            await store.kv_put("revoked", f"t{i}", {}, expires=kv.now_us() - 1)
        await store.kv_put("revoked", "live", {}, expires=kv.now_us() + 60_000_000)
        with sqlite3.connect(tmp_path / "yidang.db") as conn:
            assert [r[0] for r in conn.execute("SELECT key FROM kv")] == ["live"]
    finally:
        await store.close()


async def test_mongo_expired_records_are_purged(store: Store) -> None:
    if store.kind != "mongo":
        pytest.skip("MongoDB only")
    from server.stores.mongo import MongoStore

    assert isinstance(store, MongoStore)
    s = space()
    await store.kv_put(s, "gone", {}, expires=kv.now_us() - 1)
    await store.kv_put(s, "kept", {}, expires=kv.now_us() + 60_000_000)
    await store.kv_put(s, "forever", {})
    assert await records.purge(store.db) >= 1
    left = [d["_id"] async for d in store.db[records.KV].find({})]
    assert records.record_id(s, "gone") not in left
    assert {records.record_id(s, "kept"), records.record_id(s, "forever")} <= set(left)
    # an expired record found by a read is removed too
    await store.kv_put(s, "read", {}, expires=kv.now_us() - 1)
    assert await store.kv_get(s, "read") is None
    assert await store.db[records.KV].find_one({"_id": records.record_id(s, "read")}) is None


def test_mongo_ttl_date_never_precedes_the_expiry() -> None:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    for exp in (1_700_000_000_000_000, 1_700_000_000_000_001, 1_700_000_000_000_999):
        at = records.expires_at(exp)
        assert (at - epoch) // dt.timedelta(microseconds=1) >= exp
        assert at.microsecond % 1000 == 0  # BSON dates hold milliseconds
    doc = records.document("jti", "x", {"a": 1}, 1_700_000_000_000_001)
    assert doc["exp"] == 1_700_000_000_000_001 and doc["_id"] == "jti\x1fx"
    assert "exp" not in records.document("clients", "c", {}, None)

"""Key-value records (:mod:`server.stores.kv`) in the ``kv`` collection.

Document: ``{_id: "<space>\\x1f<key>", value: <the record's JSON text>, exp: <µs since 1970>,
expires_at: <the expiry as a Date, rounded up to the millisecond>}``; ``exp`` and ``expires_at``
are absent when the record does not expire. The value is kept as JSON text (orjson's), not as a
sub-document, so any JSON object round-trips exactly (keys with ``$`` or ``.``, key order, integers);
not as BSON binary, which nx-27017 cannot store.

Every operation is one single-document command, atomic on its own (no transaction, no journal).
``create_only`` is ``replace_one({_id, exp < now}, doc, upsert=True)``: with no document it
inserts; over an expired one it replaces it (the filter is evaluated atomically with the write, so
of two racing replacers only one matches); over a live one the filter misses, the upsert tries to
insert and the unique ``_id`` refuses it with a duplicate-key error: ``False``. A live record
without ``exp`` never matches ``exp < now`` (a range on a number does not match a missing field).

Expiry: reads check ``exp`` themselves, so an expired record is absent at once on every server.
MongoDB's TTL monitor removes it later through the TTL index on ``expires_at`` (about once a
minute); where there is none (nx-27017 ignores TTL), :func:`purge`, run by writes at most every
:data:`PURGE_INTERVAL_S`, deletes expired records, and ``get`` deletes one it finds expired.

Sharding: ``kv`` stays unsharded (on the database's primary shard), so its ``_id`` index is one
unique index for every mongos; it is small (clients, users and unexpired token ids).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from server.stores import kv

KV = "kv"
PURGE_INTERVAL_S = 60.0

Db = AsyncDatabase[dict[str, Any]]


def record_id(space: str, key: str) -> str:
    return f"{kv.check_space(space)}{kv.SEPARATOR}{key}"


def expires_at(exp: int) -> dt.datetime:
    """``exp`` (µs) as a BSON Date, rounded *up* to the millisecond: TTL never removes a record early."""
    ms = -(-exp // 1000)
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)


def document(space: str, key: str, value: dict[str, Any], expires: int | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": record_id(space, key), "value": kv.encode(value).decode()}
    if expires is not None:
        doc["exp"] = expires
        doc["expires_at"] = expires_at(expires)
    return doc


def _live(doc: dict[str, Any], now: int) -> bool:
    exp = doc.get("exp")
    return kv.live(None if exp is None else int(exp), now)


async def get(db: Db, space: str, key: str) -> dict[str, Any] | None:
    _id = record_id(space, key)
    doc = await db[KV].find_one({"_id": {"$eq": _id}})
    if doc is None:
        return None
    if not _live(doc, kv.now_us()):
        # lazily removed; a concurrent put that replaced it has another exp, so it is not touched
        await db[KV].delete_one({"_id": {"$eq": _id}, "exp": {"$eq": doc["exp"]}})
        return None
    return kv.decode(str(doc["value"]).encode())


async def put(db: Db, space: str, key: str, value: dict[str, Any], *, create_only: bool,
              expires: int | None) -> bool:
    doc = document(space, key, value, expires)
    if not create_only:
        await db[KV].replace_one({"_id": {"$eq": doc["_id"]}}, doc, upsert=True)
        return True
    try:
        await db[KV].replace_one({"_id": {"$eq": doc["_id"]}, "exp": {"$lt": kv.now_us()}}, doc, upsert=True)
    except DuplicateKeyError:  # a live record is there (or a racing writer created one first)
        return False
    return True


async def delete(db: Db, space: str, key: str) -> bool:
    """False also when the record had expired (it was already absent to every reader)."""
    doc = await db[KV].find_one_and_delete({"_id": {"$eq": record_id(space, key)}})
    return doc is not None and _live(doc, kv.now_us())


async def list_space(db: Db, space: str) -> list[tuple[str, dict[str, Any]]]:
    """By an ``_id`` range (the space's prefix), in ``_id`` order: key order (UTF-8 bytes, which is
    code-point order, as in SQLite and Python)."""
    prefix = record_id(space, "")
    upper = prefix[:-1] + chr(ord(kv.SEPARATOR) + 1)
    now = kv.now_us()
    out: list[tuple[str, dict[str, Any]]] = []
    async for doc in db[KV].find({"_id": {"$gte": prefix, "$lt": upper}}).sort("_id", 1):
        if _live(doc, now):
            out.append((str(doc["_id"])[len(prefix):], kv.decode(str(doc["value"]).encode())))
    out.sort(key=lambda item: item[0])  # cheap, and exact on a server whose string order differs
    return out


class Purger:
    """Deletes expired records at most every :data:`PURGE_INTERVAL_S` (called by writes)."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    async def maybe(self, db: Db) -> None:
        if time.monotonic() - self._last < PURGE_INTERVAL_S:
            return
        self._last = time.monotonic()
        await purge(db)


async def purge(db: Db) -> int:
    result = await db[KV].delete_many({"exp": {"$lt": kv.now_us()}})
    return int(result.deleted_count)

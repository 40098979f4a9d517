"""Journal recovery: finish every committed journalled transaction, roll back every other one.

The journal itself (what a transaction writes where, and when it is committed) is described in
:mod:`.journal`; this module holds the steps the owning session and any recovering node share, so
both run exactly the same, idempotent code:

* :func:`apply` — replace each claimed ``resources`` document (filter ``pending: <txn>``, so a
  document already applied, or changed by a later writer after it was applied, is left alone)
  and insert the history documents (a duplicate ``_id`` is the same version from an interrupted
  earlier attempt, and is replaced);
* :func:`abort` — delete this transaction's placeholders, unset its claims, then :func:`finish`;
* :func:`finish` — delete the entries, then the header (last, so a journal whose header is gone
  has nothing left anywhere).

:func:`recover` runs at ``MongoStore.open`` and every :data:`RECOVERY_INTERVAL_S` while the store is
open (:func:`sweep`). It takes over a journal whose owner is gone — its lease (``expires``) has
passed, or, immediately, it was written on this host (same hostname and pid namespace) by a process
that no longer exists (pid + start time from ``/proc``; the restart after a ``kill -9``) — with a
compare-and-set on ``owner``/``expires``, so exactly one node recovers it. Committed journals are
applied and removed; open or aborting ones are rolled back. Each recovery is logged (WARNING).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from pymongo import ReplaceOne
from pymongo.errors import BulkWriteError, PyMongoError

from . import reads
from .schema import HISTORY, JOURNAL, PENDING, RESOURCES, version_key

log = logging.getLogger(__name__)

LEASE_S = 30.0
"""A journal outlives its crashed owner by at most this long (elsewhere than on the owner's host)."""
RECOVERY_INTERVAL_S = 10.0
BATCH = 500
"""Documents per bulk write while applying."""
STATES = ("open", "committed", "aborting")
ENTRY_FIELDS = frozenset({"_id", "txn", "key", "hist"})
DUPLICATE_KEY = 11000
HISTORY_FIELDS = ("type", "id", "version", "lu", "deleted", "method", "res", "dec")

Renew = Callable[[], Awaitable[None]]


def now_ms() -> int:
    return int(time.time() * 1000)


def _proc_start(pid: object) -> str | None:
    """Start time (clock ticks since boot) of ``pid`` from ``/proc``, None when it does not exist."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as f:  # type: ignore[call-overload]
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, ValueError, IndexError, TypeError):
        return None


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class Owner:
    """Who runs a journalled transaction: one per open store, recognisable after a crash."""

    id: str
    host: str
    ns: str
    pid: int
    start: str | None

    @classmethod
    def this_process(cls) -> Owner:
        pid = os.getpid()
        return cls(uuid4().hex, socket.gethostname(), _pid_namespace(), pid, _proc_start(pid))

    def fields(self) -> dict[str, Any]:
        return {"owner": self.id, "host": self.host, "ns": self.ns, "pid": self.pid, "start": self.start}


def abandoned(header: Mapping[str, Any], me: Owner, now: int) -> bool:
    """Whether ``header``'s owner is gone: its lease has passed, or it ran on this host in a
    process that has ended (a live process elsewhere is only ever judged by its lease)."""
    if int(header.get("expires", 0)) < now:
        return True
    if header.get("owner") == me.id or header.get("host") != me.host or not me.ns or header.get("ns") != me.ns:
        return False
    if me.start is None:  # no /proc here: cannot tell
        return False
    return _proc_start(header.get("pid")) != header.get("start")


# --- documents --------------------------------------------------------------------------------


def entry_document(txn: str, key: str, current: dict[str, Any], earlier: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A journal entry: the new current document plus where it belongs."""
    doc = {**current, "_id": f"{txn} {key}", "txn": txn, "key": key}
    if earlier:
        doc["hist"] = list(earlier)
    return doc


def resource_of(entry: Mapping[str, Any]) -> dict[str, Any]:
    doc = {"_id": entry["key"]}
    doc.update((k, v) for k, v in entry.items() if k not in ENTRY_FIELDS)
    return doc


def history_of(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every version the entry's transaction wrote for its resource, oldest first."""
    last = {"_id": version_key(entry["type"], entry["id"], entry["version"]), "rid": entry["key"]}
    last.update((f, entry[f]) for f in HISTORY_FIELDS if f in entry)  # "dec" only when there is one
    return [*entry.get("hist", ()), last]


def placeholder_document(type_: str, id_: str, key: str, txn: str) -> dict[str, Any]:
    """Holds the ``_id`` of a resource a transaction creates; reads treat version 0 as absent."""
    return {"_id": key, "type": type_, "id": id_, "version": 0, "lu": 0, "deleted": True, "method": "DELETE",
            "res": None, PENDING: txn}


# --- steps ------------------------------------------------------------------------------------


def _batches(items: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


async def insert_history(db: reads.Db, docs: Sequence[dict[str, Any]]) -> None:
    """Insert history documents; one already there is the same version, rewritten."""
    if not docs:
        return
    try:
        await db[HISTORY].insert_many(list(docs), ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        for e in errors:
            doc = docs[int(e["index"])]
            await db[HISTORY].replace_one({"_id": doc["_id"]}, doc)


async def apply(db: reads.Db, txn: str, entries: Sequence[dict[str, Any]], renew: Renew | None = None) -> None:
    """Write a committed transaction's entries into ``resources`` and ``history`` (idempotent)."""
    for chunk in _batches(entries):
        ops = [ReplaceOne({"_id": e["key"], PENDING: {"$eq": txn}}, resource_of(e)) for e in chunk]
        await db[RESOURCES].bulk_write(ops, ordered=False)
        await insert_history(db, [h for e in chunk for h in history_of(e)])
        if renew is not None:
            await renew()


async def abort(db: reads.Db, txn: str) -> None:
    """Release everything an uncommitted transaction claimed (it wrote nothing else)."""
    await db[RESOURCES].delete_many({PENDING: {"$eq": txn}, "version": {"$eq": 0}})
    await db[RESOURCES].update_many({PENDING: {"$eq": txn}}, {"$unset": {PENDING: ""}})
    await finish(db, txn)


async def finish(db: reads.Db, txn: str) -> None:
    await db[JOURNAL].delete_many({"txn": {"$eq": txn}})
    await db[JOURNAL].delete_one({"_id": txn})


# --- recovery ---------------------------------------------------------------------------------


async def recover(db: reads.Db, me: Owner) -> dict[str, int]:
    """Finish or roll back every abandoned journal; returns how many of each (logged)."""
    journal = db[JOURNAL]
    done = {"completed": 0, "rolled_back": 0}
    now = now_ms()
    headers = [h async for h in journal.find({"state": {"$in": list(STATES)}})]
    for h in headers:
        if not abandoned(h, me, now):
            continue
        txn = h["_id"]
        taken = await journal.find_one_and_update(
            {"_id": txn, "owner": h.get("owner"), "expires": h.get("expires")},
            {"$set": {**me.fields(), "expires": now_ms() + int(LEASE_S * 1000)}},
        )
        if taken is None:
            continue  # another node got there first

        async def renew(txn: str = txn) -> None:
            lease = {"$set": {"expires": now_ms() + int(LEASE_S * 1000)}}
            await journal.update_one({"_id": txn, "owner": me.id}, lease)

        if h["state"] == "committed":
            entries = [e async for e in journal.find({"txn": {"$eq": txn}})]
            if len(entries) != h.get("n"):
                log.error("journal %s: committed with %s entries, %d found", txn, h.get("n"), len(entries))
            await apply(db, txn, entries, renew)
            await finish(db, txn)
            done["completed"] += 1
            log.warning("recovery: completed committed transaction %s of %s pid %s (%d resources)",
                        txn, h.get("host"), h.get("pid"), len(entries))
        else:
            await abort(db, txn)
            done["rolled_back"] += 1
            log.warning("recovery: rolled back %s transaction %s of %s pid %s (nothing of it was visible)",
                        h["state"], txn, h.get("host"), h.get("pid"))
    for txn in await db[RESOURCES].distinct(PENDING):
        if isinstance(txn, str) and await journal.find_one({"_id": txn}, {"_id": 1}) is None:
            # a claim outlived its header (claims are made after the header and released before it
            # is deleted, so this is left over from manual intervention): release it
            await abort(db, txn)
            log.warning("recovery: released claims of transaction %s, which has no journal", txn)
    return done


async def sweep(db: reads.Db, me: Owner, interval: float = RECOVERY_INTERVAL_S) -> None:
    """Run :func:`recover` forever (a background task of the open store); errors are logged."""
    while True:
        await asyncio.sleep(interval)
        try:
            await recover(db, me)
        except PyMongoError:
            log.warning("journal recovery failed; retrying in %ss", interval, exc_info=True)

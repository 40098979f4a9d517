"""Journalled write sessions: atomic, crash-safe transactions where MongoDB has no isolated ones.

A standalone ``mongod`` has no multi-document transactions and nx-27017's are not isolated
(:func:`.session.transactions_isolated`), so there a write session is a :class:`JournalSession`, a
*redo log* in the ``journal`` collection (layout in :mod:`.schema`):

1. **Lone write** (the plain-write path; no journal). ``write`` checks the expected version
   (:class:`~server.stores.base.VersionConflict` at once when stale) and keeps the new document in
   memory; ``commit`` stores it with one compare-and-set ``replace_one({_id, version, pending
   absent})`` (or ``insert_one``), then its history document. Atomic by itself, as before; a race in
   the instant between ``write`` and ``commit`` raises :class:`~server.errors.Contention` (nothing
   stored; the interactions layer re-runs the request).
2. **Second write** (or a ``find`` over a type the session has written): the session becomes a
   transaction. It inserts a header ``{_id: txn, state: "open", owner…, expires}`` first, then
   *claims* every resource it writes with one atomic write each — ``update_one({_id, version:
   expected, pending absent}, {$set: {pending: txn}})``, or, for a resource that does not exist yet,
   the insert of a placeholder (version 0, deleted, ``pending: txn``; reads treat it as absent). The
   claim is the compare-and-set: a concurrent writer that changed the resource makes it fail
   (VersionConflict), and a claimed resource makes every other writer's compare-and-set fail
   (409, retry) until the transaction has applied or released it. The new documents stay in memory
   and are appended to ``journal`` in batches (one entry document per resource, so no document nears
   16 MiB); readers never see them: a claim changes nothing a read or search returns.
3. **Commit**: the remaining entries are inserted, then the header is set to ``committed`` with a
   compare-and-set on ``{state: "open", owner: me}`` — the single atomic commit point. Then *apply*:
   bulk ``replace_one({_id, pending: txn}, new document)`` (which also drops the claim) and history
   inserts, then the entries and the header are deleted (:mod:`.recovery`).
4. **Rollback** (an exception in the session): header → ``aborting``; placeholders deleted, claims
   unset, journal deleted. Nothing was visible, so nothing vanishes, and the version numbers the
   transaction would have used are used by the next writer: no gaps.

Crash safety: an ``open``/``aborting`` journal left by a crash touched only claims, which recovery
releases; a ``committed`` one is re-applied idempotently. :mod:`.recovery` runs at ``open()`` and in
the background, taking over journals of dead owners (lease expired; at once for a process of this
host that is gone). The session's own ``read`` answers from its buffer and ``find`` merges its
journal entries (same document shape, same compiled filter) with the committed resources it has not
rewritten — read-your-writes. Not guaranteed: during the apply phase (after the commit point) other
readers can see some of the transaction's resources new and others still old; a committed journal
of a crashed node stays half-applied until recovery (that node's restart, or ``LEASE_S`` + one
sweep on another node); chain and ``_has`` sub-queries inside a session see only committed data.
Lease holders renew while they write; a session idle for longer than ``LEASE_S`` may be rolled back
by another node and then fails at commit with Contention (nothing stored, re-run).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from pymongo.errors import DuplicateKeyError, PyMongoError

from server.errors import Contention, StoreUnavailable
from server.search.model import Condition
from server.stores.base import Version, VersionConflict, Write

from . import reads, recovery
from .compile import conjoin
from .errors import map_errors, mapped
from .recovery import Owner
from .schema import JOURNAL, PENDING, RESOURCES, current_document, history_document, resource_key
from .session import MongoSession

log = logging.getLogger(__name__)

FLUSH_ENTRIES = 200
FLUSH_BYTES = 4 << 20
"""Journal entries are inserted in batches of at most this many / about this many body bytes."""
PRIOR = {"version": 1, "deleted": 1, PENDING: 1}
UNCLAIMED = {"$exists": False}


@dataclass(slots=True)
class _Pending:
    """What the session has written to one resource (the newest version) and what it replaces."""

    version: Version
    doc: dict[str, Any]
    prior: int | None
    """Version current before the session (None: no document at all)."""
    earlier: list[dict[str, Any]] = field(default_factory=list)
    """History documents of versions this session wrote before ``version``."""
    flushed: bool = False
    dirty: bool = False


class JournalSession(MongoSession):
    """A :class:`~server.stores.base.Session` on a deployment without isolated transactions."""

    def __init__(self, db: reads.Db, owner: Owner) -> None:
        super().__init__(db, None)
        self._me = owner
        self._txn: str | None = None
        self._pending: dict[str, _Pending] = {}
        self._unflushed = 0
        self._unflushed_bytes = 0
        self._lease_at = 0.0

    @property
    def transactional(self) -> bool:
        return False

    # --- reads ----------------------------------------------------------------------------

    @mapped
    async def read(self, type_: str, id_: str) -> Version | None:
        p = self._pending.get(resource_key(type_, id_))
        return p.version if p is not None else await reads.read(self._db, None, type_, id_)

    @mapped
    async def find(self, type_: str, where: Condition, limit: int) -> list[str]:
        shadowed = {p.version.id for p in self._pending.values() if p.version.type == type_}
        if not shadowed or limit <= 0:
            return await reads.find(self._db, None, type_, where, limit)
        await self._begin()
        await self._flush()
        f = await reads.where_filter(self._db, None, (type_,), where)
        ids = {d["id"] async for d in self._db[JOURNAL].find(conjoin(f, {"txn": {"$eq": self._txn}}), {"id": 1})}
        cursor = self._db[RESOURCES].find(f, {"id": 1}, sort=[("id", 1)], limit=limit + len(shadowed))
        ids.update([d["id"] async for d in cursor if d["id"] not in shadowed])
        return sorted(ids)[:limit]

    # --- writes ---------------------------------------------------------------------------

    @mapped
    async def write(self, write: Write) -> None:
        await self._renew()
        v = write.version
        key = resource_key(v.type, v.id)
        p = self._pending.get(key)
        if p is not None:  # written before in this session
            have = p.version
            allowed = have.deleted if write.expected is None else have.version == write.expected
            if not allowed or v.version <= have.version:
                raise VersionConflict(v.type, v.id, have.version)
            p.earlier.append(history_document(have))
            p.version, p.doc, p.dirty = v, current_document(v, write.entries), p.flushed
            await self._grow(v)
            return
        prior = await self._db[RESOURCES].find_one({"_id": key}, PRIOR)
        current = None if prior is None or not prior["version"] else int(prior["version"])
        if prior is not None and PENDING in prior:
            raise VersionConflict(v.type, v.id, current)  # another transaction is writing it
        allowed = (prior is None or bool(prior["deleted"])) if write.expected is None else current == write.expected
        if not allowed or (current is not None and v.version <= current):
            raise VersionConflict(v.type, v.id, current)
        p = _Pending(v, current_document(v, write.entries), None if prior is None else int(prior["version"]))
        if self._pending:
            await self._begin()
            await self._claim(key, p)
        self._pending[key] = p
        await self._grow(v)

    async def _grow(self, v: Version) -> None:
        self._unflushed += 1
        self._unflushed_bytes += len(v.body or b"")
        if self._txn is not None and (self._unflushed >= FLUSH_ENTRIES or self._unflushed_bytes >= FLUSH_BYTES):
            await self._flush()

    async def _begin(self) -> None:
        """Become a journalled transaction: header first, then claim what was written so far."""
        if self._txn is not None:
            return
        txn = uuid4().hex
        header = {"_id": txn, "state": "open", **self._me.fields(), "expires": self._expiry()}
        await self._db[JOURNAL].insert_one(header)
        self._txn, self._lease_at = txn, time.monotonic()
        for key, p in self._pending.items():
            await self._claim(key, p)

    async def _claim(self, key: str, p: _Pending) -> None:
        assert self._txn is not None
        v = p.version
        resources = self._db[RESOURCES]
        if p.prior is None:
            try:
                await resources.insert_one(recovery.placeholder_document(v.type, v.id, key, self._txn))
            except DuplicateKeyError:
                raise VersionConflict(v.type, v.id, await self._current(key)) from None
        else:
            done = await resources.update_one(
                {"_id": key, "version": {"$eq": p.prior}, PENDING: UNCLAIMED}, {"$set": {PENDING: self._txn}}
            )
            if done.matched_count != 1:
                raise VersionConflict(v.type, v.id, await self._current(key))
        await self._renew_journal()

    def _entry(self, key: str, p: _Pending) -> dict[str, Any]:
        assert self._txn is not None
        return recovery.entry_document(self._txn, key, p.doc, p.earlier)

    async def _flush(self) -> None:
        """Make the buffered entries durable in ``journal`` (all of them before the commit point)."""
        journal = self._db[JOURNAL]
        fresh = [self._entry(k, p) for k, p in self._pending.items() if not p.flushed]
        if fresh:
            await journal.insert_many(fresh, ordered=True)
        for key, p in self._pending.items():
            if p.dirty:
                entry = self._entry(key, p)
                await journal.replace_one({"_id": entry["_id"]}, entry, upsert=True)
            p.flushed, p.dirty = True, False
        self._unflushed = self._unflushed_bytes = 0
        await self._renew_journal()

    def _expiry(self) -> int:
        return recovery.now_ms() + int(recovery.LEASE_S * 1000)

    async def _renew_journal(self, *, force: bool = False) -> None:
        if self._txn is None or (not force and time.monotonic() - self._lease_at < recovery.LEASE_S / 3):
            return
        done = await self._db[JOURNAL].update_one(
            {"_id": self._txn, "owner": self._me.id}, {"$set": {"expires": self._expiry()}}
        )
        if done.matched_count != 1:
            raise Contention("the transaction was idle too long and has been rolled back; retry")
        self._lease_at = time.monotonic()

    # --- ending ---------------------------------------------------------------------------

    async def commit(self) -> None:
        try:
            with map_errors():
                if self._txn is not None:
                    await asyncio.shield(self._commit_journal(self._txn))
                elif self._pending:
                    await self._write_alone(*next(iter(self._pending.items())))
        finally:
            self._pending.clear()
            await self._end()

    async def _write_alone(self, key: str, p: _Pending) -> None:
        resources = self._db[RESOURCES]
        v = p.version
        raced = Contention(f"{v.type}/{v.id} was changed by another request meanwhile; retry")
        if p.prior is None:
            try:
                await resources.insert_one(p.doc)
            except DuplicateKeyError:
                raise raced from None
        else:
            done = await resources.replace_one({"_id": key, "version": {"$eq": p.prior}, PENDING: UNCLAIMED}, p.doc)
            if done.matched_count != 1:
                raise raced
        await recovery.insert_history(self._db, [*p.earlier, history_document(v)])

    async def _commit_journal(self, txn: str) -> None:
        await self._flush()
        committed = await self._db[JOURNAL].update_one(
            {"_id": txn, "state": "open", "owner": self._me.id},
            {"$set": {"state": "committed", "n": len(self._pending), "expires": self._expiry()}},
        )
        self._lease_at = time.monotonic()
        if committed.matched_count != 1:
            self._txn = None  # taken over and rolled back by recovery
            raise Contention("the transaction was idle too long and has been rolled back; retry")
        # the commit point has passed: from here on the transaction happens, whatever fails below
        entries = [self._entry(k, p) for k, p in self._pending.items()]
        try:
            await recovery.apply(self._db, txn, entries, lambda: self._renew_journal(force=True))
            await recovery.finish(self._db, txn)
        except PyMongoError as exc:
            log.error("transaction %s is committed but applying it failed; recovery completes it", txn, exc_info=True)
            raise StoreUnavailable(
                f"the transaction is committed but not yet fully applied; the store completes it within "
                f"{recovery.LEASE_S + recovery.RECOVERY_INTERVAL_S:.0f}s (do not send it again)"
            ) from exc
        self._txn = None

    async def rollback(self) -> None:
        txn, self._txn = self._txn, None
        self._pending.clear()
        try:
            if txn is not None:
                mine = await self._db[JOURNAL].update_one(
                    {"_id": txn, "state": "open", "owner": self._me.id}, {"$set": {"state": "aborting"}}
                )
                if mine.matched_count == 1:
                    await recovery.abort(self._db, txn)
        except PyMongoError:
            log.exception("rolling back journalled transaction %s failed; recovery finishes it", txn)
        finally:
            await self._end()

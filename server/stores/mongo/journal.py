"""Journalled write sessions: atomic, crash-safe transactions where MongoDB has no isolated ones.

A standalone ``mongod`` has no multi-document transactions and nx-27017's are not isolated
(:func:`.session.transactions_isolated`), so there a write session is a :class:`JournalSession`:
its writes are buffered in memory and reach ``resources``/``history`` only through a *redo log* in
the ``journal`` collection (layout in :mod:`.schema`; shared steps in :mod:`.recovery`).

* ``write`` checks the expected version against what the session read (``read`` remembers it) or,
  for a resource it has not read, one ``find_one`` — so a stale ``expected`` still raises
  :class:`~server.stores.base.VersionConflict` at once — and buffers the new current document.
  Nothing is visible to anyone else.
* **Lone write** (one resource written; the plain-write path, no journal): ``commit`` stores it with
  one compare-and-set ``replace_one({_id, version, pending absent})`` (or ``insert_one``) and then
  its history document — atomic by itself, exactly as before.
* **Transaction** (several resources written): ``commit`` (1) inserts the header
  ``{_id: txn, state: "open", owner…, expires}``; (2) *claims* every resource in bulk, each claim one
  atomic compare-and-set — ``update_one({_id, version: read, pending absent}, {$set: {pending:
  txn}})``, or for a resource that does not exist the insert of a placeholder (version 0, deleted,
  ``pending``; reads treat it as absent); (3) inserts the entries, one document per resource (so no
  document nears 16 MiB); (4) sets the header to ``committed`` with a compare-and-set on ``{state:
  "open", owner: me}`` — **the single atomic commit point**; (5) *applies*: bulk
  ``replace_one({_id, pending: txn}, new document)`` (dropping the claim) and history inserts, then
  deletes entries and header. A claim that fails (a concurrent writer changed the resource after the
  session read it) releases everything and raises :class:`~server.errors.Contention` (nothing was
  stored; the interactions layer re-runs the request). A claimed resource makes every other
  writer's compare-and-set fail the same way until it is applied or released, so no plain write can
  slip in between the check and the apply, and the apply never meets a resource it did not claim.
* **Rollback** (an exception in the session, or a failure before the commit point): header →
  ``aborting``, placeholders deleted, claims unset, journal deleted. Nothing was visible, so no
  version vanishes, and the numbers the transaction would have used go to the next writer: no gaps.

Crash safety: a journal that is ``open``/``aborting`` touched only claims, which recovery releases;
a ``committed`` one is re-applied idempotently. :mod:`.recovery` runs at ``open()`` and in the
background and takes over journals whose owner is dead (lease expired; at once for a process of this
host that is gone, i.e. at the restart after a crash). Read-your-writes: the session's ``read``
answers from its buffer; ``find`` over a type it has written writes the header and entries first
and merges the entries that match (same document shape, same compiled filter) with the committed
resources it has not rewritten. Not guaranteed: during the apply phase (after the commit point)
other readers can see some of the transaction's resources new and others still old; a committed
journal of a crashed node stays half-applied until it is recovered (its restart, or ``LEASE_S`` +
one sweep on another node); chain and ``_has`` sub-queries inside a session see only committed data.
The owner renews its lease while it claims, flushes and applies; a session that stalls for longer
than ``LEASE_S`` after writing its header may be rolled back by another node and then fails with
Contention.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

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
        self._seen: dict[str, Version | None] = {}
        self._claimed = False
        self._lease_at = 0.0

    @property
    def transactional(self) -> bool:
        return False

    # --- reads ----------------------------------------------------------------------------

    @mapped
    async def read(self, type_: str, id_: str) -> Version | None:
        key = resource_key(type_, id_)
        p = self._pending.get(key)
        if p is not None:
            return p.version
        found = await reads.read(self._db, None, type_, id_)
        self._seen[key] = found
        return found

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
            return
        if key in self._seen:  # read by this session: the claim at commit re-checks it atomically
            seen = self._seen[key]
            current, deleted = (None, True) if seen is None else (seen.version, seen.deleted)
        else:
            prior = await self._db[RESOURCES].find_one({"_id": key}, PRIOR)
            current = None if prior is None or not prior["version"] else int(prior["version"])
            if prior is not None and PENDING in prior:
                raise VersionConflict(v.type, v.id, current)  # another transaction is writing it
            deleted = prior is None or bool(prior["deleted"])
        allowed = deleted if write.expected is None else current == write.expected
        if not allowed or (current is not None and v.version <= current):
            raise VersionConflict(v.type, v.id, current)
        self._pending[key] = _Pending(v, current_document(v, write.entries), current)

    @mapped
    async def append(self, writes: Sequence[Write]) -> None:
        """One look-up of all the ids instead of one per resource; the writes are then pending like
        :meth:`write`'s (claimed in bulk and committed through the journal)."""
        await self._renew()
        keys = [resource_key(w.version.type, w.version.id) for w in writes]
        if len(set(keys)) != len(keys) or any(k in self._pending or k in self._seen for k in keys):
            for write in writes:  # the session touched some already: the general path decides
                await self.write(write)
            return
        found = await self._db[RESOURCES].find_one({"_id": {"$in": keys}}, {"type": 1, "id": 1, "version": 1})
        if found is not None:
            raise VersionConflict(str(found.get("type")), str(found.get("id")), found.get("version"))
        for key, w in zip(keys, writes, strict=True):
            self._pending[key] = _Pending(w.version, current_document(w.version, w.entries), None)

    async def _begin(self) -> None:
        """Insert the journal header (before any claim, so recovery can always find them)."""
        if self._txn is not None:
            return
        txn = uuid4().hex
        header = {"_id": txn, "state": "open", **self._me.fields(), "expires": self._expiry()}
        await self._db[JOURNAL].insert_one(header)
        self._txn, self._lease_at = txn, time.monotonic()

    async def _claim_all(self) -> None:
        """Claim every resource written, in bulk; any claim that fails aborts the transaction."""
        txn = self._txn
        assert txn is not None
        if self._claimed:
            return
        resources = self._db[RESOURCES]
        items = list(self._pending.items())
        lost: list[str] = []
        for start in range(0, len(items), recovery.BATCH):
            chunk = items[start : start + recovery.BATCH]
            ops: list[InsertOne[dict[str, Any]] | UpdateOne] = []
            for key, p in chunk:
                if p.prior is None:
                    ops.append(InsertOne(recovery.placeholder_document(p.version.type, p.version.id, key, txn)))
                else:
                    cas = {"_id": key, "version": {"$eq": p.prior}, PENDING: UNCLAIMED}
                    ops.append(UpdateOne(cas, {"$set": {PENDING: txn}}))
            try:
                done = await resources.bulk_write(ops, ordered=False)
                claimed = done.inserted_count + done.matched_count
            except BulkWriteError as exc:
                if any(e.get("code") != recovery.DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                    raise
                claimed = -1
            if claimed != len(chunk):
                keys = [key for key, _ in chunk]
                held = resources.find({"_id": {"$in": keys}, PENDING: {"$eq": txn}}, {"_id": 1})
                mine = {d["_id"] async for d in held}
                lost += [key for key in keys if key not in mine]
            await self._renew_journal()
        if lost:
            raise Contention(f"{lost[0]} was changed by another request meanwhile; retry")
        self._claimed = True

    def _entry(self, key: str, p: _Pending) -> dict[str, Any]:
        assert self._txn is not None
        return recovery.entry_document(self._txn, key, p.doc, p.earlier)

    async def _flush(self) -> None:
        """Make the buffered entries durable in ``journal`` (all of them before the commit point)."""
        journal = self._db[JOURNAL]
        fresh = [(k, p) for k, p in self._pending.items() if not p.flushed]
        for start in range(0, len(fresh), recovery.BATCH):
            await journal.insert_many([self._entry(k, p) for k, p in fresh[start : start + recovery.BATCH]])
            await self._renew_journal()
        for key, p in self._pending.items():
            if p.dirty:  # written again after its entry was flushed (read-your-writes in find)
                entry = self._entry(key, p)
                await journal.replace_one({"_id": entry["_id"]}, entry, upsert=True)
            p.flushed, p.dirty = True, False

    def _expiry(self) -> int:
        return recovery.now_ms() + int(recovery.LEASE_S * 1000)

    async def _renew_journal(self, *, force: bool = False) -> None:
        if self._txn is None or (not force and time.monotonic() - self._lease_at < recovery.LEASE_S / 3):
            return
        done = await self._db[JOURNAL].update_one(
            {"_id": self._txn, "owner": self._me.id}, {"$set": {"expires": self._expiry()}}
        )
        if done.matched_count != 1:
            raise Contention("the transaction stalled and has been rolled back by recovery; retry")
        self._lease_at = time.monotonic()

    # --- ending ---------------------------------------------------------------------------

    async def commit(self) -> None:
        try:
            with map_errors():
                if self._txn is not None or len(self._pending) > 1:
                    await asyncio.shield(self._commit_journal())
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

    async def prepare(self) -> None:
        """Everything before the commit point: header, claims, entries (also what a test stops at
        to leave the journal a crash right before the commit point would leave)."""
        await self._begin()
        await self._claim_all()
        await self._flush()

    async def _commit_journal(self) -> None:
        try:
            await self.prepare()
            assert self._txn is not None
            committed = await self._db[JOURNAL].update_one(
                {"_id": self._txn, "state": "open", "owner": self._me.id},
                {"$set": {"state": "committed", "n": len(self._pending), "expires": self._expiry()}},
            )
            if committed.matched_count != 1:
                raise Contention("the transaction stalled and has been rolled back by recovery; retry")
        except BaseException:
            await self._abort()
            raise
        # the commit point has passed: from here on the transaction happens, whatever fails below
        txn, self._lease_at = self._txn, time.monotonic()
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

    async def _abort(self) -> None:
        txn, self._txn = self._txn, None
        if txn is None:
            return
        try:
            mine = await self._db[JOURNAL].update_one(
                {"_id": txn, "state": "open", "owner": self._me.id}, {"$set": {"state": "aborting"}}
            )
            if mine.matched_count == 1:
                await recovery.abort(self._db, txn)
        except PyMongoError:
            log.exception("rolling back journalled transaction %s failed; recovery finishes it", txn)

    async def rollback(self) -> None:
        try:
            await self._abort()
        finally:
            self._pending.clear()
            await self._end()

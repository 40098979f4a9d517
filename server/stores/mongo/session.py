"""Write sessions: one multi-document transaction, or a journal where there is none.

:func:`transactions_isolated` decides once, at ``open()``: it starts a transaction, writes a probe
document and checks that it is invisible outside the transaction. A standalone ``mongod`` refuses
the transaction ("Transaction numbers are only allowed on a replica set member or mongos"); the
nx-27017 test server accepts it but shows the uncommitted write to everyone (its transactions are
savepoints on one shared SQLite connection, so concurrent ones interfere): both get journalled
sessions (:mod:`.journal`, a subclass of :class:`MongoSession` sharing its locks).

* Transactional session: every read and write passes the client session; the body of a session is
  the caller's code and cannot be re-run here, so a ``TransientTransactionError`` (a write conflict
  with a concurrent transaction) becomes :class:`~server.errors.Contention`, which the request's
  owner re-runs from the top (``server.interactions.retry``; 409 with ``Retry-After`` if it keeps losing).
* Journalled session: see :mod:`.journal` (a redo log with claims, recovered at start-up).
  Every compare-and-set here also requires the resource not to be claimed (``pending``) by an
  in-flight journalled transaction.

:meth:`MongoSession.lock` serialises match-then-write (conditional create/update/delete) across
requests and processes with a lease document in ``locks`` written *outside* any transaction (so
other sessions see it at once): insert ``{_id, owner, expires}``; on a duplicate key wait with
growing back-off, steal a lease whose ``expires`` has passed, give up after :data:`LOCK_WAIT_S`
with 409. Leases are released when the session ends. Inside a transaction the session also bumps a
``guard`` counter for the key: a transaction whose snapshot predates another one's commit under the
same lock then fails with a write conflict instead of acting on a stale read.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    DuplicateKeyError,
    InvalidOperation,
    OperationFailure,
    PyMongoError,
)

from server.errors import Contention
from server.search.model import Condition, Entry
from server.stores.base import Version, VersionConflict, Write

from . import reads
from .errors import RETRY_AFTER, map_errors, mapped
from .schema import (
    HISTORY,
    INDEX_FIELDS,
    LOCKS,
    PENDING,
    PROBE,
    RESOURCES,
    current_document,
    history_document,
    index_fields,
    resource_key,
)
from .sharding import IDS, SK, shard_key

log = logging.getLogger(__name__)

LOCK_TTL_S = 30.0
"""A lease outlives a crashed holder by at most this long; live holders renew it while writing."""
LOCK_WAIT_S = 15.0
"""How long :meth:`MongoSession.lock` waits for a busy key before giving up with :class:`Contention`:
the request is then re-run (:mod:`server.interactions.retry`), not answered 409 at once."""
LOCK_FIRST_DELAY_S = 0.01
LOCK_MAX_DELAY_S = 0.2
PRIOR = {"version": 1, "deleted": 1, PENDING: 1, SK: 1}
UNCLAIMED = {"$exists": False}
COMMIT_ATTEMPTS = 3
"""``UnknownTransactionCommitResult`` may be retried: commitTransaction is idempotent."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class MongoSession:
    """A :class:`~server.stores.base.Session`; use it sequentially (one operation at a time)."""

    def __init__(self, db: reads.Db, client_session: AsyncClientSession | None, *, sharded: bool = False) -> None:
        self._db = db
        self._s = client_session
        self._sharded = sharded
        """Behind mongos: writes name the old shard key and claim their id in ``ids`` (:mod:`.sharding`)."""
        self._owner = uuid4().hex
        self._held: dict[str, float] = {}

    @property
    def transactional(self) -> bool:
        return self._s is not None

    @mapped
    async def read(self, type_: str, id_: str) -> Version | None:
        return await reads.read(self._db, self._s, type_, id_)

    @mapped
    async def find(self, type_: str, where: Condition, limit: int) -> list[str]:
        return await reads.find(self._db, self._s, type_, where, limit)

    @mapped
    async def lock(self, key: str) -> None:
        lease = f"lock {key}"
        await self._renew()
        if lease not in self._held:
            await self._acquire(lease, key)
            self._held[lease] = time.monotonic()
        if self._s is not None:
            await self._db[LOCKS].update_one({"_id": f"guard {key}"}, {"$inc": {"n": 1}}, upsert=True, session=self._s)

    async def _acquire(self, lease: str, key: str) -> None:
        locks = self._db[LOCKS]
        deadline = time.monotonic() + LOCK_WAIT_S
        delay = LOCK_FIRST_DELAY_S
        while True:
            now = _now_ms()
            expires = now + int(LOCK_TTL_S * 1000)
            try:
                await locks.insert_one({"_id": lease, "owner": self._owner, "expires": expires})
                return
            except DuplicateKeyError:
                pass
            stolen = await locks.find_one_and_update(
                {"_id": lease, "expires": {"$lt": now}},
                {"$set": {"owner": self._owner, "expires": expires}},
            )
            if stolen is not None:
                log.warning("took over expired lock %r from %s", key, stolen.get("owner"))
                return
            if time.monotonic() + delay > deadline:
                raise Contention(f"another request holds the lock on {key!r}; retry", headers=RETRY_AFTER)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 1.5, LOCK_MAX_DELAY_S)

    async def _renew(self) -> None:
        """Extend held leases once a third of their lifetime has passed."""
        if not self._held or time.monotonic() - min(self._held.values()) < LOCK_TTL_S / 3:
            return
        await self._db[LOCKS].update_many(
            {"_id": {"$in": list(self._held)}, "owner": {"$eq": self._owner}},
            {"$set": {"expires": _now_ms() + int(LOCK_TTL_S * 1000)}},
        )
        now = time.monotonic()
        self._held = dict.fromkeys(self._held, now)

    @mapped
    async def write(self, write: Write) -> None:
        await self._renew()
        v = write.version
        key = resource_key(v.type, v.id)
        resources = self._db[RESOURCES]
        prior = await resources.find_one({"_id": key}, PRIOR, session=self._s)
        current = None if prior is None or not prior["version"] else int(prior["version"])
        if prior is not None and PENDING in prior:
            raise VersionConflict(v.type, v.id, current)  # a journalled transaction is writing it
        # expected None: the resource must not exist, or exist only as a deletion
        allowed = (prior is None or bool(prior["deleted"])) if write.expected is None else current == write.expected
        if not allowed or (current is not None and v.version <= current):
            raise VersionConflict(v.type, v.id, current)
        doc = current_document(v, write.entries)
        if v.deleted and prior is not None and prior.get(SK):
            doc[SK] = prior[SK]  # a deletion stays where its resource was
        if self._sharded and self._s is not None:  # ids are unique per shard only: claim it cluster-wide
            await self._db[IDS].update_one({"_id": key}, {"$set": {SK: doc[SK]}}, upsert=True, session=self._s)
        if prior is None:
            try:
                await resources.insert_one(doc, session=self._s)
            except DuplicateKeyError:
                raise VersionConflict(v.type, v.id, await self._current(key)) from None
        else:
            cas = {"_id": key, "version": {"$eq": current}, PENDING: UNCLAIMED}
            if prior.get(SK) is not None:  # names the full shard key, so a changed sk moves the document
                cas[SK] = {"$eq": prior[SK]}
            done = await resources.replace_one(cas, doc, session=self._s)
            if done.matched_count != 1:
                raise VersionConflict(v.type, v.id, await self._current(key))
        entry = history_document(v)
        entry[SK] = doc[SK]
        try:
            await self._db[HISTORY].insert_one(entry, session=self._s)
        except DuplicateKeyError:
            if self._s is not None:
                raise
            # left by an interrupted earlier attempt at this version: the CAS above proves that
            # no committed write owns it, so it is replaced
            await self._db[HISTORY].replace_one({"_id": entry["_id"]}, entry)

    @mapped
    async def append(self, writes: Sequence[Write]) -> None:
        """Inside a transaction: one look-up of all the ids and one ``insert_many`` per collection
        (the transaction makes the batch atomic). Behind mongos (each id claimed cluster-wide) or
        without a transaction: resource by resource through :meth:`write`."""
        if self._s is None or self._sharded:
            for write in writes:
                await self.write(write)
            return
        if not writes:
            return
        await self._renew()
        keys = [resource_key(w.version.type, w.version.id) for w in writes]
        if len(set(keys)) != len(keys):
            raise VersionConflict(writes[0].version.type, next(k for k in keys if keys.count(k) > 1), None)
        resources = self._db[RESOURCES]
        found = await resources.find_one({"_id": {"$in": keys}}, {"type": 1, "id": 1, "version": 1}, session=self._s)
        if found is not None:
            raise VersionConflict(str(found.get("type")), str(found.get("id")), found.get("version"))
        docs = [current_document(w.version, w.entries) for w in writes]
        history = []
        for w, doc in zip(writes, docs, strict=True):
            entry = history_document(w.version)
            entry[SK] = doc[SK]
            history.append(entry)
        try:
            await resources.insert_many(docs, session=self._s)
        except (DuplicateKeyError, BulkWriteError):
            raise VersionConflict(writes[0].version.type, writes[0].version.id, None) from None
        await self._db[HISTORY].insert_many(history, session=self._s)

    @mapped
    async def reindex(self, type_: str, id_: str, version: int, entries: Sequence[Entry]) -> bool:
        """Compare-and-set on the version: the entry arrays, ``refs`` and ``sort`` are recomputed
        exactly as :meth:`write` computes them; fields the new entries no longer have are unset.
        Not journalled: the new entries describe the same version, so keeping them after a
        rolled-back session is harmless."""
        await self._renew()
        fields = index_fields(entries)
        stale = {name: "" for name in INDEX_FIELDS if name not in fields}
        fields[SK] = shard_key(type_, id_, entries)
        update: dict[str, Any] = {"$set": fields}
        if stale:
            update["$unset"] = stale
        key = resource_key(type_, id_)
        where: dict[str, Any] = {"_id": key, "version": {"$eq": version}, "deleted": {"$eq": False}}
        if self._sharded:  # a changed sk needs the old one in the filter
            found = await self._db[RESOURCES].find_one({"_id": key}, {SK: 1}, session=self._s)
            if found is not None and found.get(SK) is not None:
                where[SK] = {"$eq": found[SK]}
        done = await self._db[RESOURCES].update_one(where, update, session=self._s)
        return done.matched_count == 1

    async def _current(self, key: str) -> int | None:
        """The committed current version, read outside the (possibly aborted) transaction."""
        doc = await self._db[RESOURCES].find_one({"_id": key}, {"version": 1})
        return None if doc is None or not doc["version"] else int(doc["version"])

    # --- ending ---------------------------------------------------------------------------

    async def commit(self) -> None:
        try:
            if self._s is not None:
                with map_errors():
                    await self._commit_transaction(self._s)
        finally:
            await self._end()

    async def _commit_transaction(self, s: AsyncClientSession) -> None:
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                await s.commit_transaction()
                return
            except PyMongoError as exc:
                if attempt == COMMIT_ATTEMPTS or not exc.has_error_label("UnknownTransactionCommitResult"):
                    raise

    async def rollback(self) -> None:
        try:
            if self._s is not None and self._s.in_transaction:
                await self._s.abort_transaction()
        except PyMongoError:
            log.exception("rolling back a MongoDB session failed; some writes may remain")
        finally:
            await self._end()

    async def _end(self) -> None:
        try:
            if self._held:
                await self._db[LOCKS].delete_many({"_id": {"$in": list(self._held)}, "owner": {"$eq": self._owner}})
        except PyMongoError:
            log.warning("releasing locks failed; they expire within %ss", LOCK_TTL_S, exc_info=True)
        finally:
            self._held.clear()
            if self._s is not None:
                await self._s.end_session()


@asynccontextmanager
async def open_session(client: AsyncMongoClient[dict[str, Any]], db: reads.Db, *,
                       sharded: bool = False) -> AsyncIterator[MongoSession]:
    """A transactional session (see :func:`run_session`)."""
    with map_errors():
        client_session = client.start_session()
        try:
            await client_session.start_transaction()
        except BaseException:
            await client_session.end_session()
            raise
    async with run_session(MongoSession(db, client_session, sharded=sharded)) as session:
        yield session


@asynccontextmanager
async def run_session(session: MongoSession) -> AsyncIterator[MongoSession]:
    """Commit on normal exit; roll back (abort, or release the journal) and re-raise on any exception."""
    try:
        yield session
    except BaseException:
        await asyncio.shield(session.rollback())
        raise
    await session.commit()


PROBE_ROUNDS = 3
"""Isolation must be seen in every round: on a server whose transactions share one connection
(nx-27017), another process probing at the same moment can roll back this probe's write, which
would otherwise look like isolation."""


async def transactions_isolated(client: AsyncMongoClient[dict[str, Any]], db: reads.Db) -> bool:
    """True when the deployment runs multi-document transactions with isolation (see above): in
    each of :data:`PROBE_ROUNDS` rounds the transaction sees its own write and nobody else does."""
    probe = db[PROBE]
    for _ in range(PROBE_ROUNDS):
        marker = uuid4().hex
        async with client.start_session() as s:
            try:
                await s.start_transaction()
                await probe.insert_one({"_id": marker}, session=s)
                leaked = await probe.find_one({"_id": marker})
                # read after the outside read: a write rolled back before either read shows as missing here
                own = await probe.find_one({"_id": marker}, session=s)
                await s.abort_transaction()
            except (OperationFailure, ConfigurationError, InvalidOperation) as exc:
                log.info("MongoDB transactions unavailable (%s): sessions use the journal", exc)
                return False
        await probe.delete_one({"_id": marker})
        if own is None or leaked is not None:
            why = "not isolated" if leaked is not None else "not reliable (a write vanished inside its transaction)"
            log.info("MongoDB transactions are %s on this server: sessions use the journal", why)
            return False
    return True

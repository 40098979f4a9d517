"""The production store: MongoDB through PyMongo's async API (``AsyncMongoClient``).

Layout, indexes and consistency guarantees are documented in :mod:`.schema`; sessions (transactions,
locks) in :mod:`.session`; the journal used where transactions are not isolated in :mod:`.journal`
and its recovery (at :meth:`MongoStore.open` and in the background) in :mod:`.recovery`; query
compilation in :mod:`.compile` and :mod:`.order`, in the forms the server answers correctly
(:mod:`.capabilities`, detected at :meth:`MongoStore.open` and logged in one line).
Every public method translates driver errors through :mod:`.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import pymongo
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from server.errors import StoreUnavailable
from server.search.explain import StorePlan
from server.search.model import Condition, Entry, Query
from server.stores.base import HistoryQuery, SearchResult, Session, Version

from . import capabilities as caps_module
from . import reads, records, recovery
from .capabilities import Capabilities
from .errors import mapped
from .journal import JournalSession
from .schema import DEFAULT_DATABASE, HISTORY, RESOURCES, check_document_size, ensure_schema, is_mongos
from .session import open_session, run_session, transactions_isolated

log = logging.getLogger(__name__)

PING_TIMEOUT_S = 2.0
"""``/readyz`` must answer quickly even when the server is gone (default selection waits 30 s)."""


class MongoStore:
    """A :class:`~server.stores.base.Store` on MongoDB.

    ``uri`` is a MongoDB connection string; the database is ``database``, else the URI's path,
    else ``yidang``. ``use_transactions``: None detects isolated multi-document transactions at
    :meth:`open`; True/False forces transactional / journalled sessions. ``capabilities``: None or
    ``"detect"`` probes the query forms the server answers at :meth:`open`; ``"efficient"`` /
    ``"fallback"`` or a :class:`~.capabilities.Capabilities` forces them (tests run both paths; the
    transactions flag is always the one decided for sessions).
    """

    kind = "mongo"

    def __init__(self, uri: str, *, database: str | None = None, use_transactions: bool | None = None,
                 capabilities: Capabilities | str | None = None) -> None:
        if isinstance(capabilities, str) and capabilities != "detect" and capabilities not in caps_module.FORCED:
            raise ValueError(f"capabilities must be detect, {' or '.join(caps_module.FORCED)}, not {capabilities!r}")
        self._uri = uri
        self._database = database
        self._use_transactions = use_transactions
        self._forced = caps_module.FORCED.get(capabilities) if isinstance(capabilities, str) else capabilities
        self.capabilities = caps_module.FALLBACK
        """The query forms compiled for this server (decided by :meth:`open`)."""
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._db: reads.Db | None = None
        self.transactions = False
        """Whether sessions are multi-document transactions (decided by :meth:`open`)."""
        self.owner = recovery.Owner.this_process()
        """Names this store's journalled transactions, so recovery can tell when they are orphaned."""
        self._sweeper: asyncio.Task[None] | None = None
        self._kv_purger = records.Purger()

    @property
    def db(self) -> reads.Db:
        if self._db is None:
            raise StoreUnavailable("the MongoDB store is not open")
        return self._db

    @mapped
    async def open(self) -> None:
        if self._client is not None:
            return
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self._uri, appname="yidang")
        try:
            db = client[self._database] if self._database else client.get_default_database(DEFAULT_DATABASE)
            await ensure_schema(db)
            if self._use_transactions is None:
                self.transactions = await transactions_isolated(client, db)
            else:
                self.transactions = self._use_transactions
            if self._forced is None:
                found = await caps_module.detect(db, self.transactions)
            else:
                found = dataclasses.replace(self._forced, transactions=self.transactions,
                                            server=f"{await caps_module.describe_server(db)}, forms forced")
            if not found.sharded and await is_mongos(db):
                found = dataclasses.replace(found, sharded=True)
            # journals can be left by an earlier run in either mode: recover before serving
            done = await recovery.recover(db, self.owner)
        except BaseException:
            await client.close()
            raise
        self._client, self._db, self.capabilities = client, db, found
        log.info("%s", found.describe())
        if any(done.values()):
            log.warning("MongoDB journal recovery at start-up: %(completed)d completed, %(rolled_back)d rolled back",
                        done)
        self._sweeper = asyncio.create_task(recovery.sweep(db, self.owner), name="yidang-journal-recovery")
        if not self.transactions:
            log.warning(
                "MongoDB at %s does not isolate multi-document transactions: write sessions use Yidang's journal. "
                "Guaranteed: every transaction is all-or-nothing, also across crashes (an interrupted one is "
                "completed or rolled back at the next start-up, or by another node within %.0fs); readers never "
                "see a transaction before it commits; no version vanishes or leaves a gap. Not guaranteed: while "
                "a committed transaction is being applied (and until a crashed node's is recovered) readers can "
                "see part of it new and part of it old. Use a replica set for isolated transactions.",
                db.name, recovery.LEASE_S + recovery.RECOVERY_INTERVAL_S,
            )

    async def close(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        client, self._client, self._db = self._client, None, None
        if client is not None:
            await client.close()

    async def ping(self) -> bool:
        try:
            with pymongo.timeout(PING_TIMEOUT_S):
                await self.db.command("ping")
        except (PyMongoError, StoreUnavailable):
            return False
        return True

    @mapped
    async def read(self, type_: str, id_: str) -> Version | None:
        return await reads.read(self.db, None, type_, id_)

    async def current_holds(self, type_: str, id_: str, version: int, where: Condition) -> bool | None:
        """None: asking the server is a round trip, dearer than deciding on the body in hand."""
        return None

    async def read_holding(self, type_: str, id_: str, where: Condition) -> tuple[Version | None, bool | None]:
        """The read alone (see :meth:`current_holds`)."""
        return await self.read(type_, id_), None

    @mapped
    async def vread(self, type_: str, id_: str, version: int) -> Version | None:
        return await reads.vread(self.db, None, type_, id_, version)

    @mapped
    async def history(self, query: HistoryQuery) -> list[Version]:
        return await reads.history(self.db, None, query)

    @mapped
    async def search(self, query: Query) -> SearchResult:
        return await reads.search(self.db, None, query, caps=self.capabilities)

    async def query_plan(self, query: Query) -> StorePlan:
        return await reads.query_plan(self.db, query, caps=self.capabilities)

    def session(self) -> AbstractAsyncContextManager[Session]:
        if self._client is None:
            raise StoreUnavailable("the MongoDB store is not open")
        if self.transactions:
            return open_session(self._client, self.db, sharded=self.capabilities.sharded)
        return run_session(JournalSession(self.db, self.owner))

    # --- key-value records (see .records) ------------------------------------------------------

    @mapped
    async def kv_get(self, space: str, key: str) -> dict[str, Any] | None:
        return await records.get(self.db, space, key)

    @mapped
    async def kv_put(self, space: str, key: str, value: dict[str, Any], *, create_only: bool = False,
                     expires: int | None = None) -> bool:
        done = await records.put(self.db, space, key, value, create_only=create_only, expires=expires)
        await self._kv_purger.maybe(self.db)
        return done

    @mapped
    async def kv_delete(self, space: str, key: str) -> bool:
        return await records.delete(self.db, space, key)

    @mapped
    async def kv_list(self, space: str) -> list[tuple[str, dict[str, Any]]]:
        return await records.list_space(self.db, space)

    def check_document(self, type_: str, body: bytes, entries: Sequence[Entry]) -> None:
        """A resource's current document (the resource with its entry arrays) must fit BSON's 16 MiB.
        Checked before the work that would end in pymongo's ``DocumentTooLarge``: the document is
        encoded here, which costs a fraction of validating or indexing it."""
        check_document_size(type_, body, entries)

    @mapped
    async def stats(self) -> dict[str, Any]:
        pipeline: list[dict[str, Any]] = [
            {"$match": {"deleted": {"$eq": False}}},
            {"$group": {"_id": "$type", "n": {"$sum": 1}}},
        ]
        counts = {d["_id"]: int(d["n"]) async for d in await self.db[RESOURCES].aggregate(pipeline)}
        versions = await self.db[HISTORY].estimated_document_count()
        return {"resources": dict(sorted(counts.items())), "versions": versions}

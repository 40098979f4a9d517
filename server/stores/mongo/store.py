"""The production store: MongoDB through PyMongo's async API (``AsyncMongoClient``).

Layout, indexes and consistency guarantees are documented in :mod:`.schema`; sessions (transactions
or compensation, locks) in :mod:`.session`; query compilation in :mod:`.compile` and :mod:`.order`.
Every public method translates driver errors through :mod:`.errors`.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import pymongo
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from server.errors import StoreUnavailable
from server.search.model import Query
from server.stores.base import HistoryQuery, SearchResult, Session, Version

from . import reads
from .errors import mapped
from .schema import DEFAULT_DATABASE, HISTORY, RESOURCES, ensure_schema
from .session import open_session, transactions_isolated

PING_TIMEOUT_S = 2.0
"""``/readyz`` must answer quickly even when the server is gone (default selection waits 30 s)."""


class MongoStore:
    """A :class:`~server.stores.base.Store` on MongoDB.

    ``uri`` is a MongoDB connection string; the database is ``database``, else the URI's path,
    else ``yidang``. ``use_transactions``: None detects isolated multi-document transactions at
    :meth:`open`; True/False forces transactional / compensating sessions.
    """

    kind = "mongo"

    def __init__(self, uri: str, *, database: str | None = None, use_transactions: bool | None = None) -> None:
        self._uri = uri
        self._database = database
        self._use_transactions = use_transactions
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._db: reads.Db | None = None
        self.transactions = False
        """Whether sessions are multi-document transactions (decided by :meth:`open`)."""

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
        except BaseException:
            await client.close()
            raise
        self._client, self._db = client, db

    async def close(self) -> None:
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

    @mapped
    async def vread(self, type_: str, id_: str, version: int) -> Version | None:
        return await reads.vread(self.db, None, type_, id_, version)

    @mapped
    async def history(self, query: HistoryQuery) -> list[Version]:
        return await reads.history(self.db, None, query)

    @mapped
    async def search(self, query: Query) -> SearchResult:
        return await reads.search(self.db, None, query)

    def session(self) -> AbstractAsyncContextManager[Session]:
        if self._client is None:
            raise StoreUnavailable("the MongoDB store is not open")
        return open_session(self._client, self.db, transactional=self.transactions)

    @mapped
    async def stats(self) -> dict[str, Any]:
        pipeline: list[dict[str, Any]] = [
            {"$match": {"deleted": {"$eq": False}}},
            {"$group": {"_id": "$type", "n": {"$sum": 1}}},
        ]
        counts = {d["_id"]: int(d["n"]) async for d in await self.db[RESOURCES].aggregate(pipeline)}
        versions = await self.db[HISTORY].estimated_document_count()
        return {"resources": dict(sorted(counts.items())), "versions": versions}

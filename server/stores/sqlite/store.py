"""The embedded store: SQLite from the standard library, persistent in a data directory.

Concurrency model (documented in schema.py): point reads run on the event loop on a dedicated
reader connection (a primary-key lookup costs microseconds, less than a thread hop); searches and
history run in worker threads, each with its own connection; every write session holds the
process's write lock and one ``BEGIN IMMEDIATE`` transaction on the writer connection, so sessions
are serialised across requests and across processes sharing the directory. That serialisation is
what makes match-then-write (conditional create/update/delete) race-free, so ``Session.lock`` has
nothing more to do here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from server.errors import StoreUnavailable
from server.search.check import check_condition, check_query
from server.search.explain import StorePlan
from server.search.model import TABLES, Condition, Entry, Query
from server.stores import kv
from server.stores.base import HistoryQuery, SearchResult, Version, VersionConflict, Write
from server.stores.sqlite.compile import ESTIMATE_CAP, Estimate, Sql, holds_sql, read_holding_sql
from server.stores.sqlite.page import compile_query, find_sql
from server.stores.sqlite.schema import HULL, PRAGMAS, SCHEMA_VERSION, ddl

VERSION_COLS = "type, id, version, lu, deleted, method, body"
log = logging.getLogger("yidang.sqlite")
BUSY_RETRY_SECONDS = 15.0
COUNT_TTL_S = 5.0
"""How long a driver count is reused by other searches (:class:`DriverCounts`)."""
COUNT_CACHE_SIZE = 10_000
CHECKPOINT_INTERVAL = 0.5
CHECKPOINT_WAL_BYTES = 4 * 1024 * 1024
COMMIT_IN_THREAD_ROWS = 2000
"""A commit writing more buffered rows than this (~25 ms of ``executemany``; a large resource has
hundreds of thousands of entry rows) runs in a worker thread, so it does not stall the event loop;
the write lock is held throughout, and the thread is waited for even if the request is cancelled."""
KV_PURGE_ROWS = 100
"""Expired key-value rows removed by each key-value write (a bounded batch, so a write never stalls)."""
APPEND_CHECK_IDS = 500
"""Ids looked up per statement by :meth:`SqliteSession.append` (well under SQLite's bound-parameter limit)."""
T = TypeVar("T")
CLOSE_WAIT_S = 30.0
"""How long :meth:`SqliteStore.close` waits for worker-thread calls still using a connection."""
WAL_RESTART_BYTES = 64 * 1024 * 1024
"""Above this the WAL is copied back and truncated with this process's writes held (see _checkpoint_loop)."""


class DriverCounts:
    """Driver counts of recent searches, for :data:`COUNT_TTL_S` seconds: estimates for choosing a
    plan, never for results (a stale count can make a plan slower, not wrong). An access restriction
    (an institution's source tag: every resource it holds) is a driver candidate of each of its
    searches; counted again for each it cost as much as the search's own criteria."""

    def __init__(self, ttl: float = COUNT_TTL_S, size: int = COUNT_CACHE_SIZE) -> None:
        self.ttl = ttl
        self.size = size
        self._seen: dict[tuple[str, tuple[object, ...]], tuple[int, int, float]] = {}

    def get(self, key: tuple[str, tuple[object, ...]], cap: int) -> int | None:
        found = self._seen.get(key)
        if found is None:
            return None
        n, counted_to, at = found
        if time.monotonic() - at > self.ttl or (n >= counted_to and counted_to < cap):
            return None  # too old, or only known to be at least a smaller cap
        return min(n, cap)

    def put(self, key: tuple[str, tuple[object, ...]], n: int, cap: int) -> None:
        if len(self._seen) >= self.size:
            self._seen.clear()
        self._seen[key] = (n, cap, time.monotonic())


def estimator(conn: sqlite3.Connection, counts: DriverCounts | None = None) -> Estimate:
    """Counts a driver's rows up to a cap (at most ESTIMATE_CAP): a bounded read of one index range,
    unless ``counts`` (the store's recent counts; by default this estimator's own) knows it already."""
    known_counts = counts if counts is not None else DriverCounts()

    def estimate(sql: Sql, cap: int = ESTIMATE_CAP) -> int:
        limit = max(0, min(int(cap), ESTIMATE_CAP))
        key = (sql.text, tuple(sql.params))
        known = known_counts.get(key, limit)
        if known is not None:
            return known
        found = int(conn.execute(f"SELECT COUNT(*) FROM ({sql.text} LIMIT {limit})", sql.params).fetchone()[0])
        known_counts.put(key, found, limit)
        return found

    return estimate


def _version(row: tuple[Any, ...]) -> Version:
    return Version(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6])


class SqliteStore:
    """Store on ``<data_dir>/yidang.db``."""

    kind = "sqlite"

    def __init__(self, data_dir: str | Path) -> None:
        self.path = Path(data_dir) / "yidang.db"
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._local = threading.local()
        self._thread_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self.counts = DriverCounts()
        self._in_flight = 0
        """Worker-thread calls still running on a connection: :meth:`close` waits for them (closing a
        connection another thread is using crashes the process)."""

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread, counted until the thread returns (also when the awaiting
        task is cancelled and the thread runs on)."""

        def tracked() -> T:
            try:
                return fn(*args)
            finally:
                with self._conns_lock:
                    self._in_flight -= 1

        with self._conns_lock:
            self._in_flight += 1
        return await asyncio.to_thread(tracked)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in PRAGMAS:
            conn.execute(pragma)
        return conn

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = self._connect()
            # worker processes starting together create the schema one after the other: wait here
            # (start-up only; afterwards writers never block the event loop, see _begin)
            self._writer.execute("PRAGMA busy_timeout=30000")
            for statement in ddl():
                self._writer.execute(statement)
            self._writer.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            self._writer.execute("PRAGMA busy_timeout=0")
            self._reader = self._connect()
            # checkpoints (which fsync) run beside the writer, not inside its commits
            self._writer.execute("PRAGMA wal_autocheckpoint=0")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the embedded store at {self.path}: {exc}") from exc
        self._checkpoint_conn: sqlite3.Connection | None = self._connect()
        self._checkpointer: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(
            self._checkpoint_loop(self._checkpoint_conn))

    async def _checkpoint_loop(self, conn: sqlite3.Connection) -> None:
        """Copy the WAL into the database in a worker thread once it has grown, so a commit never
        waits for a checkpoint's fsync; readers and the writer carry on meanwhile (PASSIVE).

        A PASSIVE checkpoint never makes the WAL start over while the writer keeps appending: SQLite
        rewinds it only when a write begins after every frame was copied back. Under a steady stream
        of large transactions (a data-set ingest) that moment never comes and the WAL grew without
        bound (24 GB for 500,000 lab rows). So once it passes :data:`WAL_RESTART_BYTES` the
        checkpoint runs with this process's write lock held and truncates the WAL (TRUNCATE waits up
        to the busy timeout for other processes' writers and readers, else it is retried later)."""
        wal = self.path.with_name(self.path.name + "-wal")
        conn.execute("PRAGMA busy_timeout=2000")
        try:
            while True:
                await asyncio.sleep(CHECKPOINT_INTERVAL)
                try:
                    size = wal.stat().st_size if wal.exists() else 0
                    if size > WAL_RESTART_BYTES:
                        async with self._write_lock:
                            await self._in_thread(conn.execute, "PRAGMA wal_checkpoint(TRUNCATE)")
                    elif size > CHECKPOINT_WAL_BYTES:
                        await self._in_thread(conn.execute, "PRAGMA wal_checkpoint(PASSIVE)")
                except (OSError, sqlite3.Error) as exc:
                    log.warning("WAL checkpoint failed, will retry: %s", exc)
        except asyncio.CancelledError:
            pass  # its connection is closed by close(), once no thread uses it

    async def close(self) -> None:
        checkpointer = getattr(self, "_checkpointer", None)
        if checkpointer is not None:
            checkpointer.cancel()
            await asyncio.gather(checkpointer, return_exceptions=True)
            self._checkpointer = None
        deadline = time.monotonic() + CLOSE_WAIT_S
        while self._in_flight and time.monotonic() < deadline:  # a search or checkpoint still in a thread
            await asyncio.sleep(0.01)
        checkpoint_conn = getattr(self, "_checkpoint_conn", None)
        if checkpoint_conn is not None:
            checkpoint_conn.close()
            self._checkpoint_conn = None
        if self._writer is not None:
            # another process may still read: then its close or the next checkpoint finishes the job
            with contextlib.suppress(sqlite3.Error):
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for conn in (self._writer, self._reader, *self._thread_conns):
            if conn is not None:
                conn.close()
        self._writer = self._reader = None
        self._thread_conns.clear()

    async def ping(self) -> bool:
        try:
            self._conn().execute("SELECT 1").fetchone()
            return True
        except (sqlite3.Error, StoreUnavailable):
            return False

    def _conn(self) -> sqlite3.Connection:
        if self._reader is None:
            raise StoreUnavailable("the embedded store is not open")
        return self._reader

    def _thread_conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._conns_lock:
                self._thread_conns.append(conn)
        return conn

    # --- reads --------------------------------------------------------------------------------

    async def read(self, type_: str, id_: str) -> Version | None:
        row = self._conn().execute(
            f"SELECT {VERSION_COLS} FROM versions WHERE type = ? AND id = ? ORDER BY version DESC LIMIT 1",
            (type_, id_),
        ).fetchone()
        return _version(row) if row else None

    async def current_holds(self, type_: str, id_: str, version: int, where: Condition) -> bool | None:
        """One statement on this thread (as reads): the resource's row by primary key, each entry test
        by one index seek where the test pins the value (see :func:`.compile.holds_sql`)."""
        sql = holds_sql(type_, id_, version, where)
        row = self._conn().execute(sql.text, sql.params).fetchone()
        return None if row is None else bool(row[0])

    async def read_holding(self, type_: str, id_: str, where: Condition) -> tuple[Version | None, bool | None]:
        """One statement: the newest version, and ``where`` decided as :meth:`current_holds` does."""
        text, params = read_holding_sql(type_, where)
        row = self._conn().execute(text, (*params, type_, id_)).fetchone()
        if row is None:
            return None, None
        return _version(row[:7]), None if row[7] is None else bool(row[7])

    async def vread(self, type_: str, id_: str, version: int) -> Version | None:
        row = self._conn().execute(
            f"SELECT {VERSION_COLS} FROM versions WHERE type = ? AND id = ? AND version = ?",
            (type_, id_, version),
        ).fetchone()
        return _version(row) if row else None

    async def history(self, query: HistoryQuery) -> list[Version]:
        return await self._in_thread(self._history, query)

    def _history(self, q: HistoryQuery) -> list[Version]:
        where: list[str] = []
        params: list[object] = []
        if q.type is not None:
            where.append("v.type = ?")
            params.append(q.type)
        if q.id is not None:
            where.append("v.id = ?")
            params.append(q.id)
        if q.since is not None:
            where.append("v.lu >= ?")
            params.append(q.since)
        if q.at is not None:
            where.append(
                "v.lu <= ? AND v.version = (SELECT MAX(w.version) FROM versions w "
                "WHERE w.type = v.type AND w.id = v.id AND w.lu <= ?)"
            )
            params.extend([q.at, q.at])
        if q.before is not None:
            lu, t, i, ver = q.before
            where.append("(v.lu, v.type, v.id, v.version) < (?, ?, ?, ?)")
            params.extend([lu, t, i, ver])
        sql = f"SELECT {', '.join('v.' + c for c in VERSION_COLS.split(', '))} FROM versions v"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY v.lu DESC, v.type DESC, v.id DESC, v.version DESC LIMIT ?"
        params.append(q.count)
        return [_version(r) for r in self._thread_conn().execute(sql, params)]

    async def search(self, query: Query) -> SearchResult:
        check_query(query)
        return await self._in_thread(self._search, query)

    @staticmethod
    def _every_type(conn: sqlite3.Connection, query: Query) -> Query:
        """``Query.types`` empty means every type; entries are keyed by ``Type.param``, so list the
        types present (a skip-scan of ``resources_type_lu``: one index seek per distinct type)."""
        if query.types:
            return query
        rows = conn.execute(
            "WITH RECURSIVE t(type) AS (SELECT MIN(type) FROM resources UNION ALL "
            "SELECT (SELECT MIN(type) FROM resources WHERE type > t.type) FROM t WHERE t.type IS NOT NULL) "
            "SELECT type FROM t WHERE type IS NOT NULL"
        )
        return replace(query, types=tuple(r[0] for r in rows))

    def _search(self, query: Query) -> SearchResult:
        conn = self._thread_conn()
        compiled = compile_query(self._every_type(conn, query), estimator(conn, self.counts))
        total = None
        if compiled.count is not None:
            total = conn.execute(compiled.count.text, compiled.count.params).fetchone()[0]
        if query.count == 0:
            return SearchResult([], total, None)
        rows = conn.execute(compiled.select.text, compiled.select.params).fetchall()
        more = len(rows) > query.count
        rows = rows[: query.count]
        versions = []
        for row in rows:
            body = conn.execute(
                "SELECT body FROM versions WHERE type = ? AND id = ? AND version = ?", (row[1], row[2], row[3])
            ).fetchone()[0]
            versions.append(Version(row[1], row[2], row[3], row[4], False, "PUT", body))
        next_after = None
        if more and rows:
            last = rows[-1]
            next_after = (*last[5:], last[1], last[2])
        return SearchResult(versions, total, next_after)

    async def query_plan(self, query: Query) -> StorePlan:
        check_query(query)
        return await self._in_thread(self._query_plan, query)

    def _query_plan(self, query: Query) -> StorePlan:
        """The statements :meth:`_search` runs for ``query`` (compiled the same way, with the same
        estimates), their bound values and SQLite's ``EXPLAIN QUERY PLAN`` of each."""
        conn = self._thread_conn()
        compiled = compile_query(self._every_type(conn, query), estimator(conn, self.counts))
        statements = [("page", compiled.select)] if query.count > 0 else []
        if compiled.count is not None:
            statements.append(("total", compiled.count))
        sections: list[tuple[str, str]] = []
        for name, sql in statements:
            rows = conn.execute("EXPLAIN QUERY PLAN " + sql.text, sql.params).fetchall()
            depth: dict[int, int] = {0: -1}
            tree: list[str] = []
            for node, parent, _, detail in rows:
                depth[node] = depth.get(parent, -1) + 1
                tree.append("  " * depth[node] + str(detail))
            sections += [(f"{name} SQL", sql.text), (f"{name} bound values", repr(sql.params)),
                         (f"{name} EXPLAIN QUERY PLAN", "\n".join(tree))]
        if compiled.sides:  # which side each chain/_has was answered from (server.search.cost)
            sections.insert(0, ("chains and _has", "\n".join(compiled.sides)))
        return StorePlan(self.kind, tuple(sections))

    def explain(self, query: Query) -> list[str]:
        """SQLite's query plan for ``query`` (used by tests and benchmarks to prove index use)."""
        compiled = compile_query(self._every_type(self._conn(), query), estimator(self._conn(), self.counts))
        rows = self._conn().execute("EXPLAIN QUERY PLAN " + compiled.select.text, compiled.select.params)
        return [r[3] for r in rows]

    def check_document(self, type_: str, body: bytes, entries: Sequence[Entry]) -> None:
        """No per-record limit short of SQLite's 1 GB: the request body limit is the bound here."""

    async def stats(self) -> dict[str, Any]:
        conn = self._conn()
        by_type = dict(conn.execute("SELECT type, COUNT(*) FROM resources WHERE deleted = 0 GROUP BY type"))
        versions = conn.execute("SELECT COUNT(*) FROM versions").fetchone()[0]
        return {"resources": by_type, "versions": versions}

    # --- key-value records (server.stores.kv) -------------------------------------------------

    async def kv_get(self, space: str, key: str) -> dict[str, Any] | None:
        row = self._conn().execute(
            "SELECT value, expires FROM kv WHERE space = ? AND key = ?", (kv.check_space(space), key)
        ).fetchone()
        if row is None or not kv.live(row[1], kv.now_us()):
            return None
        return kv.decode(row[0])

    async def kv_put(self, space: str, key: str, value: dict[str, Any], *, create_only: bool = False,
                     expires: int | None = None) -> bool:
        """One upsert inside a ``BEGIN IMMEDIATE`` write (serialised across processes); with
        ``create_only`` its ``DO UPDATE`` applies only over an expired row, so the row count says
        whether this call created the record."""
        params = (kv.check_space(space), key, kv.encode(value), expires)
        upsert = ("INSERT INTO kv (space, key, value, expires) VALUES (?, ?, ?, ?) ON CONFLICT (space, key) "
                  "DO UPDATE SET value = excluded.value, expires = excluded.expires")

        def put(conn: sqlite3.Connection, now: int) -> bool:
            if create_only:
                return conn.execute(upsert + " WHERE kv.expires IS NOT NULL AND kv.expires < ?",
                                    (*params, now)).rowcount == 1
            conn.execute(upsert, params)
            return True

        return await self._kv_write(put)

    async def kv_delete(self, space: str, key: str) -> bool:
        """False also when the record had expired (it was already absent to every reader)."""
        where = (kv.check_space(space), key)

        def delete(conn: sqlite3.Connection, now: int) -> bool:
            row = conn.execute("SELECT expires FROM kv WHERE space = ? AND key = ?", where).fetchone()
            conn.execute("DELETE FROM kv WHERE space = ? AND key = ?", where)
            return row is not None and kv.live(row[0], now)

        return await self._kv_write(delete)

    async def kv_list(self, space: str) -> list[tuple[str, dict[str, Any]]]:
        kv.check_space(space)
        return await self._in_thread(self._kv_list, space)

    def _kv_list(self, space: str) -> list[tuple[str, dict[str, Any]]]:
        rows = self._thread_conn().execute(
            "SELECT key, value FROM kv WHERE space = ? AND (expires IS NULL OR expires >= ?) ORDER BY key",
            (space, kv.now_us()),
        )
        return [(key, kv.decode(value)) for key, value in rows]

    async def _kv_write(self, statement: Callable[[sqlite3.Connection, int], T]) -> T:
        """Run ``statement`` (given the writer and the time) as one write transaction, taken like a
        write session's (the process's write lock, then ``BEGIN IMMEDIATE``), and remove a batch of
        expired records in it."""
        if self._writer is None:
            raise StoreUnavailable("the embedded store is not open")
        conn = self._writer
        async with self._write_lock:
            await self._begin(conn)
            try:
                now = kv.now_us()
                result = statement(conn, now)
                conn.execute(
                    "DELETE FROM kv WHERE rowid IN (SELECT rowid FROM kv WHERE expires < ? LIMIT ?)",
                    (now, KV_PURGE_ROWS),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

    # --- writes -------------------------------------------------------------------------------

    @asynccontextmanager
    async def session(self) -> AsyncIterator[SqliteSession]:
        if self._writer is None:
            raise StoreUnavailable("the embedded store is not open")
        # let due background work (the WAL checkpoint) in first: an in-process caller that writes
        # session after session (yidang ingest/load --data-dir) otherwise never suspends
        await asyncio.sleep(0)
        async with self._write_lock:
            await self._begin(self._writer)
            session = SqliteSession(self._writer)
            try:
                yield session
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            else:
                try:
                    if session.pending() > COMMIT_IN_THREAD_ROWS:  # a thread that cannot be abandoned
                        await anyio.to_thread.run_sync(session.commit)
                    else:
                        session.commit()
                except sqlite3.Error:
                    self._writer.execute("ROLLBACK")
                    raise

    @staticmethod
    async def _begin(conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, waiting without blocking the event loop while another process writes."""
        delay, waited = 0.0005, 0.0
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise StoreUnavailable(f"the embedded store failed: {exc}") from exc
                if waited > BUSY_RETRY_SECONDS:
                    raise StoreUnavailable("the embedded store stayed locked by another process") from exc
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.004)  # poll briskly: another process commits within milliseconds


class SqliteSession:
    """A write session inside one ``BEGIN IMMEDIATE`` transaction.

    Version rows, search entries and sort keys are buffered and written with one ``executemany``
    per table when the session commits or before it next reads, which is what makes transaction
    Bundle ingest fast; the ``resources`` row is written at once (its ``rid`` keys the entries)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._versions: list[tuple[object, ...]] = []
        self._entries: dict[str, list[tuple[object, ...]]] = {}

    def pending(self) -> int:
        """Rows buffered for the next :meth:`flush`."""
        return len(self._versions) + sum(len(rows) for rows in self._entries.values())

    def commit(self) -> None:
        self.flush()
        self._conn.execute("COMMIT")

    def flush(self) -> None:
        conn = self._conn
        if self._versions:
            conn.executemany(f"INSERT INTO versions ({VERSION_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)", self._versions)
            self._versions.clear()
        for table, rows in self._entries.items():
            if rows:
                cols = ", ".join(TABLES[table])
                marks = ", ".join("?" * (len(TABLES[table]) + 2))
                conn.executemany(f"INSERT INTO idx_{table} (rid, param, {cols}) VALUES ({marks})", rows)
        self._entries.clear()

    async def read(self, type_: str, id_: str) -> Version | None:
        self.flush()
        row = self._conn.execute(
            f"SELECT {VERSION_COLS} FROM versions WHERE type = ? AND id = ? ORDER BY version DESC LIMIT 1",
            (type_, id_),
        ).fetchone()
        return _version(row) if row else None

    async def find(self, type_: str, where: Condition, limit: int) -> list[str]:
        check_condition(where)
        self.flush()
        sql = find_sql(type_, where, limit, estimator(self._conn))
        rows = self._conn.execute(sql.text, sql.params)
        return [r[0] for r in rows]

    async def lock(self, key: str) -> None:
        """Nothing to do: the session's ``BEGIN IMMEDIATE`` already excludes every other writer."""

    async def write(self, write: Write) -> None:
        v = write.version
        conn = self._conn
        if write.expected is None:
            try:
                inserted = conn.execute(
                    "INSERT INTO resources (type, id, version, lu, deleted) VALUES (?, ?, ?, ?, ?)",
                    (v.type, v.id, v.version, v.last_updated, int(v.deleted)),
                ).lastrowid
                assert inserted is not None  # an INSERT of one row always sets lastrowid
                rid = inserted
            except sqlite3.IntegrityError:
                row = conn.execute("SELECT version FROM resources WHERE type = ? AND id = ?", (v.type, v.id)).fetchone()
                raise VersionConflict(v.type, v.id, row[0] if row else None) from None
        else:
            row = conn.execute(
                "SELECT rid, version FROM resources WHERE type = ? AND id = ?", (v.type, v.id)
            ).fetchone()
            current = row[1] if row else None
            if current != write.expected:
                raise VersionConflict(v.type, v.id, current)
            rid = int(row[0])
            self.flush()
            conn.execute(
                "UPDATE resources SET version = ?, lu = ?, deleted = ? WHERE rid = ?",
                (v.version, v.last_updated, int(v.deleted), rid),
            )
            self._delete_entries(rid)
        self._versions.append((v.type, v.id, v.version, v.last_updated, int(v.deleted), v.method, v.body))
        if not v.deleted:
            self._buffer_entries(rid, v.type, write.entries)

    async def append(self, writes: Sequence[Write]) -> None:
        """One ``executemany`` per table: ``rid`` values are given (the next after the highest, which
        ``BEGIN IMMEDIATE`` keeps stable) instead of read back row by row; existing ids are looked
        for first, so a conflict writes nothing. The rows are written at once, on the event loop
        (``executemany`` binding holds the GIL row by row, so a worker thread would only contend for
        it): callers pass batches of a few hundred rows and yield between them."""
        if not writes:
            return
        conn = self._conn
        self.flush()
        by_type: dict[str, list[str]] = {}
        for w in writes:
            by_type.setdefault(w.version.type, []).append(w.version.id)
        for type_, ids in by_type.items():
            for start in range(0, len(ids), APPEND_CHECK_IDS):
                chunk = ids[start:start + APPEND_CHECK_IDS]
                found = conn.execute(f"SELECT id, version FROM resources WHERE type = ? AND id IN "
                                     f"({', '.join('?' * len(chunk))})", (type_, *chunk)).fetchone()
                if found is not None:
                    raise VersionConflict(type_, found[0], found[1])
            if len(set(ids)) != len(ids):
                raise VersionConflict(type_, next(i for i in ids if ids.count(i) > 1), None)
        top = conn.execute("SELECT COALESCE(MAX(rid), 0) FROM resources").fetchone()[0]
        rows = []
        buffers = self._entries
        names: dict[tuple[str, str], str] = {}
        for n, w in enumerate(writes, start=top + 1):
            v = w.version
            rows.append((n, v.type, v.id, v.version, v.last_updated, int(v.deleted)))
            self._versions.append((v.type, v.id, v.version, v.last_updated, int(v.deleted), v.method, v.body))
            if v.deleted:
                continue
            if sum(e.table == "date" for e in w.entries) > 1:  # may need hull rows
                self._buffer_entries(n, v.type, w.entries)
                continue
            for e in w.entries:
                name = names.get((v.type, e.param))
                if name is None:
                    name = names[(v.type, e.param)] = f"{v.type}.{e.param}"
                buffer = buffers.get(e.table)
                if buffer is None:
                    buffer = buffers[e.table] = []
                buffer.append((n, name, *e.values))
        conn.executemany("INSERT INTO resources (rid, type, id, version, lu, deleted) VALUES (?, ?, ?, ?, ?, ?)", rows)
        self.flush()  # here, on the event loop: a worker thread at commit would fight it for the GIL row by row

    async def reindex(self, type_: str, id_: str, version: int, entries: Sequence[Entry]) -> bool:
        row = self._conn.execute(
            "SELECT rid, version, deleted FROM resources WHERE type = ? AND id = ?", (type_, id_)
        ).fetchone()
        if row is None or row[1] != version or row[2]:
            return False
        self.flush()
        self._delete_entries(row[0])
        self._buffer_entries(row[0], type_, entries)
        return True

    def _delete_entries(self, rid: int) -> None:
        for table in TABLES:
            self._conn.execute(f"DELETE FROM idx_{table} WHERE rid = ?", (rid,))

    def _buffer_entries(self, rid: int, type_: str, entries: Sequence[Entry]) -> None:
        """Queue the entry rows of ``rid`` (written by :meth:`flush`)."""
        entries = list(entries)
        dates: dict[str, list[tuple[object, ...]]] = {}
        for e in entries:
            self._entries.setdefault(e.table, []).append((rid, f"{type_}.{e.param}", *e.values))
            if e.table == "date":
                dates.setdefault(e.param, []).append(e.values)
        for param, ranges in dates.items():
            if len(ranges) > 1:  # the hull of several values (see schema.HULL)
                hull = (min(r[0] for r in ranges), max(r[1] for r in ranges))  # type: ignore[type-var]
                self._entries["date"].append((rid, f"{type_}.{param}{HULL}", *hull))

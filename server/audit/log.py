"""The audit log of a running server: one AuditEvent per request, never lost.

Per request (the audit sink the endpoint calls after the handler, before the response is sent):
the event is built (pure, :mod:`.events`), written to the spool (:mod:`.spool`; fsync'd too, in
group commits, with ``audit_fsync``) and only then does the request answer, so an answered
request's event survives kill -9.
A writer task moves spooled events into the store in batches (one session each, chained, see
:mod:`.ledger`); when the store fails it keeps them (spooled and in memory) and retries with
back-off; at start-up it replays the spool segments a dead process left behind.

Load shedding: the backlog (spooled, not yet stored) is bounded; a request arriving when it is full
is answered 503 with ``Retry-After`` before it runs (and is not audited: it did nothing). Events of
requests already running are always recorded, so the bound is exceeded at most by the requests in
flight. AuditEvents are append-only through the API: create, update, patch and delete of one are 405.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from server.audit import ledger
from server.audit.events import authentication_event, rest_event
from server.audit.index import AuditIndexer
from server.audit.keys import AuditKey, load_key
from server.audit.spool import Segment, Spool, orphans
from server.errors import MethodNotAllowed, StoreUnavailable
from server.fhir.instant import now_us
from server.hooks import Access
from server.search.index import Indexer
from server.settings import Settings
from server.stores.base import Store

log = logging.getLogger("yidang.audit")

BUSY = "The audit log is behind (its queue is full); retry shortly"
WRITES = frozenset({"create", "update", "patch", "delete"})
MAX_BACKOFF_S = 5.0


class EventIds:
    """Time-ordered UUIDs (version 7, RFC 9562: the Unix time in milliseconds, then 74 random bits)
    for the events. Events are stored in the order they happen, so their ids land at the end of the
    stores' id indexes instead of at random places in them (a random id dirties another index page
    for every event of a batch, which grows with the table). The random bits come from
    ``os.urandom`` 256 ids at a time; a forked child refills its own pool (the pid changes), so no
    two processes hand out the same id."""

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0
        self._pid = -1

    def __call__(self) -> str:
        if self._at >= len(self._pool) or self._pid != os.getpid():
            self._pool, self._at, self._pid = os.urandom(16 * 256), 0, os.getpid()
        raw = bytearray(self._pool[self._at:self._at + 16])
        self._at += 16
        raw[0:6] = (time.time_ns() // 1_000_000).to_bytes(6, "big")
        raw[6] = 0x70 | (raw[6] & 0x0F)
        raw[8] = 0x80 | (raw[8] & 0x3F)
        h = raw.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def enabled(settings: Settings) -> bool:
    """``audit`` when set; otherwise on exactly when authorization is ``smart``."""
    value = getattr(settings, "audit", None)
    return settings.auth == "smart" if value is None else bool(value)


def spool_dir(settings: Settings) -> Path:
    configured = getattr(settings, "audit_spool_dir", None)
    return Path(configured) if configured else Path(settings.data_dir) / "audit"


class AuditLog:
    def __init__(self, settings: Settings, store: Store, indexer: Indexer) -> None:
        self.settings = settings
        self.store = store
        self.indexer = AuditIndexer(indexer)
        self.base = settings.base_url.rstrip("/")
        self.directory = spool_dir(settings)
        self.spool = Spool(self.directory, fsync=getattr(settings, "audit_fsync", False))
        self.limit = int(getattr(settings, "audit_queue_size", 10_000))
        self.batch = int(getattr(settings, "audit_batch_size", 500))
        self.interval = float(getattr(settings, "audit_batch_interval", 0.2))
        self.checkpoint_every = int(getattr(settings, "audit_checkpoint_every", 1000))
        self.checkpoint_seconds = float(getattr(settings, "audit_checkpoint_seconds", 300.0))
        self.backlog: deque[tuple[Segment, dict[str, Any]]] = deque()
        self.stored = 0
        self.failures = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._start_lock = asyncio.Lock()
        self._key: AuditKey | None = None
        self._checkpointed = (0, 0.0)
        self.closing = False
        self.new_id = EventIds()

    # --- hooks ------------------------------------------------------------------------------------

    async def admit(self, access: Access) -> None:
        """Access policy: AuditEvents are written only by the server; shed load when behind."""
        if access.resource_type == "AuditEvent" and access.interaction in WRITES:
            raise MethodNotAllowed(f"AuditEvents are append-only and written by the server: {access.interaction} "
                                   "is not allowed")
        if len(self.backlog) >= self.limit:
            raise StoreUnavailable(BUSY, headers={"Retry-After": "1"})

    async def sink(self, access: Access) -> None:
        """Audit sink: the request's event is durable when this returns."""
        if access.status == 503 and access.outcome == BUSY:
            return
        await self.record_event(rest_event(access, event_id=self.new_id(), recorded=now_us(), base=self.base))

    async def authentication(self, *, success: bool, principal: object | None = None, subject: str | None = None,
                             address: str | None = None, description: str | None = None,
                             logout: bool = False) -> None:
        """Record a token issued (``success``, with the principal it was issued for), a failed
        authentication (``subject``: the client id or user name tried, ``description``: why), or a
        revocation (``logout``). For the token endpoints (``request.app.state.audit``)."""
        event = authentication_event(event_id=self.new_id(), recorded=now_us(), base=self.base,
                                     principal=principal, address=address, success=success,
                                     description=description, subject=subject, logout=logout)
        await self.record_event(event)

    async def record_event(self, event: dict[str, Any]) -> None:
        if not self._started:
            await self.start()
        segment = await self.spool.append(event)
        self.backlog.append((segment, event))
        if len(self.backlog) >= self.batch:
            self._wake.set()

    # --- life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Replay what dead processes spooled, then run the writer (idempotent; also on first use)."""
        async with self._start_lock:
            if self._started:
                return
            for segment, found in orphans(self.directory):
                if found:
                    log.info("audit: replaying %d spooled event(s) from %s", len(found), segment.path.name)
                    self.backlog.extend((segment, event) for event in found)
                else:
                    segment.remove()
            self._task = asyncio.create_task(self._writer(), name="audit-writer")
            self._started = True

    async def stop(self, timeout: float = 10.0) -> None:
        """Store what is queued (within ``timeout``); what is left stays spooled for the next start."""
        if self._task is None:
            return
        self.closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
        self.spool.close()
        self._task = None
        self._started = False

    async def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event is stored (tests, shutdown); False on timeout."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.backlog:
            self._wake.set()
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    # --- the writer -------------------------------------------------------------------------------

    async def _writer(self) -> None:
        delay = self.interval
        while True:
            if not self.backlog:
                if self.closing:
                    return
                self._wake.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=max(self.interval, 0.001) * 20)
                continue
            if len(self.backlog) < self.batch and not self.closing:
                await asyncio.sleep(self.interval)
            taken = [self.backlog[i] for i in range(min(self.batch, len(self.backlog)))]
            try:
                head = await ledger.append(self.store, self.indexer, [dict(event) for _, event in taken],
                                           dedupe=any(segment.replayed for segment, _ in taken))
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.failures += 1
                log.warning("audit: the store refused %d event(s) (%s); kept in the spool, retrying in %.1fs",
                            len(taken), error, delay)
                if self.closing:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2 + 0.05, MAX_BACKOFF_S)
                continue
            delay = self.interval
            for _ in taken:
                segment, _event = self.backlog.popleft()
                segment.stored += 1
            self.stored += len(taken)
            self._release({segment for segment, _ in taken})
            if head is not None:
                await self._maybe_checkpoint(head)

    def _release(self, segments: set[Segment]) -> None:
        idle = self.spool.rotate_if_idle()
        if idle is not None:
            segments.add(idle)
        for segment in segments:
            if segment.done():
                segment.remove()

    async def _maybe_checkpoint(self, head: ledger.Link) -> None:
        last_seq, last_time = self._checkpointed
        now = asyncio.get_running_loop().time()
        due = head.sequence // max(self.checkpoint_every, 1) > last_seq // max(self.checkpoint_every, 1) or \
            (now - last_time >= self.checkpoint_seconds and head.sequence != last_seq)
        if not due:
            return
        try:
            if self._key is None:
                self._key = await asyncio.to_thread(load_key, self.directory)
            assert self._key is not None
            await ledger.checkpoint(self.store, self._key, head)
            self._checkpointed = (head.sequence, now)
        except Exception as error:  # a missed checkpoint is made at the next batch
            log.warning("audit: checkpoint at %d failed: %s", head.sequence, error)


def install(app: Any, services: Any) -> AuditLog | None:
    """Wire the audit log into an app when auditing is on: the admission policy and the sink on the
    services' hooks, ``app.state.audit`` for the token endpoints, and start/stop in the lifespan."""
    settings: Settings = services.settings
    app.state.audit = None
    if not enabled(settings):
        return None
    if services.registry.get("AuditEvent", "purpose") is None:
        services.registry.add(ledger.PURPOSE)
    audit = AuditLog(settings, services.store, services.indexer)
    services.hooks.access_policies.append(audit.admit)
    services.hooks.audit_sinks.append(audit.sink)
    app.state.audit = audit
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(target: Any) -> AsyncIterator[Any]:
        async with inner(target) as state:
            await audit.start()
            try:
                yield state
            finally:
                await audit.stop()

    app.router.lifespan_context = lifespan
    return audit

"""The audit log of a running server: one AuditEvent per request, never lost.

Per request (the audit sink the endpoint calls after the handler, before the response is sent):
the event is built (pure, :mod:`.events`), written to the spool (:mod:`.spool`; fsync'd too, in
group commits, with ``audit_fsync``) and only then does the request answer, so an answered
request's event survives kill -9.

A writer task moves spooled events into the store in batches (one session each, chained, see
:mod:`.ledger`), reading them back from the spool. Storing an event costs about as much server CPU
as the read it records, so the writer gives way to requests: while requests keep arriving it lets
events wait in the spool, and stores them once no request has come for ``audit_batch_interval``
(the server is idle), at the latest ``audit_max_delay`` seconds after they were answered, or at once
when half the queue is used. Whoever reads AuditEvents (an AuditEvent read, search or history, a
compartment, ``_revinclude``, ``$everything``, bulk export, a batch) first waits until every event
answered before it is stored, so no reader misses one. When the store fails the writer keeps the
events spooled and retries with back-off; at start-up it replays the spool segments a dead process
left behind.

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
from server.audit.events import FACTS, authentication_event, facts, from_facts, rest_event
from server.audit.index import AuditIndexer
from server.audit.keys import AuditKey, load_key
from server.audit.spool import Segment, Spool, behind, drain_requested, orphans, request_drain, spooled_elsewhere
from server.errors import MethodNotAllowed, StoreUnavailable
from server.fhir.instant import now_us
from server.fhir.json import load_stored
from server.hooks import Access
from server.search.index import Indexer
from server.settings import Settings
from server.stores.base import Store

log = logging.getLogger("yidang.audit")

BUSY = "The audit log is behind (its queue is full); retry shortly"
WRITES = frozenset({"create", "update", "patch", "delete"})
MAX_BACKOFF_S = 5.0
MARKER_POLL_S = 0.05
"""How often a waiting writer looks at the drain marker (another process's reader may wait)."""
OTHERS_GRACE_S = 2.0
"""How long a reader waits for another process that makes no progress storing its events."""
READER_WAIT_S = 30.0
"""Longest a reader of AuditEvents waits for the events before it to be stored (then 503)."""


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


READS_ALL = frozenset({"search-system", "history-system", "batch", "transaction"})


def reads_audit_events(access: Access) -> bool:
    """Whether a request may read stored AuditEvents: of the type, across types, through a
    compartment or an include, ``$everything`` or a bulk export."""
    if access.resource_type == "AuditEvent" or (access.resource_type is None and access.interaction in READS_ALL):
        return True
    return ("AuditEvent" in access.path or "AuditEvent" in access.query or access.path.endswith("/*")
            or "$everything" in access.path or "$export" in access.path)


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
        self.limit = int(getattr(settings, "audit_queue_size", 100_000))
        self.batch = int(getattr(settings, "audit_batch_size", 500))
        self.interval = float(getattr(settings, "audit_batch_interval", 0.05))
        self.max_delay = float(getattr(settings, "audit_max_delay", 30.0))
        self.checkpoint_every = int(getattr(settings, "audit_checkpoint_every", 1000))
        self.checkpoint_seconds = float(getattr(settings, "audit_checkpoint_seconds", 300.0))
        self.queue: deque[Segment] = deque()
        """Segments with events not yet stored, oldest first (the writer reads them in order)."""
        self.appended = 0
        """Events spooled by this process (and replayed from dead ones), ever."""
        self.stored = 0
        """Of those, the ones in the store: the first ``stored`` of them, in order."""
        self._marks: deque[tuple[float, int]] = deque()
        """(loop time, number of the first event spooled at or after it), every ~0.1 s: how long the
        oldest waiting event has waited."""
        self._drain_to = 0
        self._drain_asked = drain_requested(self.directory)
        self.last_request = 0.0
        self.failures = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._start_lock = asyncio.Lock()
        self._key: AuditKey | None = None
        self._checkpointed = (0, 0.0)
        self.closing = False
        self.new_id = EventIds()

    @property
    def pending(self) -> int:
        """Events spooled and not yet stored."""
        return self.appended - self.stored

    # --- hooks ------------------------------------------------------------------------------------

    async def admit(self, access: Access) -> None:
        """Access policy: AuditEvents are written only by the server; shed load when behind; a
        request that may read AuditEvents first waits until those answered before it are stored."""
        if access.resource_type == "AuditEvent" and access.interaction in WRITES:
            raise MethodNotAllowed(f"AuditEvents are append-only and written by the server: {access.interaction} "
                                   "is not allowed")
        if self.pending >= self.limit:
            raise StoreUnavailable(BUSY, headers={"Retry-After": "1"})
        if not access.in_bundle and reads_audit_events(access) and not await self.drain_everywhere(READER_WAIT_S):
            raise StoreUnavailable("The audit log could not store the events that came before this request "
                                   "in time, so its answer would miss some; retry shortly",
                                   headers={"Retry-After": "5"})

    async def sink(self, access: Access) -> None:
        """Audit sink: the request's event is durable when this returns."""
        if access.status == 503 and access.outcome == BUSY:
            return
        event_id, recorded = self.new_id(), now_us()
        # the request's facts are spooled and the event is built by the writer, off the request's path
        record = facts(access, event_id=event_id, recorded=recorded)
        await self.record_event(record if record is not None else
                                rest_event(access, event_id=event_id, recorded=recorded, base=self.base))

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

    async def record_event(self, event: dict[str, Any] | list[Any]) -> None:
        """Spool an event, or the facts it is built from (:func:`~.events.facts`)."""
        if not self._started:
            await self.start()
        segment = self.spool.write(event)
        now = asyncio.get_running_loop().time()
        self._enqueue(segment, 1, now)
        self.last_request = now
        if self.pending * 2 >= self.limit:
            self._wake.set()
        await self.spool.sync()

    def _enqueue(self, segment: Segment, count: int, now: float) -> None:
        if not self.queue or self.queue[-1] is not segment:
            self.queue.append(segment)
        if not self._marks or now - self._marks[-1][0] >= 0.1:
            self._marks.append((now, self.appended))
        self.appended += count

    def waited(self, now: float) -> float:
        """Seconds the oldest event not yet stored has waited (0 when none waits)."""
        marks = self._marks
        while len(marks) > 1 and marks[1][1] <= self.stored:
            marks.popleft()
        return now - marks[0][0] if marks and self.pending else 0.0

    # --- life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Replay what dead processes spooled, then run the writer (idempotent; also on first use)."""
        async with self._start_lock:
            if self._started:
                return
            self.closing = False
            for segment in orphans(self.directory):
                if segment.written:
                    log.info("audit: replaying %d spooled event(s) from %s", segment.written, segment.path.name)
                    self._enqueue(segment, segment.written, float("-inf"))  # stored at once
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
        for segment in self.queue:  # what is stored goes; what is left is replayed by the next start
            if segment.done():
                segment.remove()
            elif segment.fd is not None:
                os.close(segment.fd)
                segment.fd = None
        self.queue.clear()
        self._marks.clear()
        self.appended = self.stored = self._drain_to = 0
        self._task = None
        self._started = False

    async def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every event spooled before this call is stored (readers of AuditEvents, tests,
        shutdown); False on timeout (the store refuses writes)."""
        target = self.appended
        if self.stored >= target:
            return True
        self._drain_to = max(self._drain_to, target)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.stored < target:
            self._wake.set()
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    async def drain_everywhere(self, timeout: float) -> bool:
        """:meth:`drain`, and the same of every other live process spooling into this directory (the
        worker processes of one server): they are asked through the drain marker, and their
        progress files tell when they have stored what they had spooled at this moment. Another
        process that stores nothing for :data:`OTHERS_GRACE_S` (its store refuses writes) is not
        waited for: its events stay spooled and are stored when it can; this process's own are."""
        others = spooled_elsewhere(self.directory, {segment.path for segment in self.queue})
        if not others:
            return await self.drain(timeout) if self.pending else True
        request_drain(self.directory)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if not await self.drain(timeout):
            return False
        state, changed = behind(others), loop.time()
        while state:
            now = loop.time()
            if now > deadline:
                return False
            if now - changed > OTHERS_GRACE_S:
                log.warning("audit: %d segment(s) of other processes are not being stored; answering without "
                            "waiting for them", len(state))
                return True
            await asyncio.sleep(0.01)
            found = behind(others)
            if found != state:
                state, changed = found, loop.time()
        return True

    # --- the writer -------------------------------------------------------------------------------

    def _urgent(self, now: float) -> bool:
        return (self.closing or self._drain_to > self.stored or self.pending * 2 >= self.limit
                or self.waited(now) >= self.max_delay)

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self.interval
        while True:
            if not self.pending:
                if self.closing:
                    return
                self._wake.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=max(self.interval, 0.001) * 20)
                continue
            now = loop.time()
            quiet = now - self.last_request
            asked = drain_requested(self.directory)
            if asked > self._drain_asked:  # a reader in another process waits for these events
                self._drain_asked = asked
                self._drain_to = max(self._drain_to, self.appended)
            if quiet < self.interval and not self._urgent(now):
                # requests keep coming: the events wait in the spool (they are safe there) until the
                # server is idle or the oldest has waited max_delay
                self._wake.clear()
                until = min(self.interval - quiet, self.max_delay - self.waited(now), MARKER_POLL_S)
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=max(until, 0.001))
                continue
            lines, taken = self._take(self.batch)
            if not lines:  # cannot happen while the counts hold; never spin on it
                log.error("audit: %d event(s) counted as waiting, none found in the spool", self.pending)
                self.stored = self.appended
                continue
            events = []
            for line in lines:
                try:
                    events.append(self._event(load_stored(line)))
                except (ValueError, TypeError):
                    log.warning("audit: an unreadable spool line was skipped (%d bytes)", len(line))
            try:
                head = await ledger.append(self.store, self.indexer, events,
                                           dedupe=any(segment.replayed for segment, _, _ in taken))
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.failures += 1
                log.warning("audit: the store refused %d event(s) (%s); kept in the spool, retrying in %.1fs",
                            len(events), error, delay)
                if self.closing:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2 + 0.05, MAX_BACKOFF_S)
                continue
            delay = self.interval
            for segment, count, offset in taken:
                segment.consume(count, offset)
            self.stored += len(lines)
            self._release()
            if head is not None:
                await self._maybe_checkpoint(head)

    def _event(self, spooled: Any) -> dict[str, Any]:
        """The AuditEvent of a spool line: itself, or built from its facts."""
        if isinstance(spooled, dict):
            return spooled
        if isinstance(spooled, list) and spooled and spooled[0] == FACTS:
            return from_facts(spooled, self.base)
        raise ValueError("neither an AuditEvent nor the facts of one")

    def _take(self, limit: int) -> tuple[list[bytes], list[tuple[Segment, int, int]]]:
        """Up to ``limit`` spooled lines not yet stored, oldest first, and per segment how many and
        the offset after them (committed only once they are stored)."""
        lines: list[bytes] = []
        taken: list[tuple[Segment, int, int]] = []
        for segment in self.queue:
            if len(lines) >= limit:
                break
            found, offset = segment.peek(limit - len(lines))
            if found:
                lines.extend(found)
                taken.append((segment, len(found), offset))
        return lines, taken

    def _release(self) -> None:
        """Delete the segments whose events are all stored (closing the current one first when it is)."""
        self.spool.rotate_if_idle()
        while self.queue and self.queue[0].done():
            self.queue.popleft().remove()

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

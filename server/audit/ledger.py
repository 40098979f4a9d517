"""AuditEvents in the store: appending a batch to the chain, checkpoints, walking and pruning.

Appends are serialised per store: the batch runs in one store session holding the lock
:data:`CHAIN_LOCK` (SQLite's ``BEGIN IMMEDIATE`` already excludes every other writer, in every
process; MongoDB's session lock is a lease across processes and servers). Inside it the chain head
is the newest AuditEvent by ``meta.lastUpdated``, which the writer keeps strictly increasing along
the chain, so no separate head record can drift from the events (a head record written outside the
session could not commit with them). Clients cannot write AuditEvents (405), so every stored
AuditEvent is a chain event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.audit.chain import GENESIS, Link, Walk, link_of, seal
from server.audit.events import instant
from server.audit.index import AuditIndexer
from server.audit.keys import AuditKey, message
from server.fhir.instant import now_us, to_instant
from server.fhir.json import dumps, load_stored
from server.search.index import Indexer
from server.search.model import Always, Condition, Query, ResourceTest, SortKey
from server.stores.base import Store, Version, Write

TYPE = "AuditEvent"
CHAIN_LOCK = "audit-chain"
SPACE = "audit"
"""Key-value space of checkpoints (``checkpoint-<sequence>``) and the prune anchor (``anchor``)."""
BY_TIME = SortKey("resource", "last_updated", "last_updated")
PURPOSE = {
    "resourceType": "SearchParameter", "url": "http://yidang.org/fhir/SearchParameter/AuditEvent-purpose",
    "name": "purpose", "status": "active", "code": "purpose", "base": ["AuditEvent"], "type": "token",
    "description": "The purpose of use of the event or of its requestor (as R5's AuditEvent purpose)",
    "expression": "AuditEvent.purposeOfEvent | AuditEvent.agent.purposeOfUse",
}
"""R4 has no ``purpose`` search parameter on AuditEvent; auditors search by it (issue 14)."""
PAGE = 1000
HEAD_PAGE = 20
APPEND_SLICE = 50
"""Events stored per ``Session.append`` call (~800 index rows: a few ms of the event loop on SQLite)."""


@dataclass(frozen=True, slots=True)
class Head:
    link: Link | None
    last_updated: int


async def head(store: Store) -> Head:
    """The newest chained AuditEvent (None when the chain is empty). AuditEvents without the chain
    extension (written by clients before auditing was on, or through a path that bypassed the 405)
    are passed over, so they can never restart the chain."""
    after: tuple[object, ...] | None = None
    newest = 0
    while True:
        result = await store.search(Query((TYPE,), sort=(SortKey("resource", "last_updated", "last_updated", True),),
                                          count=HEAD_PAGE, after=after))
        for row in result.rows:
            newest = max(newest, row.last_updated)
            link = link_of(load_stored(row.body)) if row.body is not None else None
            if link is not None:
                return Head(link, newest)
        if result.next_after is None or not result.rows:
            return Head(None, newest)
        after = result.next_after


async def anchor(store: Store) -> dict[str, Any] | None:
    return await store.kv_get(SPACE, "anchor")


async def append(store: Store, indexer: Indexer | AuditIndexer, events: Sequence[dict[str, Any]], *,
                 dedupe: bool = False) -> Link | None:
    """Chain and store ``events`` (dicts, changed in place: chain extension and meta) in one session;
    with ``dedupe`` events already stored under their id are skipped (a replayed spool). Returns the
    new head, None when nothing was written."""
    last: Link | None = None
    fast = indexer if isinstance(indexer, AuditIndexer) else AuditIndexer(indexer)
    # indexed before the chain lock is taken (neither meta nor the chain extension is indexed), so
    # worker processes index in parallel and hold the lock only to chain and write
    for event in events:
        event.pop("meta", None)
    entries = [fast.entries(event) for event in events]
    async with store.session() as session:
        await session.lock(CHAIN_LOCK)
        top = await head(store)
        if top.link is None:
            start = await anchor(store)
            previous, sequence = (str(start["hash"]), int(start["sequence"])) if start else (GENESIS, 0)
        else:
            previous, sequence = top.link.hash, top.link.sequence
        lu = top.last_updated
        writes: list[Write] = []
        for event, found in zip(events, entries, strict=True):
            if dedupe and await session.read(TYPE, str(event["id"])) is not None:
                continue
            sequence += 1
            lu = max(now_us(), lu + 1)
            last = seal(event, sequence, previous)
            previous = last.hash
            event["meta"] = {"versionId": "1", "lastUpdated": instant(lu)}
            version = Version(TYPE, str(event["id"]), 1, lu, False, "POST", dumps(event))
            writes.append(Write(version, found, None))
        # fresh ids (UUIDs): bulk inserts, no per-event compare-and-set; in slices, letting requests
        # run between them (the chain lock is held throughout, so the batch stays one append)
        for first in range(0, len(writes), APPEND_SLICE):
            if first:
                await asyncio.sleep(0)
            await session.append(writes[first:first + APPEND_SLICE])
    return last


async def checkpoint(store: Store, key: AuditKey, link: Link) -> None:
    """A signed record of the chain's hash at ``link.sequence``."""
    at = now_us()
    await store.kv_put(SPACE, f"checkpoint-{link.sequence:012d}", {
        "sequence": link.sequence, "hash": link.hash, "at": at, "key": key.key_id,
        "signature": key.sign(message("checkpoint", link.sequence, link.hash, at))})


async def events(store: Store, *, since: int | None = None, page: int = PAGE) -> AsyncIterator[Version]:
    """Every stored AuditEvent in chain order (oldest first), ``since`` a time (µs) if given."""
    after: tuple[object, ...] | None = None
    where: Condition = ResourceTest("last_updated", "ge", since) if since is not None else Always()
    while True:
        query = Query((TYPE,), where, sort=(BY_TIME,), count=page, after=after)
        result = await store.search(query)
        for row in result.rows:
            yield row
        if result.next_after is None or not result.rows:
            return
        after = result.next_after


@dataclass
class Report:
    count: int = 0
    seconds: float = 0.0
    broken: str | None = None
    head: Link | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.broken is None


async def verify(store: Store, key: AuditKey | None) -> Report:
    """Walk the chain from its anchor (or the first event) and name the first broken link; check the
    anchor's and the checkpoints' signatures and that the events at the checkpoints have their hash."""
    started = time.perf_counter()
    report = Report()
    start = await anchor(store)
    walk = Walk()
    if start is not None:
        if key is not None and not key.verify(message("anchor", int(start["sequence"]), str(start["hash"]),
                                                      int(start["at"])), str(start.get("signature", ""))):
            report.broken = "the prune anchor's signature is not valid (changed outside `yidang audit prune`?)"
            return report
        walk = Walk(start=int(start["sequence"]) + 1, previous=str(start["hash"]))
        report.notes.append(f"chain starts after sequence {start['sequence']} (pruned before "
                            f"{to_instant(int(start['before']))})")
    points = [value for name, value in await store.kv_list(SPACE) if name.startswith("checkpoint-")]
    walk.hashes = {int(p["sequence"]): "" for p in points}
    async for row in events(store):
        if row.body is None:
            continue
        if not walk.add(row.id, load_stored(row.body)):
            break
    report.count, report.broken, report.head = walk.count, walk.broken, walk.last
    if walk.unchained:
        report.notes.append(f"{walk.unchained} AuditEvent(s) stored before the chain began were passed over")
    if report.broken is None:
        for point in points:
            seq = int(point["sequence"])
            if seq < walk.start:
                continue
            if key is not None and point.get("key") == key.key_id and not key.verify(
                    message("checkpoint", seq, str(point["hash"]), int(point["at"])), str(point.get("signature"))):
                report.broken = f"the checkpoint at sequence {seq} has an invalid signature"
                break
            if walk.last is None or seq > walk.last.sequence:
                report.broken = (f"events after sequence {walk.last.sequence if walk.last else 0} are missing: "
                                 f"a signed checkpoint records sequence {seq}")
                break
            if walk.hashes.get(seq) != point["hash"]:
                report.broken = f"the event at sequence {seq} differs from its signed checkpoint"
                break
        else:
            report.notes.append(f"{len(points)} signed checkpoint(s) match")
    report.seconds = time.perf_counter() - started
    return report

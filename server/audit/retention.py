"""The retention job (``yidang audit prune``) and the SIEM export (``yidang audit export``).

Pruning removes a *prefix* of the chain (every event stored before the date: ``meta.lastUpdated``
grows along the chain), after recording a signed anchor (the last removed event's sequence and
hash) where the chain now starts; the prune itself is then appended to the chain as an AuditEvent
(DICOM 110101 Audit Log Used, action D). The Store protocol offers no way to erase versions, so
the removal is done here per store; it is the only code that deletes AuditEvents.
"""

from __future__ import annotations

import getpass
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

from server.audit import ledger
from server.audit.chain import link_of
from server.audit.events import DCM, agents, source
from server.audit.keys import AuditKey, message
from server.fhir.instant import now_us, to_instant
from server.fhir.json import canonical, load_stored
from server.search.index import Indexer
from server.search.model import Query, ResourceTest, SortKey
from server.stores.base import Store

LATEST_FIRST = SortKey("resource", "last_updated", "last_updated", True)


async def _expunge(store: Store, before: int) -> int:
    """Erase every AuditEvent (all versions and search entries) stored before ``before`` (µs)."""
    if store.kind == "sqlite":
        async with store.session() as opened:
            session: Any = opened  # SqliteSession: its connection inside BEGIN IMMEDIATE
            conn = session._conn
            rids = [r[0] for r in conn.execute("SELECT rid FROM resources WHERE type = ? AND lu < ?",
                                               (ledger.TYPE, before))]
            for rid in rids:
                session._delete_entries(rid)
            conn.execute("DELETE FROM resources WHERE type = ? AND lu < ?", (ledger.TYPE, before))
            conn.execute("DELETE FROM versions WHERE type = ? AND lu < ?", (ledger.TYPE, before))
            return len(rids)
    from server.stores.mongo.schema import HISTORY, RESOURCES

    mongo: Any = store
    db = mongo._db
    gone = await db[RESOURCES].delete_many({"type": ledger.TYPE, "lu": {"$lt": before}})
    await db[HISTORY].delete_many({"type": ledger.TYPE, "lu": {"$lt": before}})
    return int(gone.deleted_count)


async def prune(store: Store, indexer: Indexer, key: AuditKey, before: int, *, base: str = "") -> dict[str, Any]:
    """Remove the events stored before ``before``; returns what was done (also in the prune's AuditEvent)."""
    result = await store.search(Query((ledger.TYPE,), ResourceTest("last_updated", "lt", before),
                                      sort=(LATEST_FIRST,), count=ledger.HEAD_PAGE))
    removed, last = 0, None
    for row in result.rows:  # the newest chained event before the date
        last = link_of(load_stored(row.body)) if row.body is not None else None
        if last is not None:
            break
    if last is not None:
        at = now_us()
        await store.kv_put(ledger.SPACE, "anchor", {
            "sequence": last.sequence, "hash": last.hash, "before": before, "at": at, "key": key.key_id,
            "signature": key.sign(message("anchor", last.sequence, last.hash, at))})
        removed = await _expunge(store, before)
        for name, value in await store.kv_list(ledger.SPACE):
            if name.startswith("checkpoint-") and int(value["sequence"]) <= last.sequence:
                await store.kv_delete(ledger.SPACE, name)
    text = (f"pruned {removed} AuditEvent(s) stored before {to_instant(before)}"
            + (f"; the chain now starts after sequence {last.sequence}" if last else ""))
    operator = f"{getpass.getuser()}@{socket.gethostname()}"
    event: dict[str, Any] = {
        "resourceType": "AuditEvent", "id": str(uuid.uuid4()),
        "type": {"system": DCM, "code": "110101", "display": "Audit Log Used"},
        "subtype": [{"system": "http://yidang.org/fhir/CodeSystem/operation", "code": "audit-prune"}],
        "action": "D", "recorded": to_instant(now_us()), "outcome": "0", "outcomeDesc": text,
        "agent": [{"type": {"coding": [{"system": DCM, "code": "110150", "display": "Application"}]},
                   "who": {"display": "yidang audit prune"}, "name": operator, "requestor": True},
                  *agents(None, None, base)[-1:]],
        "source": source(base),
    }
    await ledger.append(store, indexer, [event])
    return {"removed": removed, "anchor": last.sequence if last else None, "description": text}


SYSLOG_FACILITY = 10
"""authpriv (security/authorization messages), RFC 5424 §6.2.1."""
ENTERPRISE = "32473"
"""The SD-ID enterprise number: 32473 is IANA's example number (RFC 5612); sites may map it."""


def _sd_value(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def syslog_line(event: dict[str, Any], *, host: str | None = None) -> str:
    """One RFC 5424 message: PRI (authpriv, info for success, warning otherwise), the event's
    time, host, app ``yidang``, msgid ``AuditEvent``, a structured-data element with the key fields,
    and the event's JSON as the message."""
    severity = 6 if event.get("outcome", "0") == "0" else 4
    link = link_of(event)
    subtype = (event.get("subtype") or [{}])[0].get("code", "-")
    params = {"id": event.get("id"), "type": (event.get("type") or {}).get("code"), "subtype": subtype,
              "action": event.get("action"), "outcome": event.get("outcome"),
              **({"sequence": link.sequence} if link else {})}
    sd = "[audit@" + ENTERPRISE + "".join(f' {k}="{_sd_value(v)}"' for k, v in params.items() if v is not None) + "]"
    host = (host or socket.gethostname() or "-").replace(" ", "")[:255]
    recorded = str(event.get("recorded") or "-")
    return f"<{SYSLOG_FACILITY * 8 + severity}>1 {recorded} {host} yidang - AuditEvent {sd} " \
           f"{canonical(event).decode('utf-8')}"


async def export(store: Store, *, since: int | None, fmt: str) -> AsyncIterator[str]:
    """The stored events (oldest first) as NDJSON or syslog lines."""
    host = socket.gethostname()
    async for row in ledger.events(store, since=since):
        if row.body is None:
            continue
        event = load_stored(row.body)
        yield canonical(event).decode("utf-8") if fmt == "ndjson" else syslog_line(event, host=host)

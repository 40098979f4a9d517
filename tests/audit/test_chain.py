"""``yidang audit verify|prune|export`` on both stores: an intact chain verifies; a changed, a deleted,
a reordered and a truncated event are each reported naming the link (exit 1); prune leaves a
signed anchor and a verifiable chain and is itself audited; export writes NDJSON and RFC 5424.

The chain is written through :func:`server.audit.ledger.append` (what the server's writer calls)
and tampered with straight in the database, as an attacker with store access would.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from typer.testing import CliRunner

from server.audit import ledger
from server.audit.chain import link_of, seal
from server.audit.cli import audit_app
from server.audit.keys import load_key
from server.fhir.json import dumps, load_stored
from server.search.index import Indexer
from server.search.registry import SearchRegistry
from server.stores.base import Store
from tests.conftest import database_uri

runner = CliRunner()


def event(n: int) -> dict[str, Any]:
    return {"resourceType": "AuditEvent", "id": str(uuid.uuid4()),
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
            "action": "R", "recorded": "2026-01-01T00:00:00Z", "outcome": "0",
            "outcomeDesc": f"event {n}", "source": {"observer": {"display": "test"}},
            "agent": [{"who": {"display": "t"}, "requestor": True}]}


@dataclass
class Chain:
    kind: str
    args: list[str]
    audit_dir: Path
    uri: str | None = None
    data_dir: Path | None = None

    def open(self) -> Store:
        if self.kind == "sqlite":
            from server.stores.sqlite import SqliteStore

            assert self.data_dir is not None
            return SqliteStore(self.data_dir)
        from server.stores.mongo import MongoStore

        assert self.uri is not None
        return MongoStore(self.uri)

    def run(self, coro: Any) -> Any:
        async def go() -> Any:
            store = self.open()
            await store.open()
            try:
                return await coro(store)
            finally:
                await store.close()

        return asyncio.run(go())

    def bodies(self) -> list[tuple[str, dict[str, Any]]]:
        """(id, event) in chain order."""
        async def read(store: Store) -> list[tuple[str, dict[str, Any]]]:
            return [(row.id, load_stored(row.body)) async for row in ledger.events(store) if row.body]

        out: list[tuple[str, dict[str, Any]]] = self.run(read)
        return out

    def replace(self, id_: str, body: dict[str, Any]) -> None:
        if self.kind == "sqlite":
            assert self.data_dir is not None
            with sqlite3.connect(self.data_dir / "yidang.db") as conn:
                conn.execute("UPDATE versions SET body = ? WHERE type = 'AuditEvent' AND id = ?", (dumps(body), id_))
            return
        db: Any = MongoClient(self.uri).get_default_database()
        for name in ("resources", "history"):
            db[name].update_many({"type": "AuditEvent", "id": id_}, {"$set": {"res": body}})

    def delete(self, id_: str) -> None:
        if self.kind == "sqlite":
            assert self.data_dir is not None
            with sqlite3.connect(self.data_dir / "yidang.db") as conn:
                conn.execute("DELETE FROM versions WHERE type = 'AuditEvent' AND id = ?", (id_,))
                conn.execute("DELETE FROM resources WHERE type = 'AuditEvent' AND id = ?", (id_,))
            return
        db: Any = MongoClient(self.uri).get_default_database()
        for name in ("resources", "history"):
            db[name].delete_many({"type": "AuditEvent", "id": id_})

    def verify(self) -> tuple[int, str]:
        result = runner.invoke(audit_app, ["verify", *self.args, "--audit-dir", str(self.audit_dir)])
        return result.exit_code, result.output


@pytest.fixture(params=["sqlite", "mongo"])
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chain]:
    """A store holding a chain of 12 events (3 batches) and a signed checkpoint at its head."""
    if request.param == "sqlite":
        made = Chain("sqlite", ["--data-dir", str(tmp_path / "store")], tmp_path / "audit", data_dir=tmp_path / "store")
    else:
        uri = database_uri(request.getfixturevalue("mongo_server_uri"), f"a_{uuid.uuid4().hex[:12]}")
        made = Chain("mongo", ["--mongodb-uri", uri], tmp_path / "audit", uri=uri)
    key = load_key(made.audit_dir)
    assert key is not None

    async def build(store: Store) -> None:
        indexer = Indexer(SearchRegistry())
        head = None
        for batch in range(3):
            head = await ledger.append(store, indexer, [event(batch * 4 + i) for i in range(4)])
        assert head is not None and head.sequence == 12
        await ledger.checkpoint(store, key, head)

    made.run(build)
    yield made
    if made.uri:
        MongoClient(made.uri).drop_database(MongoClient(made.uri).get_default_database().name)


def test_an_intact_chain_verifies(chain: Chain) -> None:
    code, out = chain.verify()
    assert code == 0, out
    assert "12 event(s) checked" in out and "events/s" in out and "chain intact up to sequence 12" in out
    assert "1 signed checkpoint(s) match" in out


def test_a_changed_event_is_named(chain: Chain) -> None:
    id_, body = chain.bodies()[4]
    chain.replace(id_, {**body, "outcome": "8"})
    code, out = chain.verify()
    assert code == 1
    assert f"AuditEvent/{id_} (sequence 5) was changed" in out


def test_a_deleted_event_is_a_gap(chain: Chain) -> None:
    id_, _ = chain.bodies()[4]
    chain.delete(id_)
    code, out = chain.verify()
    assert code == 1
    assert "events 5..5 are missing" in out


def test_reordered_events_break_the_next_link(chain: Chain) -> None:
    """An attacker swaps events 5 and 6 and recomputes their own chain fields: event 7 still names
    the old 6th hash."""
    rows = chain.bodies()
    (id5, e5), (id6, e6), (id7, _) = rows[4], rows[5], rows[6]
    previous = link_of(rows[3][1]).hash  # type: ignore[union-attr]
    new5 = {**e6, "id": id5}
    first = seal(new5, 5, previous)
    new6 = {**e5, "id": id6}
    seal(new6, 6, first.hash)
    chain.replace(id5, new5)
    chain.replace(id6, new6)
    code, out = chain.verify()
    assert code == 1
    assert f"AuditEvent/{id7} (sequence 7) names previous hash" in out


def test_a_truncated_tail_is_caught_by_the_checkpoint(chain: Chain) -> None:
    id_, _ = chain.bodies()[-1]
    chain.delete(id_)
    code, out = chain.verify()
    assert code == 1
    assert "events after sequence 11 are missing: a signed checkpoint records sequence 12" in out


def test_an_event_inserted_outside_the_chain_is_named(chain: Chain) -> None:
    async def insert(store: Store) -> str:
        from server.stores.base import Version, Write

        forged = event(99)
        forged["meta"] = {"versionId": "1"}
        async with store.session() as session:
            await session.write(Write(Version("AuditEvent", forged["id"], 1, int(time.time() * 1e6), False, "POST",
                                              dumps(forged)), [], None))
        return str(forged["id"])

    forged = chain.run(insert)
    code, out = chain.verify()
    assert code == 1 and f"AuditEvent/{forged} carries no chain extension" in out


def test_prune_anchors_the_chain_and_is_audited(chain: Chain) -> None:
    rows = chain.bodies()
    cut = chain.run(lambda store: _lu_of(store, rows[7][0]))  # events 1..7 are before the 8th
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cut / 1e6)) + f".{cut % 1_000_000:06d}+00:00"
    result = runner.invoke(audit_app, ["prune", "--before", when, *chain.args, "--audit-dir", str(chain.audit_dir)])
    assert result.exit_code == 0, result.output
    assert "pruned 7 AuditEvent(s)" in result.output and "starts after sequence 7" in result.output
    after = chain.bodies()
    assert [link_of(e).sequence for _, e in after] == list(range(8, 14))  # type: ignore[union-attr]
    assert after[-1][1]["type"]["code"] == "110101" and after[-1][1]["action"] == "D"
    code, out = chain.verify()
    assert code == 0, out
    assert "chain starts after sequence 7" in out and "6 event(s) checked" in out
    # the anchor cannot be moved without the key
    async def forge(store: Store) -> None:
        anchor = await store.kv_get("audit", "anchor")
        assert anchor is not None
        await store.kv_put("audit", "anchor", {**anchor, "sequence": 8})

    chain.run(forge)
    code, out = chain.verify()
    assert code == 1 and "anchor's signature is not valid" in out


async def _lu_of(store: Store, id_: str) -> int:
    version = await store.read("AuditEvent", id_)
    assert version is not None
    return version.last_updated


def test_export_ndjson_and_syslog(chain: Chain, tmp_path: Path) -> None:
    result = runner.invoke(audit_app, ["export", *chain.args])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 12 and [json.loads(line)["outcomeDesc"] for line in lines] == [
        f"event {n}" for n in range(12)]
    out = tmp_path / "audit.log"
    result = runner.invoke(audit_app, ["export", "--format", "syslog", "-o", str(out), *chain.args])
    assert result.exit_code == 0 and "12 event(s) written" in result.output
    syslog = out.read_text().splitlines()
    pattern = re.compile(r'^<86>1 \S+ \S+ yidang - AuditEvent \[audit@32473 id="[^"]+" type="rest" subtype="-" '
                         r'action="R" outcome="0" sequence="(\d+)"\] \{.*\}$')
    assert [int(pattern.match(line).group(1)) for line in syslog] == list(range(1, 13))  # type: ignore[union-attr]
    result = runner.invoke(audit_app, ["export", "--since", "2999-01-01", *chain.args])
    assert result.exit_code == 0 and result.output == ""
    result = runner.invoke(audit_app, ["export", "--format", "csv", *chain.args])
    assert result.exit_code == 2

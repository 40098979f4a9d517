"""What the MongoDB server behind the store answers correctly, detected once at ``open()``.

The store must be right on real MongoDB and on the nx-27017 test server (/work/shared/MONGO.md),
which gets several of MongoDB's efficient query forms wrong *silently* (it returns nothing instead
of failing). So :meth:`~server.stores.mongo.MongoStore.open` runs a few probe queries in the
scratch ``probe`` collection, on documents only this probe writes (every value carries a fresh
marker, so concurrent start-ups do not see each other's), and compiles the efficient form of a
query only where the server answered its probe correctly:

* ``in_elem_match`` — ``{arr: {$elemMatch: {p: …, f: {$in: [...]}}}}`` on an *indexed* array of
  sub-documents. When True, a token/string/… parameter with several values is one ``$elemMatch``
  with ``$in`` (one bounded scan of the table's compound index per value on MongoDB) instead of an
  ``$or`` of up to 10,000 ``$elemMatch`` branches, and a forward chain looks its targets up in the
  ``reference`` entries instead of the flat ``refs`` array (see :mod:`.schema`).
* ``array_equality`` — plain equality on an indexed array of scalars (``{refs: "x"}``). Reported
  (an operator sees whether the server's multikey indexes can be trusted); no compiled form
  depends on it yet: the compiler writes ``$in`` on arrays, which is as cheap on MongoDB.
* ``lookup_arrays`` — ``$lookup`` returns the joined documents as an array (nx-27017 returns a
  JSON string). When True, a chain/``_has`` with too many targets and candidates to count (the
  "test each candidate" side of :mod:`server.search.cost`) is one aggregation per sort partition:
  the candidates in result order, each joined with ``$lookup`` to its first matching target /
  source, stopping when the page is full (:func:`.compile.lookup_stages`; ``localField`` with a
  ``pipeline`` needs MongoDB 5.0+). Otherwise the candidates are walked a batch at a time.
* ``transactions`` — isolated multi-document transactions, decided by
  :func:`.session.transactions_isolated` (not probed twice).
* ``sharded`` — the store talks to a mongos (``hello`` answers ``msg: "isdbgrid"``): searches naming
  residents carry the shard key and transactional writes keep resource ids unique across shards
  (:mod:`.sharding`). Always detected, also when the query forms are forced; tests force it True
  to run the routed filters on nx-27017.

A probe that fails with an error counts as "not supported": the fallback forms are correct on every
server, the efficient ones only faster. Forcing a set of flags (``MongoStore(capabilities=…)``,
setting ``mongodb_query_forms``) is how tests run both paths.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

log = logging.getLogger(__name__)

PROBE = "probe"
"""Scratch collection (also created by :func:`.schema.ensure_schema`)."""

PROBE_INDEXES = [
    IndexModel([("cap_e.p", ASCENDING), ("cap_e.c", ASCENDING)], name="cap_elem"),
    IndexModel([("cap_t", ASCENDING)], name="cap_array"),
]
"""The probe queries run against indexed arrays: nx-27017 answers them correctly without an index."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Query forms the server answers correctly (see the module docstring)."""

    in_elem_match: bool = False
    array_equality: bool = False
    lookup_arrays: bool = False
    transactions: bool = False
    sharded: bool = False
    server: str = "unknown"
    """What ``buildInfo`` says the server is, e.g. ``MongoDB 7.0.14`` or ``nx-27017 (reports 7.0.0)``."""

    def describe(self) -> str:
        """One log line."""
        flags = ", ".join(f"{name}={'yes' if getattr(self, name) else 'no'}" for name in FLAGS)
        return f"MongoDB capabilities of {self.server}: {flags}"


FLAGS = ("in_elem_match", "array_equality", "lookup_arrays", "transactions", "sharded")

FALLBACK = Capabilities()
"""The forms correct on every server: what the compiler emits when told nothing."""

EFFICIENT = Capabilities(in_elem_match=True, array_equality=True, lookup_arrays=True, transactions=True,
                         server="forced")
"""What real MongoDB (a replica set) answers: the compile tests' "capable server"."""

FORCED = {"efficient": EFFICIENT, "fallback": FALLBACK}
"""Names of the forced flag sets (setting ``mongodb_query_forms``; ``detect`` probes the server)."""


def server_name(build_info: dict[str, Any]) -> str:
    """``buildInfo`` → a name that never passes nx-27017 off as MongoDB (it reports a MongoDB
    version and ``process: nx_27017``; a real ``mongod`` has no ``process`` field there)."""
    version = str(build_info.get("version", "?"))
    process = build_info.get("process")
    if process and "nx" in str(process):
        return f"nx-27017 (reports MongoDB {version})"
    if process:
        return f"{process} (reports MongoDB {version})"
    return f"MongoDB {version}"


async def describe_server(db: AsyncDatabase[dict[str, Any]]) -> str:
    try:
        return server_name(await db.command("buildInfo"))
    except PyMongoError as exc:
        return f"unknown server ({type(exc).__name__})"


async def _ids(db: AsyncDatabase[dict[str, Any]], query: dict[str, Any]) -> set[str] | None:
    try:
        return {str(d["_id"]) async for d in db[PROBE].find(query, {"_id": 1})}
    except PyMongoError:
        return None


async def detect(db: AsyncDatabase[dict[str, Any]], transactions: bool) -> Capabilities:
    """Probe ``db`` (see the module docstring); ``transactions`` comes from
    :func:`.session.transactions_isolated` or the store's constructor."""
    server = await describe_server(db)
    m = uuid4().hex
    docs: list[dict[str, Any]] = [
        {"_id": f"{m}-1", "cap_e": [{"p": m, "c": f"{m}a"}, {"p": "other", "c": f"{m}b"}], "cap_t": [f"{m}a", f"{m}b"],
         "cap_k": f"{m}-3"},
        {"_id": f"{m}-2", "cap_e": [{"p": "other", "c": f"{m}a"}, {"p": m, "c": f"{m}c"}], "cap_t": [f"{m}c"]},
        {"_id": f"{m}-3"},
    ]
    probe = db[PROBE]
    try:
        await probe.create_indexes(PROBE_INDEXES)
        await probe.insert_many(docs)
    except PyMongoError as exc:
        log.warning("MongoDB capability probes could not run (%s): using the forms every server answers", exc)
        return Capabilities(transactions=transactions, server=server)
    try:
        # only document 1 has an element with p = m and c in the list (document 2 has each in a different element)
        in_elem = await _ids(db, {"cap_e": {"$elemMatch": {"p": {"$eq": m}, "c": {"$in": [f"{m}a", f"{m}z"]}}}})
        equal = await _ids(db, {"cap_t": f"{m}b"})
        try:
            rows = [d async for d in await probe.aggregate([
                {"$match": {"_id": {"$eq": f"{m}-1"}}},
                {"$lookup": {"from": PROBE, "localField": "cap_k", "foreignField": "_id", "as": "joined"}},
            ])]
            joined = rows[0].get("joined") if len(rows) == 1 else None
            lookup = isinstance(joined, list) and [d.get("_id") for d in joined if isinstance(d, dict)] == [f"{m}-3"]
        except PyMongoError:
            lookup = False
    finally:
        try:
            await probe.delete_many({"_id": {"$in": [d["_id"] for d in docs]}})
        except PyMongoError as exc:  # harmless: the values are unique to this probe
            log.info("MongoDB capability probe documents not removed (%s)", exc)
    return Capabilities(in_elem_match=in_elem == {f"{m}-1"}, array_equality=equal == {f"{m}-1"},
                        lookup_arrays=lookup, transactions=transactions, server=server)

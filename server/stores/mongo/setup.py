"""``yidang mongo setup``: collections, indexes, the sharding and the zones, as a list of commands.

:func:`plan` is pure: the database commands that bring a deployment to the layout of
:mod:`.schema` (and, with ``sharded``, of :mod:`.sharding`), in order. :func:`run` sends them
one by one, printing each, and treats "already so" answers as done, so running it again is
harmless (idempotent). ``--dry-run`` prints the plan without connecting. The non-sharded part is
what ``MongoStore.open()`` also does on start-up; the sharded part is an operator's decision made
once, through a mongos:

1. create the collections (``resources``, ``history``, ``locks``, ``probe``, ``journal``, ``ids``, ``kv``);
2. create the indexes of :data:`.schema.INDEXES` (on a cluster the unique ones non-unique, after
   dropping a unique one left from a replica-set past: see :mod:`.sharding`), and the shard-key index;
3. fill in ``sk`` where a document lacks it (written before ``sk`` existed): current documents from
   their ``reference`` entries, history documents from their resource's ``sk``;
4. ``--sharded``: ``enableSharding``, ``shardCollection`` of ``resources`` and ``history`` by
   ``{sk: "hashed"}`` (``{sk: 1}`` with zones) and of ``ids`` by ``{_id: "hashed"}``;
5. ``--zones FILE``: ``addShardToZone`` and ``updateZoneKeyRange`` per district (GB/T 2260) range.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import HASHED, IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from .records import KV
from .schema import HISTORY, INDEXES, JOURNAL, LOCKS, PROBE, RESOURCES
from .sharding import HASHED_KEY, IDS, RANGED_KEY, SK, Zone, cluster_indexes, stored_shard_key, zone_ranges

COLLECTIONS = (RESOURCES, HISTORY, LOCKS, PROBE, JOURNAL, IDS, KV)
BACKFILL = "backfill"
"""Pseudo-command: fill in missing ``sk`` values (see the module docstring, step 3)."""
DROP_IF_UNIQUE = "dropIndexIfUnique"
"""Pseudo-command: drop the named index when it exists and is unique (cluster step 2)."""
ALREADY = {48: "collection exists", 85: "index exists", 86: "index exists", 20: "already sharded",
           23: "already initialized"}
"""Answers that mean the step was done before (NamespaceExists, IndexOptionsConflict,
IndexKeySpecsConflict, IllegalOperation/AlreadyInitialized on older servers)."""


@dataclass(frozen=True, slots=True)
class Step:
    """One command: run on ``target`` ("db" or "admin")."""

    what: str
    command: dict[str, Any] = field(hash=False)
    target: str = "db"

    def show(self) -> str:
        if BACKFILL in self.command or DROP_IF_UNIQUE in self.command:  # done by yidang, not one command
            return f"{self.what}"
        return f"{self.what}: {self.target}.runCommand({_json(self.command)})"


def _json(value: Any) -> str:
    from bson import json_util

    return json_util.dumps(value)


def _index_spec(model: IndexModel) -> dict[str, Any]:
    doc = dict(model.document)
    doc["key"] = dict(doc["key"])
    return doc


def plan(database: str, *, sharded: bool = False, zones: Sequence[Zone] = ()) -> list[Step]:
    """The commands, in order (see the module docstring)."""
    ranged = bool(zones)
    if ranged and not sharded:
        raise ValueError("zones need --sharded")
    steps = [Step(f"create collection {name}", {"create": name}) for name in COLLECTIONS]
    key = RANGED_KEY if ranged else HASHED_KEY
    for name, models in INDEXES.items():
        wanted = list(models)
        if sharded:
            for m in models:
                if m.document.get("unique"):
                    steps.append(Step(f"drop unique index {m.document['name']} of {name} (not prefixed by the shard "
                                      "key)", {DROP_IF_UNIQUE: name, "index": m.document["name"]}))
            wanted = cluster_indexes(models)
            if name in (RESOURCES, HISTORY):
                wanted.append(IndexModel([(SK, HASHED if not ranged else 1)]))
        steps.append(Step(f"create {len(wanted)} indexes on {name}",
                          {"createIndexes": name, "indexes": [_index_spec(m) for m in wanted]}))
    if sharded:
        steps.append(Step(f"create index on {IDS}", {"createIndexes": IDS,
                                                     "indexes": [_index_spec(IndexModel([("_id", HASHED)]))]}))
    steps.append(Step(f"fill in missing {SK} of {RESOURCES} and {HISTORY}", {BACKFILL: [RESOURCES, HISTORY]}))
    if not sharded:
        return steps
    steps.append(Step(f"enable sharding of {database}", {"enableSharding": database}, "admin"))
    for name in (RESOURCES, HISTORY):
        steps.append(Step(f"shard {name} by {_json(key)}", {"shardCollection": f"{database}.{name}", "key": key},
                          "admin"))
    steps.append(Step(f"shard {IDS} by its _id", {"shardCollection": f"{database}.{IDS}", "key": {"_id": "hashed"}},
                      "admin"))
    for zone in zones:
        for shard in zone.shards:
            steps.append(Step(f"put shard {shard} in zone {zone.name}", {"addShardToZone": shard, "zone": zone.name},
                              "admin"))
        for low, high in zone_ranges(zone):
            for name in (RESOURCES, HISTORY):
                steps.append(Step(f"residents {low}… of {name} to zone {zone.name}",
                                  {"updateZoneKeyRange": f"{database}.{name}", "min": {SK: low}, "max": {SK: high},
                                   "zone": zone.name}, "admin"))
    return steps


async def _backfill(db: AsyncDatabase[dict[str, Any]], say: Callable[[str], None]) -> None:
    missing = {SK: {"$exists": False}}
    batch: list[UpdateOne] = []
    done = 0
    async for doc in db[RESOURCES].find(missing, {"type": 1, "id": 1, "reference": 1}):
        batch.append(UpdateOne({"_id": doc["_id"], SK: {"$exists": False}}, {"$set": {SK: stored_shard_key(doc)}}))
        if len(batch) == 500:
            done += (await db[RESOURCES].bulk_write(batch, ordered=False)).modified_count
            batch = []
    if batch:
        done += (await db[RESOURCES].bulk_write(batch, ordered=False)).modified_count
    keys: dict[str, str] = {}
    batch, hist = [], 0
    async for doc in db[HISTORY].find(missing, {"rid": 1, "type": 1, "id": 1}):
        rid = str(doc["rid"])
        if rid not in keys:
            current = await db[RESOURCES].find_one({"_id": rid}, {SK: 1})
            keys[rid] = str(current[SK]) if current is not None and current.get(SK) else rid
        batch.append(UpdateOne({"_id": doc["_id"], SK: {"$exists": False}}, {"$set": {SK: keys[rid]}}))
        if len(batch) == 500:
            hist += (await db[HISTORY].bulk_write(batch, ordered=False)).modified_count
            batch = []
    if batch:
        hist += (await db[HISTORY].bulk_write(batch, ordered=False)).modified_count
    say(f"  {SK} filled in: {done} resources, {hist} history versions")


async def _drop_if_unique(db: AsyncDatabase[dict[str, Any]], collection: str, index: str,
                          say: Callable[[str], None]) -> None:
    info = await db[collection].index_information()
    if index in info and info[index].get("unique"):
        await db[collection].drop_index(index)
        say("  dropped")
    else:
        say("  nothing to drop")


async def run(db: AsyncDatabase[dict[str, Any]], steps: Sequence[Step], say: Callable[[str], None]) -> None:
    """Send ``steps`` in order, printing each; "already so" answers count as done."""
    admin = db.client.admin
    for step in steps:
        say(step.show())
        if BACKFILL in step.command:
            await _backfill(db, say)
            continue
        if DROP_IF_UNIQUE in step.command:
            await _drop_if_unique(db, step.command[DROP_IF_UNIQUE], step.command["index"], say)
            continue
        try:
            await (admin if step.target == "admin" else db).command(step.command)
        except OperationFailure as exc:
            if exc.code not in ALREADY and "already" not in str(exc):
                raise
            say(f"  already done ({ALREADY.get(exc.code or 0, exc.code)})")
        else:
            say("  ok")

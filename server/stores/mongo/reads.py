"""Reads shared by the store and its sessions: read, vread, history, search, find.

Each function takes the database and an optional client session, so a transactional session
reads its own uncommitted writes (compensating sessions need none: their writes are visible).
Forward and reverse chains run as sub-queries first; their id lists are bounded by
:data:`MAX_SUBQUERY_IDS` (beyond it the request is declined as "chain too broad", a 400
``not-supported`` outcome, instead of shipping a huge ``$in`` list to the server).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bson import json_util
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from server.errors import NotSupported
from server.search.check import check_condition, check_query
from server.search.explain import StorePlan
from server.search.model import Chain, Condition, Has, Query
from server.stores.base import HistoryQuery, SearchResult, Version

from . import compile as c
from . import order
from .schema import HISTORY, RESOURCES, ROW_FIELDS, resource_key, to_version, version_key

Db = AsyncDatabase[dict[str, Any]]
ClientSession = AsyncClientSession | None

MAX_SUBQUERY_IDS = 100_000
"""Most resources a chain / ``_has`` sub-query may select before the search is declined."""

ROW = dict.fromkeys(ROW_FIELDS, 1)
SEARCH_ROW = {**ROW, "sort": 1}


def _resources(db: Db) -> AsyncCollection[dict[str, Any]]:
    return db[RESOURCES]


async def read(db: Db, s: ClientSession, type_: str, id_: str) -> Version | None:
    doc = await _resources(db).find_one({"_id": resource_key(type_, id_)}, ROW, session=s)
    # version 0: the placeholder of a resource an in-flight journalled transaction creates
    return None if doc is None or not doc["version"] else to_version(doc)


async def vread(db: Db, s: ClientSession, type_: str, id_: str, version: int) -> Version | None:
    doc = await db[HISTORY].find_one({"_id": version_key(type_, id_, version)}, ROW, session=s)
    if doc is None:  # the history insert follows the current write; answer from there meanwhile
        current = await read(db, s, type_, id_)
        return current if current is not None and current.version == version else None
    return to_version(doc)


async def history(db: Db, s: ClientSession, q: HistoryQuery) -> list[Version]:
    """Newest first (lu, type, id, version all descending); see :class:`HistoryQuery`."""
    if q.count <= 0:
        return []
    scope = c.and_(
        {"type": {"$eq": q.type}} if q.type is not None else c.ALWAYS,
        {"id": {"$eq": q.id}} if q.id is not None else c.ALWAYS,
    )
    since = {"lu": {"$gte": q.since}} if q.since is not None else c.ALWAYS
    page = c.and_(since, order.before_filter(q.before))
    if q.at is None:
        cursor = db[HISTORY].find(c.and_(scope, page), ROW, sort=order.HISTORY_SORT, limit=q.count, session=s)
        return [to_version(d) async for d in cursor]
    # the version current at `at`: per resource the greatest version with lu <= at
    pipeline: list[dict[str, Any]] = [
        {"$match": c.and_(scope, {"lu": {"$lte": q.at}})},
        {"$sort": {"rid": 1, "version": -1}},
        {"$group": {"_id": "$rid", "doc": {"$first": "$$ROOT"}}},
        {"$replaceRoot": {"newRoot": "$doc"}},
    ]
    if page:
        pipeline.append({"$match": page})
    pipeline += [{"$sort": dict(order.HISTORY_SORT)}, {"$limit": q.count}]
    rows = await db[HISTORY].aggregate(pipeline, session=s, allowDiskUse=True)
    return [to_version(d) async for d in rows]


async def resolve(db: Db, s: ClientSession, cond: Condition, types: Sequence[str]) -> dict[Chain | Has, c.Filter]:
    """Run the Chain/Has sub-queries of ``cond`` (resources of ``types``): their filters."""
    out: dict[Chain | Has, c.Filter] = {}
    for node in c.subqueries(cond):
        if node in out:
            continue
        if isinstance(node, Chain):
            inner = await where_filter(db, s, (node.target_type,), node.where)
            cursor = _resources(db).find(inner, {"id": 1}, limit=MAX_SUBQUERY_IDS + 1, session=s)
            ids = [d["id"] async for d in cursor]
            _guard(len(ids), node.param)
            out[node] = c.chain_filter(node, ids)
        else:
            inner = await where_filter(db, s, (node.source_type,), node.where)
            inner = c.conjoin(inner, c.has_entry("reference", node.param))
            prefix = f"{node.param}|"
            keys: set[str] = set()
            async for d in _resources(db).find(inner, {"refs": 1}, session=s):
                for ref in d.get("refs") or ():
                    if ref.startswith(prefix) and (not types or ref[len(prefix) :].split("/")[0] in types):
                        keys.add(ref[len(prefix) :])
                _guard(len(keys), f"_has:{node.source_type}:{node.param}")
            out[node] = c.has_filter(sorted(keys))
    return out


def _guard(n: int, param: str) -> None:
    if n > MAX_SUBQUERY_IDS:
        raise NotSupported(
            f"chain too broad: {param!r} selects more than {MAX_SUBQUERY_IDS} resources; narrow it",
            expression=[param],
        )


async def where_filter(db: Db, s: ClientSession, types: Sequence[str], where: Condition) -> c.Filter:
    """The full filter of current, non-deleted ``types`` resources matching ``where``."""
    return c.base_filter(types, c.compile_where(where, await resolve(db, s, where, types)))


async def find(db: Db, s: ClientSession, type_: str, where: Condition, limit: int) -> list[str]:
    check_condition(where)
    if limit <= 0:
        return []
    f = await where_filter(db, s, (type_,), where)
    cursor = _resources(db).find(f, {"id": 1}, sort=[("id", 1)], limit=limit, session=s)
    return [d["id"] async for d in cursor]


async def count(db: Db, s: ClientSession, f: c.Filter) -> int:
    """Matching current resources: ``$match`` + ``$count`` (what ``count_documents`` does with a
    ``$group`` stage, which nx-27017 evaluates 3–4x slower; allowed inside transactions)."""
    rows = await _resources(db).aggregate([{"$match": f}, {"$count": "n"}], session=s)
    return sum([int(d["n"]) async for d in rows])


async def search(db: Db, s: ClientSession, query: Query) -> SearchResult:
    """One page in the order of :mod:`.order`, fetched as merged partition queries."""
    check_query(query)
    fields = order.sort_fields(query.sort)
    base = await where_filter(db, s, query.types, query.where)
    total = None
    if query.total != "none":
        total = await count(db, s, base)
    if query.count <= 0:
        return SearchResult([], total, None)
    docs: list[dict[str, Any]] = []
    keys = len(query.sort)
    position = None if query.after is None else order.field_values(fields, query.after, keys)
    for part in order.partitions(fields):
        after = c.ALWAYS if position is None else order.after_filter(fields, position, part.missing)
        f = c.conjoin(base, part.filter, after)
        if f == c.NEVER:
            continue
        cursor = _resources(db).find(f, SEARCH_ROW, sort=part.sort, limit=query.count + 1, session=s)
        docs.extend([d async for d in cursor])
    docs.sort(key=order.comparator(fields))
    page = docs[: query.count]
    next_after = order.cursor(fields, page[-1], keys) if len(docs) > query.count else None
    return SearchResult([to_version(d) for d in page], total, next_after)


# --- __explain ----------------------------------------------------------------------------------

PLAN_KEYS = ("stage", "indexName", "direction", "isMultiKey")
"""What a plan shows of each stage of the server's winning plan: never bounds or filters, which
hold the ids that sub-queries found (see :mod:`server.search.explain`)."""


def _stages(plan: Any, depth: int = 0) -> list[str]:
    if not isinstance(plan, dict):
        return []
    shown = ", ".join(f"{k}={plan[k]}" for k in PLAN_KEYS if k in plan)
    lines = ["  " * depth + shown] if shown else []
    children = [plan["inputStage"]] if isinstance(plan.get("inputStage"), dict) else []
    children += [p for p in plan.get("inputStages") or () if isinstance(p, dict)]
    for child in children:
        lines += _stages(child, depth + 1)
    return lines


def _shown(cond: Condition, found: dict[Chain | Has, c.Filter]) -> dict[Chain | Has, c.Filter]:
    """Sub-query filters with the ids they found replaced by how many there were."""
    out: dict[Chain | Has, c.Filter] = {}
    for node in c.subqueries(cond):
        f = found[node]
        n = len(next(iter(f.values()))["$in"]) if f != c.NEVER else 0
        what = f"{node.target_type} resources" if isinstance(node, Chain) else "resources it points at"
        out[node] = {"refs" if isinstance(node, Chain) else "_id": {"$in": f"<{n} {what} found by a sub-query>"}}
    return out


async def query_plan(db: Db, query: Query) -> StorePlan:
    """The filters, sorts and limits :func:`search` sends for ``query``, with the size of each
    chain/``_has`` sub-query's result, and the server's winning plan per partition query where the
    server answers ``explain`` (nx-27017 may not)."""
    check_query(query)
    fields = order.sort_fields(query.sort)
    found = await resolve(db, None, query.where, query.types)
    shown = c.base_filter(query.types, c.compile_where(query.where, _shown(query.where, found)))
    real = c.base_filter(query.types, c.compile_where(query.where, found))
    sections: list[tuple[str, str]] = [("filter", json_util.dumps(shown, indent=1))]
    keys = len(query.sort)
    position = None if query.after is None else order.field_values(fields, query.after, keys)
    for n, part in enumerate(order.partitions(fields) if query.count > 0 else ()):
        after = c.ALWAYS if position is None else order.after_filter(fields, position, part.missing)
        extra = c.and_(part.filter, after)
        if c.conjoin(real, extra) == c.NEVER:
            continue
        text = f"and {json_util.dumps(extra)}\nsort {part.sort}\nlimit {query.count + 1}"
        try:
            explained = await db.command("explain", {"find": RESOURCES, "filter": c.conjoin(real, extra),
                                                     "sort": dict(part.sort), "limit": query.count + 1},
                                         verbosity="queryPlanner")
            winning = (explained.get("queryPlanner") or {}).get("winningPlan")
            text += "\nwinning plan:\n" + ("\n".join(_stages(winning)) or "(not reported)")
        except PyMongoError as exc:
            text += f"\nwinning plan: not available from this server ({type(exc).__name__})"
        sections.append((f"partition {n + 1} (find)", text))
    if query.total != "none":
        sections.append(("total", "aggregate [$match filter, $count]"))
    return StorePlan("mongo", tuple(sections))

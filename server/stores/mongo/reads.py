"""Reads shared by the store and its sessions: read, vread, history, search, find.

Each function takes the database and an optional client session, so a transactional session
reads its own uncommitted writes (journalled sessions merge their buffered writes themselves).
Forward and reverse chains run as sub-queries first; their id lists are bounded by
:data:`MAX_SUBQUERY_IDS`: beyond it a chain AND-ed with narrower criteria is answered from the
other side (the candidates the rest selects, then their references), and when both sides are
broader :func:`search` walks the rest in result order, answering the chain a batch at a time, as
SQLite does; no huge ``$in`` list is shipped and both stores answer the same searches. (Refused,
400 ``too-costly``: only a broad ``_has`` whose source criteria hold a chain as broad.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bson import json_util
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from server.search.check import check_condition, check_query
from server.search.explain import StorePlan
from server.search.limits import too_costly
from server.search.model import And, Chain, Condition, Has, Query, ResourceTest
from server.stores.base import HistoryQuery, SearchResult, Version

from . import compile as c
from . import order, sharding
from .capabilities import FALLBACK, Capabilities
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
    scope, page = order.history_filters(q)
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


class _TooBroad(Exception):
    """A chain/``_has`` sub-query selected more than :data:`MAX_SUBQUERY_IDS` resources."""

    def __init__(self, node: Chain | Has, name: str) -> None:
        super().__init__(name)
        self.node = node
        self.name = name


def _name(node: Chain | Has) -> str:
    return node.param if isinstance(node, Chain) else f"_has:{node.source_type}:{node.param}"


async def _resolve_one(db: Db, s: ClientSession, node: Chain | Has, types: Sequence[str], *,
                       caps: Capabilities = FALLBACK) -> c.Filter:
    if isinstance(node, Chain):
        inner = await where_filter(db, s, (node.target_type,), node.where, caps=caps)
        cursor = _resources(db).find(inner, {"id": 1}, limit=MAX_SUBQUERY_IDS + 1, session=s)
        ids = [d["id"] async for d in cursor]
        if len(ids) > MAX_SUBQUERY_IDS:
            raise _TooBroad(node, _name(node))
        return c.chain_filter(node, ids, caps)
    inner = await where_filter(db, s, (node.source_type,), node.where, caps=caps)
    inner = c.conjoin(inner, c.has_entry("reference", node.param))
    prefix = f"{node.param}|"
    keys: set[str] = set()
    async for d in _resources(db).find(inner, {"refs": 1}, session=s):
        for ref in d.get("refs") or ():
            if ref.startswith(prefix) and (not types or ref[len(prefix) :].split("/")[0] in types):
                keys.add(ref[len(prefix) :])
        if len(keys) > MAX_SUBQUERY_IDS:
            raise _TooBroad(node, _name(node))
    return c.has_filter(sorted(keys))


async def _resolve_from_rest(db: Db, s: ClientSession, where: Condition, node: Chain | Has,
                             types: Sequence[str], *, caps: Capabilities = FALLBACK) -> c.Filter:
    """The filter of a too-broad ``node`` in a conjunct of ``where``, found from the other side:
    the resources the rest of ``where`` selects (at most :data:`MAX_SUBQUERY_IDS`, else the node
    stays too broad: :func:`search` then walks) and the chain targets / ``_has`` sources among their references, so
    ``subject.name=common&code=rare`` costs what ``code=rare`` costs."""
    items = where.items if isinstance(where, And) else (where,)
    rest = And(tuple(i for i in items if node not in c.subqueries(i)))
    if len(rest.items) == len(items) or not rest.items:
        raise _TooBroad(node, _name(node))
    # the filter found agrees with the full one on every candidate, and the rest excludes the others,
    # so it may stand for the node wherever it sits in its conjunct (under OR, NOT)
    candidates = _resources(db).find(await where_filter(db, s, types, rest, caps=caps), {"refs": 1},
                                     limit=MAX_SUBQUERY_IDS + 1, session=s)
    docs = [d async for d in candidates]
    if len(docs) > MAX_SUBQUERY_IDS:
        raise _TooBroad(node, _name(node))
    return await _semi_join(db, s, node, docs, caps=caps)


async def _semi_join(db: Db, s: ClientSession, node: Chain | Has, docs: Sequence[dict[str, Any]], *,
                     caps: Capabilities = FALLBACK) -> c.Filter:
    """A filter for ``node`` that is exact on the documents ``docs`` (each with ``_id`` and
    ``refs``): the chain targets they point at that match, or which of them ``_has`` sources
    matching point at."""
    if isinstance(node, Chain):
        prefix = f"{node.param}|{node.target_type}/"
        linked = tuple(sorted({r[len(prefix):] for d in docs for r in d.get("refs") or () if r.startswith(prefix)}))
        if not linked:
            return c.NEVER
        # the ids narrow the target query itself, so a broad chain nested in it is answered from them
        target = await where_filter(db, s, (node.target_type,), And((ResourceTest("id", "in", linked), node.where)),
                                    caps=caps)
        found = _resources(db).find(target, {"id": 1}, session=s)
        return c.chain_filter(node, [d["id"] async for d in found], caps)
    wanted = [c.ref_key(node.param, *str(d["_id"]).split("/", 1)) for d in docs]
    source = await where_filter(db, s, (node.source_type,), node.where, caps=caps)
    keys = {str(d["_id"]) for d in docs}
    hit: set[str] = set()
    async for d in _resources(db).find(c.conjoin(source, {"refs": {"$in": wanted}}), {"refs": 1}, session=s):
        hit.update(r[len(node.param) + 1:] for r in d.get("refs") or () if r.startswith(f"{node.param}|"))
    return c.has_filter(sorted(hit & keys))


def _too_costly(node: Chain | Has) -> Exception:
    return too_costly(_name(node), f"a reverse chain selecting more than {MAX_SUBQUERY_IDS} resources has a "
                                   "chain as broad inside it; narrow either")


async def resolve(db: Db, s: ClientSession, cond: Condition, types: Sequence[str], *,
                  caps: Capabilities = FALLBACK) -> dict[Chain | Has, c.Filter]:
    """Run the Chain/Has sub-queries of ``cond`` (resources of ``types``): their filters. A
    sub-query too broad to ship as an id list is answered from the rest of ``cond`` instead
    (:func:`_resolve_from_rest`); when that is as broad, :class:`_TooBroad` names the node (or the
    enclosing one, for a sub-query nested in another) for :func:`search` to walk."""
    out: dict[Chain | Has, c.Filter] = {}
    for node in c.subqueries(cond):
        if node in out:
            continue
        try:
            out[node] = await _resolve_one(db, s, node, types, caps=caps)
        except _TooBroad:  # this node's own sub-query, or one nested in it: this node is broad
            out[node] = await _resolve_from_rest(db, s, cond, node, types, caps=caps)
    return out


def search_filter(types: Sequence[str], where: Condition, resolved: Mapping[Chain | Has, c.Filter],
                  caps: Capabilities) -> c.Filter:
    """The full filter of a search of ``types`` by ``where`` (sub-queries ``resolved``): behind mongos
    with the shard key of the residents it names, so it reaches their shards only (:mod:`.sharding`)."""
    base = c.base_filter(types, c.compile_where(where, resolved, caps))
    return sharding.route(types, where, base) if caps.sharded else base


async def where_filter(db: Db, s: ClientSession, types: Sequence[str], where: Condition, *,
                       caps: Capabilities = FALLBACK) -> c.Filter:
    """The full filter of current, non-deleted ``types`` resources matching ``where``, in the forms
    ``caps`` allows (see :mod:`.capabilities`; the default is correct on every server)."""
    return search_filter(types, where, await resolve(db, s, where, types, caps=caps), caps)


async def find(db: Db, s: ClientSession, type_: str, where: Condition, limit: int, *,
               caps: Capabilities = FALLBACK) -> list[str]:
    """Ids of the first ``limit`` matches in id order: a search of one type (which also walks
    broad sub-queries) without sort keys."""
    check_condition(where)
    if limit <= 0:
        return []
    return [v.id for v in (await search(db, s, Query((type_,), where, count=limit), caps=caps)).rows]


async def count(db: Db, s: ClientSession, f: c.Filter) -> int:
    """Matching current resources: ``$match`` + ``$count`` (what ``count_documents`` does with a
    ``$group`` stage, which nx-27017 evaluates 3–4x slower; allowed inside transactions)."""
    rows = await _resources(db).aggregate([{"$match": f}, {"$count": "n"}], session=s)
    return sum([int(d["n"]) async for d in rows])


WALK_BATCH = 1000
"""Resources a walk (see :func:`search`) reads per round trip."""


async def _ordered(db: Db, s: ClientSession, f: c.Filter, fields: Sequence[order.SortField],
                   position: Sequence[object] | None, limit: int, projection: dict[str, int]) -> list[dict[str, Any]]:
    """The first ``limit`` documents matching ``f`` after ``position`` in the search order."""
    docs: list[dict[str, Any]] = []
    for part in order.partitions(fields):
        after = c.ALWAYS if position is None else order.after_filter(fields, position, part.missing)
        g = c.conjoin(f, part.filter, after)
        if g == c.NEVER:
            continue
        cursor = _resources(db).find(g, projection, sort=part.sort, limit=limit, session=s)
        docs.extend([d async for d in cursor])
    docs.sort(key=order.comparator(fields))
    return docs[:limit]


async def search(db: Db, s: ClientSession, query: Query, *, caps: Capabilities = FALLBACK) -> SearchResult:
    """One page in the order of :mod:`.order`, fetched as merged partition queries.

    A chain or ``_has`` whose sub-query is too broad to ship as an id list (see the module
    docstring) does not make the search fail: the resources the rest of the search selects are
    walked in result order, :data:`WALK_BATCH` at a time, and the broad sub-queries answered for
    each batch from its references, until the page is full. That is what SQLite does with a search
    no index narrows, so both stores answer the same requests."""
    check_query(query)
    fields = order.sort_fields(query.sort)
    keys = len(query.sort)
    resolved: dict[Chain | Has, c.Filter] = {}
    broad: list[Chain | Has] = []
    for node in c.subqueries(query.where):
        if node not in resolved and node not in broad:
            try:
                resolved[node] = await _resolve_one(db, s, node, query.types, caps=caps)
            except _TooBroad:
                broad.append(node)
    position = None if query.after is None else order.field_values(fields, query.after, keys)
    if broad:
        return await _walk(db, s, query, fields, resolved, broad, position, caps)
    base = search_filter(query.types, query.where, resolved, caps)
    total = None
    if query.total != "none":
        total = await count(db, s, base)
    if query.count <= 0:
        return SearchResult([], total, None)
    docs = await _ordered(db, s, base, fields, position, query.count + 1, SEARCH_ROW)
    page = docs[: query.count]
    next_after = order.cursor(fields, page[-1], keys) if len(docs) > query.count else None
    return SearchResult([to_version(d) for d in page], total, next_after)


async def _walk(db: Db, s: ClientSession, query: Query, fields: Sequence[order.SortField],
                resolved: dict[Chain | Has, c.Filter], broad: list[Chain | Has],
                position: Sequence[object] | None, caps: Capabilities = FALLBACK) -> SearchResult:
    items = query.where.items if isinstance(query.where, And) else (query.where,)
    narrow = And(tuple(i for i in items if not any(n in c.subqueries(i) for n in broad)))
    candidates = search_filter(query.types, narrow, resolved, caps)
    keys = len(query.sort)
    want = query.count + 1
    counting = query.total != "none"  # a total needs the whole walk
    found: list[dict[str, Any]] = []
    total = 0
    while counting or len(found) < want:
        batch = await _ordered(db, s, candidates, fields, position, WALK_BATCH, {**SEARCH_ROW, "refs": 1})
        if not batch:
            break
        per_batch = dict(resolved)
        for node in broad:
            try:
                per_batch[node] = await _semi_join(db, s, node, batch, caps=caps)
            except _TooBroad:  # only a _has whose sources' own criteria hold a broad chain
                raise _too_costly(node) from None
        full = search_filter(query.types, query.where, per_batch, caps)
        ids = [d["_id"] for d in batch]
        hits = {d["_id"] async for d in _resources(db).find(c.conjoin(full, {"_id": {"$in": ids}}), {"_id": 1},
                                                             session=s)}
        matched = [d for d in batch if d["_id"] in hits]
        total += len(matched)
        found.extend(matched[: max(0, want - len(found))])
        if len(batch) < WALK_BATCH:
            break
        position = order.field_values(fields, order.cursor(fields, batch[-1], keys), keys)
    page = found[: query.count] if query.count > 0 else []
    next_after = order.cursor(fields, page[-1], keys) if page and len(found) > query.count else None
    return SearchResult([to_version(d) for d in page], total if counting else None, next_after)


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
        if f == c.ALWAYS:
            out[node] = f
            continue
        what = f"{node.target_type} resources" if isinstance(node, Chain) else "resources it points at"
        if f == c.NEVER:  # none found: shown in the fallback form
            f = {"refs" if isinstance(node, Chain) else "_id": {"$in": []}}
        out[node] = _count_ids(f, what)
    return out


def _count_ids(f: c.Filter, what: str) -> c.Filter:
    """``f`` with its ``$in`` list of ids replaced by how many there were."""
    out: c.Filter = {}
    for key, value in f.items():
        if isinstance(value, dict):
            out[key] = _count_ids(value, what)
        elif key == "$in" and isinstance(value, list):
            out[key] = f"<{len(value)} {what} found by a sub-query>"
        else:
            out[key] = value
    return out


async def query_plan(db: Db, query: Query, *, caps: Capabilities = FALLBACK) -> StorePlan:
    """The filters, sorts and limits :func:`search` sends for ``query``, with the size of each
    chain/``_has`` sub-query's result, and the server's winning plan per partition query where the
    server answers ``explain`` (nx-27017 may not)."""
    check_query(query)
    fields = order.sort_fields(query.sort)
    found: dict[Chain | Has, c.Filter] = {}
    walked: list[str] = []
    for node in c.subqueries(query.where):
        try:
            found[node] = await _resolve_one(db, None, node, query.types, caps=caps)
        except _TooBroad:
            walked.append(_name(node))
            found[node] = c.ALWAYS
    shown = search_filter(query.types, query.where, _shown(query.where, found), caps)
    real = search_filter(query.types, query.where, found, caps)
    if walked:
        sections_walk = [("walk", f"sub-queries too broad to ship as id lists ({', '.join(walked)}): the rest "
                                  f"of the search is walked in result order, {WALK_BATCH} at a time, and they are "
                                  "answered per batch (shown below as matching everything)")]
    else:
        sections_walk = []
    sections: list[tuple[str, str]] = [*sections_walk, ("filter", json_util.dumps(shown, indent=1))]
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

"""Reads shared by the store and its sessions: read, vread, history, search, find.

Each function takes the database and an optional client session, so a transactional session
reads its own uncommitted writes (journalled sessions merge their buffered writes themselves).
Forward and reverse chains are answered from the side :func:`server.search.cost.choose` picks from
both sides' counts (each counted up to :data:`server.search.cost.DRIVE_CAP`, as SQLite counts its
drivers): the sub-query's ids when they are few (an ``$in`` list of at most the cap), else the
candidates the rest of the search selects, tested through their references; when both sides are
broader :func:`search` walks the rest in result order, a batch at a time (or joins it with an
aggregation ``$lookup`` where the server's ``$lookup`` is correct), as SQLite does. (Refused, 400
``too-costly``: only a broad ``_has`` whose source criteria hold a chain as broad.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bson import json_util
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from server.search import cost
from server.search.check import check_condition, check_query
from server.search.cost import Side
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
    """A chain/``_has`` that only a walk can answer (see :func:`_choose`), or one nested in it."""

    def __init__(self, node: Chain | Has, name: str) -> None:
        super().__init__(name)
        self.node = node
        self.name = name


def _name(node: Chain | Has) -> str:
    return node.param if isinstance(node, Chain) else f"_has:{node.source_type}:{node.param}"


@dataclass(frozen=True, slots=True)
class _Choice:
    """How one chain/``_has`` is answered: the side :func:`server.search.cost.choose` took, the
    counts behind it, and its filter (None: too many candidates to test at once, so :func:`search`
    walks them in result order, or joins them with ``$lookup`` where the server answers that)."""

    side: Side
    targets: int | None
    candidates: int | None
    filter: c.Filter | None

    def line(self, node: Chain | Has, caps: Capabilities) -> str:
        how = ""
        if self.side is Side.TEST_CANDIDATES and self.filter is not None:
            how = " — through the candidates' references"
        elif self.side is Side.TEST_CANDIDATES:
            how = (" — the candidates joined with $lookup in result order" if caps.lookup_arrays
                   else " — the candidates walked in result order")
        return cost.explain(_name(node), self.side, self.targets, self.candidates) + how


async def _targets(db: Db, s: ClientSession, node: Chain | Has, types: Sequence[str], *,
                   caps: Capabilities = FALLBACK) -> tuple[int | None, c.Filter | None]:
    """The sub-query's side: how many targets (chain) / sources (``_has``) it selects, counted up to
    the cap, and the filter of the candidates pointing at / pointed at by them when below it.
    (None, None) when a sub-query nested in it can only be walked: it cannot be counted."""
    top = cost.cap()
    try:
        inner = await where_filter(db, s, (node.target_type if isinstance(node, Chain) else node.source_type,),
                                   node.where, caps=caps)
    except _TooBroad:
        return None, None
    if isinstance(node, Chain):
        ids = [d["id"] async for d in _resources(db).find(inner, {"id": 1}, limit=top, session=s)]
        return (top, None) if len(ids) >= top else (len(ids), c.chain_filter(node, ids, caps))
    inner = c.conjoin(inner, c.has_entry("reference", node.param))
    docs = [d async for d in _resources(db).find(inner, {"refs": 1}, limit=top, session=s)]
    if len(docs) >= top:
        return top, None
    prefix = f"{node.param}|"
    keys: set[str] = set()
    for d in docs:
        for ref in d.get("refs") or ():
            if ref.startswith(prefix) and (not types or ref[len(prefix) :].split("/")[0] in types):
                keys.add(ref[len(prefix) :])
    return len(docs), c.has_filter(sorted(keys))


def _rest(where: Condition, node: Chain | Has) -> And | None:
    """The conjuncts of ``where`` that do not hold ``node``: what selects its candidates (None: nothing)."""
    items = where.items if isinstance(where, And) else (where,)
    rest = tuple(i for i in items if node not in c.subqueries(i))
    return And(rest) if rest and len(rest) < len(items) else None


async def _choose(db: Db, s: ClientSession, node: Chain | Has, where: Condition, types: Sequence[str], *,
                  caps: Capabilities = FALLBACK) -> _Choice:
    """Count both sides of ``node`` (a conjunct of ``where``, on ``types``) with a limit and answer it
    from the side :func:`server.search.cost.choose` picks: the targets' ids, or the candidates the
    rest of ``where`` selects and the targets / sources among their references. (A filter found
    from the candidates agrees with the full one on every candidate, and the rest excludes the
    others, so it may stand for the node wherever it sits in its conjunct, under OR or NOT.)"""
    top = cost.cap()
    targets, found = await _targets(db, s, node, types, caps=caps)
    rest = _rest(where, node)
    candidates: int | None = None
    docs: list[dict[str, Any]] = []
    if rest is not None and targets != 0:
        # counted only as far as matters: up to the targets' count when that is below the cap
        limit = top if targets is None or targets >= top else targets
        try:
            f = await where_filter(db, s, types, rest, caps=caps)
            docs = [d async for d in _resources(db).find(f, {"refs": 1}, limit=limit, session=s)]
            candidates = len(docs) if len(docs) < limit else limit
        except _TooBroad:  # the rest holds a sub-query of its own that only a walk answers
            candidates = None
    side = cost.choose(targets, candidates)
    if side is Side.DRIVE_FROM_TARGETS:
        return _Choice(side, targets, candidates, found)
    if candidates is not None and candidates < top:
        return _Choice(side, targets, candidates, await _semi_join(db, s, node, docs, caps=caps))
    return _Choice(side, targets, candidates, None)


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
    return too_costly(_name(node), f"a reverse chain selecting at least {cost.cap()} resources has a "
                                   "chain as broad inside it; narrow either")


async def choices(db: Db, s: ClientSession, cond: Condition, types: Sequence[str], *,
                  caps: Capabilities = FALLBACK) -> dict[Chain | Has, _Choice]:
    """The side taken for each Chain/Has of ``cond`` (resources of ``types``), see :func:`_choose`."""
    out: dict[Chain | Has, _Choice] = {}
    for node in c.subqueries(cond):
        if node not in out:
            out[node] = await _choose(db, s, node, cond, types, caps=caps)
    return out


async def resolve(db: Db, s: ClientSession, cond: Condition, types: Sequence[str], *,
                  caps: Capabilities = FALLBACK) -> dict[Chain | Has, c.Filter]:
    """The filters of the Chain/Has sub-queries of ``cond`` (resources of ``types``); a node that
    only a walk answers raises :class:`_TooBroad` (for :func:`search` to walk the enclosing one)."""
    out: dict[Chain | Has, c.Filter] = {}
    for node, choice in (await choices(db, s, cond, types, caps=caps)).items():
        if choice.filter is None:
            raise _TooBroad(node, _name(node))
        out[node] = choice.filter
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
"""Resources a walk (see :func:`search`) tests per round trip (the page in result order; its
``_total`` in one streamed cursor, :func:`_count_walk`). Below :func:`server.search.cost.cap`, so a
sub-query nested in a walked one is answered from a batch's references rather than walked again."""


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
    picked = await choices(db, s, query.where, query.types, caps=caps)
    resolved = {n: ch.filter for n, ch in picked.items() if ch.filter is not None}
    broad = [n for n, ch in picked.items() if ch.filter is None]
    position = None if query.after is None else order.field_values(fields, query.after, keys)
    if broad:
        if caps.lookup_arrays:
            joined = await _lookup_search(db, s, query, fields, resolved, broad, position, caps)
            if joined is not None:
                return joined
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


async def _inner(db: Db, s: ClientSession, node: Chain | Has, caps: Capabilities) -> c.Filter:
    """The full filter of ``node``'s targets (chain) or sources (``_has``)."""
    if isinstance(node, Chain):
        return await where_filter(db, s, (node.target_type,), node.where, caps=caps)
    source = await where_filter(db, s, (node.source_type,), node.where, caps=caps)
    return c.conjoin(source, c.has_entry("reference", node.param))


async def _lookup_search(db: Db, s: ClientSession, query: Query, fields: Sequence[order.SortField],
                         resolved: dict[Chain | Has, c.Filter], broad: list[Chain | Has],
                         position: Sequence[object] | None, caps: Capabilities) -> SearchResult | None:
    """The walk of :func:`_walk` as one aggregation per sort partition, where the server's ``$lookup``
    returns real arrays: the candidates in result order, each joined to its targets / sources
    (:func:`.compile.lookup_stages`), until the page is full. None when a sub-query nested in a
    broad one can itself only be walked (then :func:`_walk` answers)."""
    joined = dict(resolved)
    stages: list[c.Filter] = []
    for n, node in enumerate(broad):
        try:
            inner = await _inner(db, s, node, caps)
        except _TooBroad:
            return None
        more, stands_for = c.lookup_stages(node, n, inner, RESOURCES)
        stages += more
        joined[node] = stands_for
    items = query.where.items if isinstance(query.where, And) else (query.where,)
    narrow = And(tuple(i for i in items if not any(n in c.subqueries(i) for n in broad)))
    candidates = search_filter(query.types, narrow, resolved, caps)
    full = search_filter(query.types, query.where, joined, caps)
    total = None
    if query.total != "none":
        rows = await _resources(db).aggregate(c.lookup_count(candidates, stages, full), session=s, allowDiskUse=True)
        total = sum([int(d["n"]) async for d in rows])
    if query.count <= 0:
        return SearchResult([], total, None)
    keys = len(query.sort)
    docs: list[dict[str, Any]] = []
    for part in order.partitions(fields):
        after = c.ALWAYS if position is None else order.after_filter(fields, position, part.missing)
        g = c.conjoin(candidates, part.filter, after)
        if g == c.NEVER:
            continue
        pipeline = c.lookup_page(g, part.sort, stages, full, query.count + 1, SEARCH_ROW)
        docs.extend([d async for d in await _resources(db).aggregate(pipeline, session=s, allowDiskUse=True)])
    docs.sort(key=order.comparator(fields))
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
    want = query.count + 1 if query.count > 0 else 0
    found: list[dict[str, Any]] = []
    seen = 0
    start, exhausted = position, False
    while len(found) < want:
        batch = await _ordered(db, s, candidates, fields, position, WALK_BATCH, {**SEARCH_ROW, "refs": 1})
        matched = await _matching(db, s, query, resolved, broad, batch, caps)
        seen += len(matched)
        found.extend(matched[: want - len(found)])
        if len(batch) < WALK_BATCH:
            exhausted = True
            break
        position = order.field_values(fields, order.cursor(fields, batch[-1], keys), keys)
    total = None
    if query.total != "none":  # every candidate, also those before the cursor
        if exhausted and start is None:
            total = seen
        else:
            total = await _count_walk(db, s, query, candidates, resolved, broad, caps)
    page = found[: query.count] if query.count > 0 else []
    next_after = order.cursor(fields, page[-1], keys) if page and len(found) > query.count else None
    return SearchResult([to_version(d) for d in page], total, next_after)


async def _matching(db: Db, s: ClientSession, query: Query, resolved: dict[Chain | Has, c.Filter],
                    broad: list[Chain | Has], batch: Sequence[dict[str, Any]],
                    caps: Capabilities) -> list[dict[str, Any]]:
    """The documents of ``batch`` (each with ``_id`` and ``refs``) matching the whole search: the
    broad sub-queries answered from the batch's references (:func:`_semi_join`)."""
    if not batch:
        return []
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
    return [d for d in batch if d["_id"] in hits]


async def _count_walk(db: Db, s: ClientSession, query: Query, candidates: c.Filter,
                      resolved: dict[Chain | Has, c.Filter], broad: list[Chain | Has], caps: Capabilities) -> int:
    """The ``_total`` of a walked search: every candidate, in no particular order (one streamed
    cursor reading only references), tested :data:`WALK_BATCH` at a time."""
    size = WALK_BATCH
    total = 0
    chunk: list[dict[str, Any]] = []
    async for d in _resources(db).find(candidates, {"refs": 1}, batch_size=size, session=s):
        chunk.append(d)
        if len(chunk) >= size:
            total += len(await _matching(db, s, query, resolved, broad, chunk, caps))
            chunk = []
    return total + len(await _matching(db, s, query, resolved, broad, chunk, caps))


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
    picked = await choices(db, None, query.where, query.types, caps=caps)
    found = {n: c.ALWAYS if ch.filter is None else ch.filter for n, ch in picked.items()}
    walked = [_name(n) for n, ch in picked.items() if ch.filter is None]
    shown = search_filter(query.types, query.where, _shown(query.where, found), caps)
    real = search_filter(query.types, query.where, found, caps)
    sections_walk: list[tuple[str, str]] = []
    if picked:
        sections_walk.append(("chains and _has", "\n".join(ch.line(n, caps) for n, ch in picked.items())))
    if walked:
        how = ("joined with an aggregation $lookup in result order, stopping when the page is full"
               if caps.lookup_arrays else f"walked in result order, {WALK_BATCH} at a time, and answered per batch")
        sections_walk.append(("walk", f"sub-queries with too many targets and candidates ({', '.join(walked)}): "
                                      f"the rest of the search is {how} (shown below as matching everything)"))
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

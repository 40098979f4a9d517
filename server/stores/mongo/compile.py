"""Conditions (:mod:`server.search.model`) → MongoDB filter documents. Pure: no I/O.

Every search value is bound as an operand (``$eq``, ``$gte``, ``$regex`` of an escaped string…),
never used as a key, so ``{"$ne": null}``, ``"$where"`` or regex metacharacters in a request stay
literal values; field names come from :data:`~server.search.model.TABLES` only.

Only query shapes that are correct on MongoDB *and* on the nx-27017 test server are emitted
(see /work/shared/MONGO.md and the module docstring of :mod:`.schema`):

* a condition on an entry array is always one ``{table: {"$elemMatch": {...}}}`` with ``$eq`` /
  range / ``$regex`` operands — never dot paths or plain equality on the array;
* equality is always written ``{"$eq": v}`` (plain ``{f: v}`` inside ``$or`` fails on nx);
* ``in`` on an entry field is one ``$elemMatch`` with ``$in`` where the server answers that
  (:attr:`.capabilities.Capabilities.in_elem_match`, real MongoDB: one index scan with one
  interval per value); otherwise an ``$or`` of ``$elemMatch`` branches (``∃e: e.f ∈ S`` equals
  ``⋁_{v∈S} ∃e: e.f = v``), because nx ignores ``$in`` / ``$or`` / ``$and`` inside ``$elemMatch``;
  on MongoDB each branch is a bounded scan of the table's compound index;
* ``prefix`` is the half-open range ``[v, successor(v))`` (MongoDB orders strings by UTF-8 bytes,
  i.e. by code point), which both servers answer from an index;
* negation is ``$nor`` (nx does not implement ``$not``).

Chains and reverse chains need the ids of other resources: the caller runs those sub-queries
(:func:`subqueries` lists them) and passes the resulting filters to :func:`compile_where`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import product
from typing import Any

from server.errors import InvalidSearch, NotSupported
from server.search.model import (
    TABLES,
    Always,
    And,
    Chain,
    Condition,
    FieldTest,
    Has,
    Match,
    Missing,
    Not,
    Or,
    ResourceTest,
)

from .capabilities import FALLBACK, Capabilities

Filter = dict[str, Any]

ALWAYS: Filter = {}
NEVER: Filter = {"_id": {"$in": []}}
"""A filter no document satisfies (``_id`` is never missing); folded away by :func:`and_`/:func:`or_`."""

MAX_IN_BRANCHES = 10_000
"""Most ``$elemMatch`` branches one Match may expand to (product of its ``in`` list sizes): beyond
that the filter document itself becomes the cost; the request is declined as too broad."""

RESOURCE_FIELDS = {"id": "id", "last_updated": "lu", "type": "type"}
"""ResourceTest fields → top-level document fields (see :mod:`.schema`)."""

SCALARS = (str, int, float, bool, type(None))

_RANGE = {"lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}


# --- boolean structure ------------------------------------------------------------------------


def and_(*filters: Filter) -> Filter:
    """Conjunction, folding ALWAYS away, collapsing to NEVER, flattening nested ``$and``."""
    items: list[Filter] = []
    for f in filters:
        if f == NEVER:
            return NEVER
        if not f:
            continue
        items.extend(f["$and"] if list(f) == ["$and"] else [f])
    if not items:
        return ALWAYS
    return items[0] if len(items) == 1 else {"$and": items}


def or_(*filters: Filter) -> Filter:
    """Disjunction, folding NEVER away and collapsing to ALWAYS."""
    items: list[Filter] = []
    for f in filters:
        if not f:
            return ALWAYS
        if f == NEVER:
            continue
        items.extend(f["$or"] if list(f) == ["$or"] else [f])
    if not items:
        return NEVER
    return items[0] if len(items) == 1 else {"$or": items}


def not_(f: Filter) -> Filter:
    if not f:
        return NEVER
    if f == NEVER:
        return ALWAYS
    return {"$nor": [f]}


# --- values -----------------------------------------------------------------------------------


def _scalar(param: str, value: object) -> object:
    if not isinstance(value, SCALARS):
        raise InvalidSearch(f"unsupported value {value!r} for search parameter {param!r}", expression=[param])
    return value


def _text(param: str, value: object) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise InvalidSearch(f"search parameter {param!r} needs a text value, got {value!r}", expression=[param])
    return value


def successor(prefix: str) -> str | None:
    """The least string greater than every string starting with ``prefix`` (None: no bound).

    Increments the last code point, skipping the surrogate block that UTF-8 cannot encode;
    trailing U+10FFFF characters are dropped first since they cannot be incremented."""
    stripped = prefix.rstrip("\U0010ffff")
    if not stripped:
        return None
    nxt = ord(stripped[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:
        nxt = 0xE000
    return stripped[:-1] + chr(nxt)


def _stricter(a: tuple[str, object], b: tuple[str, object], lower: bool, param: str) -> tuple[str, object]:
    (op_a, va), (_, vb) = a, b
    try:
        if va == vb:
            return a if op_a in ("$gt", "$lt") else b
        return a if (va > vb) == lower else b  # type: ignore[operator]
    except TypeError:
        raise InvalidSearch(f"incomparable values for search parameter {param!r}", expression=[param]) from None


def _field_ops(param: str, tests: Sequence[FieldTest]) -> tuple[Filter, tuple[object, ...] | None]:
    """Operators for one field, plus the allowed values when eq/in tests constrain it."""
    choices: tuple[object, ...] | None = None
    lower: tuple[str, object] | None = None
    upper: tuple[str, object] | None = None
    patterns: list[str] = []

    def bound(op: str, value: object) -> None:
        nonlocal lower, upper
        if op in ("$gt", "$gte"):
            lower = (op, value) if lower is None else _stricter(lower, (op, value), True, param)
        else:
            upper = (op, value) if upper is None else _stricter(upper, (op, value), False, param)

    for test in tests:
        if test.op in ("eq", "in"):
            raw = (test.value,) if test.op == "eq" else test.value
            if not isinstance(raw, tuple | list | frozenset | set):
                raise InvalidSearch(f"'in' needs a list of values for {param!r}", expression=[param])
            values = tuple(dict.fromkeys(_scalar(param, v) for v in raw))
            choices = values if choices is None else tuple(v for v in choices if v in values)
        elif test.op == "prefix":
            text = _text(param, test.value)
            bound("$gte", text)
            upper_bound = successor(text)
            if upper_bound is not None:
                bound("$lt", upper_bound)
        elif test.op == "contains":
            patterns.append(re.escape(_text(param, test.value)))
        elif test.op in _RANGE:
            bound(_RANGE[test.op], _scalar(param, test.value))
        else:
            raise InvalidSearch(f"unsupported comparison {test.op!r} for {param!r}", expression=[param])
    ops: Filter = {}
    for b in (lower, upper):
        if b is not None:
            ops[b[0]] = b[1]
    if len(patterns) == 1:
        ops["$regex"] = patterns[0]
    elif patterns:  # every substring must occur: one anchored regex of lookaheads
        ops["$regex"] = "^" + "".join(f"(?=[\\s\\S]*{p})" for p in patterns)
    return ops, choices


# --- conditions -------------------------------------------------------------------------------


def _check_table(table: str, param: str) -> tuple[str, ...]:
    if table not in TABLES:
        raise InvalidSearch(f"unknown index table {table!r} for {param!r}", expression=[param])
    return TABLES[table]


def compile_match(m: Match, caps: Capabilities = FALLBACK) -> Filter:
    fields = _check_table(m.table, m.param)
    by_field: dict[str, list[FieldTest]] = {}
    for test in m.tests:
        if test.field not in fields:
            raise InvalidSearch(f"{m.table} entries have no field {test.field!r}", expression=[m.param])
        by_field.setdefault(test.field, []).append(test)
    fixed: Filter = {"p": {"$eq": m.param}}
    varying: list[tuple[str, Filter, tuple[object, ...]]] = []
    for name, tests in by_field.items():
        ops, choices = _field_ops(m.param, tests)
        if choices is not None and not choices:
            return NEVER
        if choices is not None and len(choices) > 1:
            varying.append((name, ops, choices))
        elif choices is not None:
            fixed[name] = {"$eq": choices[0], **ops}
        else:
            fixed[name] = ops
    if caps.in_elem_match:  # one $elemMatch: ∃e: e.p = param ∧ e.f ∈ S ∧ …
        em = dict(fixed)
        for name, ops, choices in varying:
            em[name] = {"$in": list(choices), **ops}
        return {m.table: {"$elemMatch": em}}
    size = 1
    for _, _, choices in varying:
        size *= len(choices)
    if size > MAX_IN_BRANCHES:
        raise NotSupported(f"too many alternative values for {m.param!r} ({size})", expression=[m.param])
    branches: list[Filter] = []
    for combo in product(*(choices for _, _, choices in varying)):
        em = dict(fixed)
        for (name, ops, _), value in zip(varying, combo, strict=True):
            em[name] = {"$eq": value, **ops}
        branches.append({m.table: {"$elemMatch": em}})
    return or_(*branches)


def compile_resource_test(t: ResourceTest) -> Filter:
    if t.field not in RESOURCE_FIELDS:
        raise InvalidSearch(f"unknown resource field {t.field!r}")
    name = RESOURCE_FIELDS[t.field]
    ops, choices = _field_ops(t.field, (FieldTest(t.field, t.op, t.value),))
    if choices is None:
        return {name: ops}
    if not choices:
        return NEVER
    return {name: {"$eq": choices[0]} if len(choices) == 1 else {"$in": list(choices)}}


def has_entry(table: str, param: str) -> Filter:
    """True when the resource has at least one ``table`` entry for ``param``."""
    _check_table(table, param)
    return {table: {"$elemMatch": {"p": {"$eq": param}}}}


def compile_where(cond: Condition, resolved: Mapping[Chain | Has, Filter] | None = None,
                  caps: Capabilities = FALLBACK) -> Filter:
    """The filter for ``cond``; ``resolved`` holds the filter of each Chain/Has in it (see
    :func:`chain_filter`, :func:`has_filter`), computed by the caller from sub-query results.
    ``caps``: the forms the server answers (the default is correct on every server)."""
    done = resolved or {}
    match cond:
        case Always():
            return ALWAYS
        case Match():
            return compile_match(cond, caps)
        case Missing(table=table, param=param, missing=missing):
            present = has_entry(table, param)
            return not_(present) if missing else present
        case ResourceTest():
            return compile_resource_test(cond)
        case And(items=items):
            return and_(*(compile_where(i, done, caps) for i in items))
        case Or(items=items):
            return or_(*(compile_where(i, done, caps) for i in items))
        case Not(item=item):
            return not_(compile_where(item, done, caps))
        case Chain() | Has():
            if cond not in done:
                raise ValueError(f"unresolved sub-query {cond!r}: run it first (see subqueries())")
            return done[cond]
    raise TypeError(f"not a search condition: {cond!r}")


def subqueries(cond: Condition) -> list[Chain | Has]:
    """The Chain/Has nodes of ``cond`` not nested inside another Chain/Has, in order."""
    match cond:
        case Chain() | Has():
            return [cond]
        case And(items=items) | Or(items=items):
            return [s for i in items for s in subqueries(i)]
        case Not(item=item):
            return subqueries(item)
    return []


def ref_key(param: str, ref_type: str, ref_id: str) -> str:
    """One element of a resource's ``refs`` array: what a forward chain looks up (see schema)."""
    return f"{param}|{ref_type}/{ref_id}"


def chain_filter(chain: Chain, target_ids: Sequence[str], caps: Capabilities = FALLBACK) -> Filter:
    """Resources whose ``chain.param`` reference points at one of ``target_ids`` (of target_type):
    from the ``reference`` entries where the server answers ``$in`` inside ``$elemMatch`` (one
    index, no second array needed), else from the flat ``refs`` array (see :mod:`.schema`)."""
    if not target_ids:
        return NEVER
    if caps.in_elem_match:
        return {"reference": {"$elemMatch": {"p": {"$eq": chain.param}, "ref_id": {"$in": list(target_ids)},
                                             "ref_type": {"$eq": chain.target_type}}}}
    return {"refs": {"$in": [ref_key(chain.param, chain.target_type, i) for i in target_ids]}}


def has_filter(keys: Sequence[str]) -> Filter:
    """Resources whose ``_id`` ("Type/id") is among ``keys`` (the targets a ``_has`` found)."""
    return {"_id": {"$in": list(keys)}} if keys else NEVER


def conjoin(*filters: Filter) -> Filter:
    """:func:`and_`, written as one document where the parts name different fields (an implicit
    AND). Identical on MongoDB; nx-27017 answers ``type``/``id``/``lu``/``_id`` from its indexes only
    in this form (an explicit ``$and`` makes it scan the collection)."""
    found = and_(*filters)
    if list(found) != ["$and"]:
        return found
    merged: Filter = {}
    rest: list[Filter] = []
    for item in found["$and"]:
        if any(key in merged for key in item):
            rest.append(item)
        else:
            merged.update(item)
    if rest:
        merged["$and"] = rest
    return merged


def base_filter(types: Sequence[str], where: Filter) -> Filter:
    """Current, non-deleted resources of ``types`` (all types when empty) matching ``where``."""
    kinds: Filter = {}
    if len(types) == 1:
        kinds = {"type": {"$eq": types[0]}}
    elif types:
        kinds = {"type": {"$in": list(types)}}
    return conjoin({"deleted": {"$eq": False}}, kinds, where)


# --- chains/_has tested on each candidate with $lookup (servers with capabilities.lookup_arrays) --


def lookup_stages(node: Chain | Has, n: int, inner: Filter, collection: str) -> tuple[list[Filter], Filter]:
    """Aggregation stages joining each candidate to at most one resource of ``collection`` that
    ``node`` links it to and that matches ``inner`` (the sub-query's full filter), and the filter that
    stands for ``node`` after them (``_sq<n>`` not empty). The "test each candidate" side of
    :mod:`server.search.cost` in one pipeline, for servers whose ``$lookup`` returns real arrays.

    A chain joins the ``id`` of the targets to the ids its ``reference`` entries for the parameter
    and target type name; a ``_has`` joins the sources' ``refs`` to ``param|<this Type/id>``. Both
    use ``localField``/``foreignField`` together with a ``pipeline`` (MongoDB 5.0+), so the join is
    an index lookup (``{type, id}`` / ``refs``) and the sub-pipeline stops at the first match."""
    key, joined = f"_sq{n}k", f"_sq{n}"
    local: Any
    if isinstance(node, Chain):
        mine = {"$and": [{"$eq": ["$$e.p", node.param]}, {"$eq": ["$$e.ref_type", node.target_type]}]}
        local = {"$map": {"input": {"$filter": {"input": {"$ifNull": ["$reference", []]}, "as": "e", "cond": mine}},
                          "as": "e", "in": "$$e.ref_id"}}
        foreign = "id"
    else:
        local = {"$concat": [f"{node.param}|", "$_id"]}
        foreign = "refs"
    stages: list[Filter] = [
        {"$addFields": {key: local}},
        {"$lookup": {"from": collection, "localField": key, "foreignField": foreign,
                     "pipeline": [{"$match": inner}, {"$limit": 1}, {"$project": {"_id": 1}}], "as": joined}},
    ]
    return stages, {joined: {"$ne": []}}


def lookup_page(match: Filter, sort: Sequence[tuple[str, int]], stages: Sequence[Filter], full: Filter,
                limit: int, projection: Mapping[str, int]) -> list[Filter]:
    """One partition of a page: the candidates in result order (``match`` + ``sort``, from an index),
    each joined by ``stages`` and tested by ``full``, until ``limit`` pass (the stages after the
    ``$sort`` stream, so the server stops joining when the page is full)."""
    return [{"$match": match}, {"$sort": dict(sort)}, *stages, {"$match": full}, {"$limit": limit},
            {"$project": dict(projection)}]


def lookup_count(match: Filter, stages: Sequence[Filter], full: Filter) -> list[Filter]:
    """The ``_total`` of a joined search: every candidate joined and tested, then counted."""
    return [{"$match": match}, *stages, {"$match": full}, {"$count": "n"}]

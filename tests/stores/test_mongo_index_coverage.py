"""Every query shape the MongoDB store sends is served by an index of its schema, under MongoDB's
documented index-selection rules (issue 12 §2) — checked without a ``mongod``.

The shapes are compiled from the search test tables (tests/http/test_search_*.py), the ``_sort``
orders of test_search_results.py, each page's partitions (a parameter sort key present/missing)
with and without a paging cursor, the chain/``_has`` sub-queries, and history pages (system, type,
instance; ``_since``; cursor; ``_at``), in both the efficient and the fallback forms of
:mod:`server.stores.mongo.capabilities`. :mod:`server.stores.mongo.coverage` decides, per shape,
whether an index of :data:`server.stores.mongo.schema.INDEXES` serves it. Removing any index from a
copy of the set leaves some shape unserved (so the check fails when a shape loses its index, and
no index is dead weight); a Synthea bundle measures the write cost of the set.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from server.search.index import Indexer
from server.search.model import Chain, Condition, Has, Query
from server.search.parse import parse_search
from server.search.registry import SearchRegistry
from server.stores.base import HistoryQuery, Version
from server.stores.mongo import compile as c
from server.stores.mongo import coverage as cov
from server.stores.mongo import order
from server.stores.mongo.capabilities import EFFICIENT, FALLBACK, Capabilities
from server.stores.mongo.schema import HISTORY, INDEXES, RESOURCES, current_document, history_document
from tests.http import (
    test_search_common,
    test_search_composite,
    test_search_contract,
    test_search_date,
    test_search_quantity,
    test_search_reference,
    test_search_results,
    test_search_string,
    test_search_token,
    test_search_uri,
)
from tests.paths import SAMPLES

REGISTRY = SearchRegistry()

TABLES: list[tuple[str, Sequence[str]]] = [
    ("Patient", [q for q, _ in test_search_common.PATIENTS]),
    ("", [q for q, _ in test_search_common.SYSTEM]),
    ("Observation", [q for q, _ in test_search_composite.CASES]),
    *((path.strip("/") if path.strip("/") != "" else "", [q]) for path, q in test_search_contract.CASES),
    ("Observation", [q for q, _ in test_search_date.OBSERVATIONS]),
    ("Patient", [q for q, _ in test_search_date.PATIENTS]),
    ("RiskAssessment", [q for q, _ in test_search_quantity.NUMBERS]),
    ("Observation", [q for q, _ in test_search_quantity.QUANTITIES]),
    ("Observation", [q for q, _ in test_search_reference.OBSERVATIONS]),
    ("Patient", [q for q, _ in test_search_reference.PATIENTS]),
    ("Organization", [q for q, _ in test_search_reference.ORGANIZATIONS]),
    ("Patient", [f"_sort={s}" for s, _ in test_search_results.ORDERS]),
    ("Patient", [f"name=sortset&_sort={s}" for s, _ in test_search_results.ORDERS]),
    ("Patient", [q for q, _ in test_search_string.CASES]),
    ("Observation", [q for q, _ in test_search_token.OBSERVATIONS]),
    ("Patient", [q for q, _ in test_search_token.PATIENTS]),
    ("ValueSet", [q for q, _ in test_search_uri.CASES]),
    # sorts a client sends without a narrowing parameter (each served by an ordered index scan)
    *((t, [f"_sort={p}", f"_sort=-{p}"]) for t, ps in (("Patient", ("birthdate", "family", "given", "name", "gender",
                                                                   "identifier")),
                                                        ("Observation", ("date", "status", "subject", "patient",
                                                                         "code"))) for p in ps),
    ("Observation", ["_sort=date", "_sort=-date", "_sort=subject", "_sort=-subject", "_sort=status,-_lastUpdated",
                     "_sort=code", "_lastUpdated=gt2024-01-01", "_lastUpdated=gt2024-01-01&_sort=-_lastUpdated"]),
    ("Patient", ["_sort=-_lastUpdated", "_sort=_lastUpdated", "_sort=-_id", "", "_sort=family,given",
                 "gender:missing=true", "name:missing=false&_sort=birthdate"]),
    ("", ["_type=Patient,Observation&_sort=_lastUpdated", "_type=Patient,Observation"]),
]


@dataclass(frozen=True)
class Shape:
    label: str
    collection: str
    filter: c.Filter
    sort: tuple[tuple[str, int], ...]


def _params(query: str) -> list[tuple[str, str]]:
    return [(k, v) for k, _, v in (p.partition("=") for p in query.split("&") if p)]


def _query(type_: str, query: str) -> Query | None:
    params = _params(query)
    types: tuple[str, ...] = (type_,) if type_ else ()
    if not type_ and not any(k == "_type" for k, _ in params):
        return None
    try:
        return parse_search(types, params, REGISTRY).query
    except Exception:  # the tables hold some requests that are refused (400): no query is sent
        return None


def _resolved(cond: Condition, caps: Capabilities) -> dict[Chain | Has, c.Filter]:
    """Sub-query results as the store passes them on (two stand-in ids each)."""
    return {node: c.chain_filter(node, ["x1", "x2"], caps) if isinstance(node, Chain)
            else c.has_filter(["Patient/x1", "Patient/x2"]) for node in c.subqueries(cond)}


def _sample(field: order.SortField) -> object:
    return 5 if "date" in field.path or "quantity" in field.path or field.path == "lu" else "m"


def search_shapes(label: str, q: Query, caps: Capabilities) -> Iterator[Shape]:
    """The finds :func:`server.stores.mongo.reads.search` sends for ``q`` (first page and a later
    one, each partition), and those of its chain/``_has`` sub-queries."""
    base = c.base_filter(q.types, c.compile_where(q.where, _resolved(q.where, caps), caps))
    fields = order.sort_fields(q.sort)
    keys = len(q.sort)
    cursors: list[tuple[object, ...] | None] = [None]
    sample = tuple(_sample(f) for f in fields[:keys])
    cursors.append((*sample, "Patient", "m"))
    if any(f.missable for f in fields[:keys]):
        cursors.append((*(None if f.missable else v for f, v in zip(fields, sample, strict=False)), "Patient", "m"))
    for cursor in cursors:
        position = None if cursor is None else order.field_values(fields, cursor, keys)
        for part in order.partitions(fields):
            after = c.ALWAYS if position is None else order.after_filter(fields, position, part.missing)
            f = c.conjoin(base, part.filter, after)
            if f != c.NEVER:
                page = "first page" if cursor is None else f"cursor {cursor}"
                yield Shape(f"{label} [{page}, missing {part.missing}]", RESOURCES, f, tuple(part.sort))
    pending: list[tuple[str, Condition, Chain | Has]] = [
        (n.target_type if isinstance(n, Chain) else n.source_type, n.where, n) for n in c.subqueries(q.where)]
    while pending:
        type_, where, node = pending.pop()
        inner = c.base_filter((type_,), c.compile_where(where, _resolved(where, caps), caps))
        if isinstance(node, Has):
            inner = c.conjoin(inner, c.has_entry("reference", node.param))
        yield Shape(f"{label} [sub-query {node}]", RESOURCES, inner, ())
        pending += [(n.target_type if isinstance(n, Chain) else n.source_type, n.where, n) for n in c.subqueries(where)]


def history_shapes() -> Iterator[Shape]:
    before = (5, "Patient", "m", 3)
    for type_, id_ in ((None, None), ("Patient", None), ("Patient", "m")):
        for since in (None, 1):
            for cursor in (None, before):
                q = HistoryQuery(type_, id_, since=since, before=cursor)
                scope, page = order.history_filters(q)
                yield Shape(f"history {q}", HISTORY, c.and_(scope, page), tuple(order.HISTORY_SORT))
        scope, _ = order.history_filters(HistoryQuery(type_, id_))
        yield Shape(f"history _at {type_}/{id_}", HISTORY, c.and_(scope, {"lu": {"$lte": 5}}),
                    (("rid", 1), ("version", -1)))


def all_shapes() -> list[Shape]:
    out: list[Shape] = []
    for type_, queries in TABLES:
        for query in queries:
            q = _query(type_, query)
            if q is None:
                continue
            for name, caps in (("efficient", EFFICIENT), ("fallback", FALLBACK)):
                try:
                    out += search_shapes(f"{type_ or 'system'}?{query} ({name})", q, caps)
                except Exception:  # declined by the compiler (400): no query is sent
                    continue
    return out + list(history_shapes())


SHAPES = all_shapes()
INDEX_SETS = {name: [cov.from_model(m) for m in INDEXES[name]] for name in (RESOURCES, HISTORY)}


def unserved(indexes: dict[str, list[cov.Index]]) -> list[str]:
    return [s.label for s in SHAPES if cov.served_by(indexes[s.collection], s.filter, s.sort) is None]


def test_the_tables_yield_shapes_of_every_kind() -> None:
    assert len(SHAPES) > 1000
    labels = " ".join(s.label for s in SHAPES)
    for kind in ("sub-query", "cursor", "history _at", "_sort=-family", "efficient", "fallback", "_has"):
        assert kind in labels, kind


BLOCKING_SORTS = {"_sort=family,given", "_sort=status,-_lastUpdated",
                  *(f"_sort={s}" for s, _ in test_search_results.ORDERS if "," in s and "_id" not in s),
                  "_sort=-gender,-_id"}
"""Sorts on two keys with no narrowing parameter: MongoDB sorts the resources having both in memory
(an index per combination of keys and directions would not pay for its writes). Their other
partitions (a key missing) and the same sorts beside a narrowing parameter are served."""


def _blocking(label: str) -> bool:
    query = label.partition("?")[2].split(" (", 1)[0]
    return query in BLOCKING_SORTS and "missing (False, False, False" in label


def test_every_query_shape_is_served_by_an_index() -> None:
    missing = [label for label in unserved(INDEX_SETS) if not _blocking(label)]
    assert not missing, f"{len(missing)} query shapes without an index, e.g.:\n" + "\n".join(missing[:20])


def test_two_key_sorts_without_criteria_are_the_documented_blocking_sorts() -> None:
    blocking = {label for label in unserved(INDEX_SETS) if _blocking(label)}
    assert {label.split("?", 1)[1].split(" (", 1)[0] for label in blocking} == BLOCKING_SORTS


REQUIRED_ONLY_FOR_WRITES = {"type_1_id_1_version_1"}
"""History's unique key: vread reads by ``_id``; it enforces one document per version."""


@pytest.mark.parametrize("collection", [RESOURCES, HISTORY])
def test_removing_any_index_leaves_a_shape_unserved(collection: str) -> None:
    shapes = [s for s in SHAPES if s.collection == collection and not _blocking(s.label)]
    plans = [(s, cov.served_by(INDEX_SETS[collection], s.filter, s.sort) or []) for s in shapes]
    for index in INDEX_SETS[collection]:
        if index.name in REQUIRED_ONLY_FOR_WRITES or index.keys == (("pending", 1),):
            continue
        fewer = [i for i in INDEX_SETS[collection] if i != index]
        # only a shape whose plan used the index can lose it
        assert any(cov.served_by(fewer, s.filter, s.sort) is None for s, plan in plans if index in plan), \
            f"no query shape needs {index.name}"


# --- the rules themselves, on small cases ------------------------------------------------------

IDX = cov.Index((("type", 1), ("lu", 1), ("id", 1)))


@pytest.mark.parametrize(("index", "f", "sort", "expected"), [
    # equality, then the sort: the ESR prefix
    (IDX, {"type": {"$eq": "P"}}, [("lu", 1), ("type", 1), ("id", 1)], True),
    # every direction reversed: read backwards
    (IDX, {"type": {"$eq": "P"}}, [("lu", -1), ("type", 1), ("id", -1)], True),
    # mixed directions need an index with the same mix
    (IDX, {"type": {"$eq": "P"}}, [("lu", -1), ("type", 1), ("id", 1)], False),
    # the tie-break id is missing from {type, lu}
    (cov.Index((("type", 1), ("lu", 1))), {"type": {"$eq": "P"}}, [("lu", 1), ("type", 1), ("id", 1)], False),
    # a range before the sort key ends what the index can sort (ESR, not ERS)
    (cov.Index((("type", 1), ("lu", 1), ("id", 1))), {"type": {"$eq": "P"}, "lu": {"$gt": 5}}, [("id", 1)], False),
    # a range on the sort key itself keeps the order
    (IDX, {"type": {"$eq": "P"}, "lu": {"$gt": 5}}, [("lu", 1), ("id", 1)], True),
    # no equality on the leading key: the sort must start there
    (IDX, {}, [("lu", 1), ("id", 1)], False),
    # $in on the leading key: one scan per value merged in order
    (IDX, {"type": {"$in": ["A", "B"]}}, [("lu", 1), ("type", 1), ("id", 1)], True),
    (IDX, {"type": {"$in": [f"T{i}" for i in range(201)]}}, [("lu", 1), ("id", 1)], False),
    # a multikey field never yields a sort
    (cov.Index((("type", 1), ("token.code", 1))), {"type": {"$eq": "P"}}, [("token.code", 1)], False),
    # an $elemMatch fixing p and bounding the next key is a tight bounded scan …
    (cov.Index((("token.p", 1), ("token.code", 1))),
     {"type": {"$eq": "P"}, "token": {"$elemMatch": {"p": {"$eq": "code"}, "code": {"$in": ["a", "b"]}}}}, [], True),
    # … but not when the index's next key is not one the $elemMatch bounds
    (cov.Index((("token.p", 1), ("token.system", 1))),
     {"token": {"$elemMatch": {"p": {"$eq": "code"}, "code": {"$eq": "a"}}}}, [], False),
    # nor without the parameter code (p) fixed
    (cov.Index((("token.p", 1), ("token.code", 1))), {"token": {"$elemMatch": {"code": {"$eq": "a"}}}}, [], False),
    # a partial index only where the query implies its filter
    (cov.Index((("type", 1), ("sort.date.min", 1), ("id", 1)), requires="sort.date.min"),
     {"type": {"$eq": "P"}, "sort.date.min": {"$exists": True}}, [("sort.date.min", 1), ("type", 1), ("id", 1)], True),
    (cov.Index((("type", 1), ("sort.date.min", 1), ("id", 1)), requires="sort.date.min"),
     {"type": {"$eq": "P"}}, [("sort.date.min", 1), ("type", 1), ("id", 1)], False),
])
def test_planner_rules(index: cov.Index, f: c.Filter, sort: list[tuple[str, int]], expected: bool) -> None:
    assert cov.serves(index, f, sort) is expected


def test_an_or_is_served_clause_by_clause_else_it_filters() -> None:
    keyset = {"type": {"$eq": "P"}, "$or": [{"lu": {"$gt": 5}}, {"lu": {"$eq": 5}, "id": {"$gt": "m"}}]}
    sort = [("lu", 1), ("type", 1), ("id", 1)]
    assert cov.served_by([IDX], keyset, sort) == [IDX, IDX]  # each clause seeks in {type, lu, id}
    branches = {"$or": [{"token": {"$elemMatch": {"p": {"$eq": "c"}, "code": {"$eq": v}}}} for v in "ab"]}
    token = cov.Index((("token.p", 1), ("token.code", 1)))
    assert cov.served_by([token], branches, [("type", 1), ("id", 1)]) == [token, token]
    # a clause whose entry condition no index bounds: an ordered scan would test every document
    by_id = cov.Index((("type", 1), ("id", 1)))
    mixed = {"type": {"$eq": "P"}, "$or": [branches["$or"][0], {"lu": {"$eq": 2}}]}
    assert cov.served_by([by_id], mixed, [("type", 1), ("id", 1)]) is None
    assert cov.served_by([by_id, token], mixed, [("type", 1), ("id", 1)]) == [token, by_id]


# --- write cost -------------------------------------------------------------------------------


def test_write_cost_of_the_index_set_on_a_synthea_bundle() -> None:
    """Index keys written per resource write (its current document and its history document),
    counted on the first Synthea bundle; printed for the README (``pytest -s``)."""
    bundle = sorted((SAMPLES / "synthea").glob("*.json.gz"))[0]
    resources = [e["resource"] for e in json.loads(gzip.decompress(bundle.read_bytes()))["entry"]]
    indexer = Indexer(REGISTRY)
    current = [*INDEX_SETS[RESOURCES], cov.ID_INDEX]
    old = [cov.from_model(m) for m in INDEXES[RESOURCES] if m.document["key"].get("refs") is None]
    totals = {"all": 0, "history": 0, "refs": 0, "sort": 0}
    for r in resources:
        body = json.dumps(r).encode()
        v = Version(r["resourceType"], r["id"], 1, 0, False, "POST", body)
        doc = current_document(v, indexer.entries(r))
        n = sum(cov.entries(doc, i) for i in current)
        hist = sum(cov.entries(history_document(v), i) for i in [*INDEX_SETS[HISTORY], cov.ID_INDEX])
        totals["all"] += n + hist
        totals["history"] += hist
        totals["refs"] += n - sum(cov.entries(doc, i) for i in [*old, cov.ID_INDEX])
        totals["sort"] += sum(cov.entries(doc, i) for i in current if i.requires)
    per = {k: round(v / len(resources), 1) for k, v in totals.items()}
    print(f"\n{bundle.name}: {len(resources)} resources; index keys per resource write: {per}")
    assert per["history"] == len(INDEX_SETS[HISTORY]) + 1  # one key per history index
    assert 0 < per["refs"] < per["all"] and 0 < per["sort"] < per["all"]

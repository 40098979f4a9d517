"""Could MongoDB's query planner serve a compiled query from an index? Pure: no server, no I/O.

No real ``mongod`` runs on our machines and the nx-27017 test server neither uses multikey
indexes the way MongoDB does nor reports MongoDB's plans, so the index set of :mod:`.schema` is
checked against the query shapes the compiler emits by the rules the MongoDB manual documents:

* **Equality, sort, range** ("The ESR (Equality, Sort, Range) Guideline",
  https://www.mongodb.com/docs/manual/tutorial/equality-sort-range-guideline/): an index bounds a
  scan by its leading keys; it yields the sort order only when every key before the sort keys is
  bound to one value (equality), and a range on a key ends what it can sort.
* **Sorting with an index** ("Use Indexes to Sort Query Results",
  https://www.mongodb.com/docs/manual/tutorial/sort-results-with-indexes/): the sort keys must
  appear in the index's order, with directions all equal to the key pattern's or all reversed
  (an index is read backwards); a sort may skip index keys that the query bounds by equality
  ("sort on a non-prefix subset … with equality conditions on the prefix keys"); a sort on a field
  of a multikey index is a blocking (in-memory) sort, whatever the bounds, unless its bounds are
  [MinKey, MaxKey] — we never sort on an array, so any sort key inside an array fails here.
  An ``$in`` on a key before the sort keys is served by one index scan per value merged in order
  (the planner's "explode for sort", SORT_MERGE; at most 200 scans, ``internalQueryMaxScansToExplode``).
* **Multikey bounds** ("Multikey Index Bounds",
  https://www.mongodb.com/docs/manual/core/multikey-index-bounds/): two keys of one array of
  sub-documents are bounded together (compound bounds) only when one ``$elemMatch`` holds both
  predicates; a predicate outside it bounds nothing of the array's keys here (we never emit one).
* **$or** ("$or Clauses and Indexes", https://www.mongodb.com/docs/manual/reference/operator/query/or/):
  an ``$or`` is answered from indexes only when every clause is; the predicates AND-ed with it are
  used in each clause's bounds. Otherwise the ``$or`` is a filter on what another index found.
* **Partial indexes** ("Partial Indexes", https://www.mongodb.com/docs/manual/core/index-partial/):
  the planner uses one only when the query implies its ``partialFilterExpression``; ours are
  ``{path: {$exists: true}}``, implied by the same ``$exists: true`` predicate in the query.

"Served" is then decided per query shape (:func:`served_by`): a query with an *indexable entry
condition* — an ``$elemMatch`` fixing a parameter code, ``refs``/``_id``/``id`` equal to given
values — must be *bounded* by an index on one of them, tightly: an ``$elemMatch`` that bounds a
value field needs an index whose key after ``p`` is such a field (a blocking sort of the few
matches is accepted); any other query (only ``type``, ``lu``, keyset cursors, ``$exists``
partitions, negations) must be *sorted* by an index: the page is the first ``limit`` entries of
an ordered scan. An ``$or`` is first tried clause by clause (each clause served, with the
AND-ed predicates pushed in — how a keyset cursor seeks); only an ``$or`` none of whose clauses
holds an entry condition may instead be a residual filter on what the rest of the query found.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import IndexModel

from server.search.model import TABLES

Filter = Mapping[str, Any]
Sort = Sequence[tuple[str, int]]

ARRAYS = frozenset({*TABLES, "refs"})
"""Top-level fields that hold arrays (their indexes are multikey)."""
SELECTIVE = frozenset({"_id", "id", "refs"})
"""Keys whose equality selects few documents (beside an ``$elemMatch`` on an entry table)."""
MAX_EXPLODE = 200
"""Most index scans the planner merges to serve a sort after an ``$in`` (``internalQueryMaxScansToExplode``)."""
_RANGES = frozenset({"$gt", "$gte", "$lt", "$lte"})


@dataclass(frozen=True, slots=True)
class Index:
    """A key pattern, and the path a partial index requires to exist."""

    keys: tuple[tuple[str, int], ...]
    requires: str | None = None

    @property
    def name(self) -> str:
        return "_".join(f"{k}_{d}" for k, d in self.keys) + (f" (partial: {self.requires})" if self.requires else "")


def from_model(model: IndexModel) -> Index:
    doc = model.document
    requires = None
    partial = doc.get("partialFilterExpression")
    if partial:
        (requires, test), = partial.items()
        if test != {"$exists": True}:
            raise ValueError(f"only {{path: {{$exists: true}}}} partial indexes are modelled, not {partial}")
    return Index(tuple((str(k), int(d)) for k, d in doc["key"].items()), requires)


ID_INDEX = Index((("_id", 1),))
"""Every collection's implicit unique index."""


# --- predicates ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bound:
    kind: str
    """``point`` (one value), ``points`` (``$in``: n values), ``range`` or ``none``."""
    n: int = 1


NONE = Bound("none")


def bound_of(ops: object) -> Bound:
    """What a predicate on one field bounds in an index on it."""
    if not isinstance(ops, Mapping) or not any(str(k).startswith("$") for k in ops):
        return Bound("point")  # a plain value is equality
    if "$eq" in ops:
        return Bound("point")
    if "$in" in ops and isinstance(ops["$in"], list | tuple):
        n = len(ops["$in"])
        return Bound("point") if n <= 1 else Bound("points", n)
    if _RANGES & set(ops):
        return Bound("range")
    return NONE


def _equal(b: Bound) -> bool:
    return b.kind == "point" or (b.kind == "points" and b.n <= MAX_EXPLODE)


@dataclass(slots=True)
class Conjunction:
    """A filter taken apart: predicates on fields, ``$elemMatch`` on arrays, ``$or`` lists (the rest,
    ``$nor`` above all, only filters)."""

    fields: dict[str, list[object]] = field(default_factory=dict)
    elems: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)
    ors: list[list[Filter]] = field(default_factory=list)

    def add(self, f: Filter) -> None:
        for key, value in f.items():
            if key == "$and":
                for item in value:
                    self.add(item)
            elif key == "$or":
                self.ors.append(list(value))
            elif key.startswith("$"):
                continue  # $nor and other operators: a filter on what an index found
            elif isinstance(value, Mapping) and set(value) == {"$elemMatch"}:
                self.elems.append((key, value["$elemMatch"]))
            else:
                self.fields.setdefault(key, []).append(value)

    def copy(self) -> Conjunction:
        return Conjunction({k: list(v) for k, v in self.fields.items()}, list(self.elems), list(self.ors))

    def bound(self, path: str) -> Bound:
        found = [bound_of(v) for v in self.fields.get(path, ())]
        for kind in ("point", "points", "range"):
            if any(b.kind == kind for b in found):
                return min((b for b in found if b.kind == kind), key=lambda b: b.n)
        return NONE

    def implies_exists(self, path: str) -> bool:
        return any(isinstance(v, Mapping) and v.get("$exists") is True for v in self.fields.get(path, ()))

    def candidates(self) -> bool:
        """Whether the conjunction holds an indexable entry condition (see the module docstring)."""
        if any(isinstance(em.get("p"), Mapping) and bound_of(em["p"]).kind == "point" for _, em in self.elems):
            return True
        return any(_equal(self.bound(k)) or self.bound(k).kind == "points" for k in SELECTIVE if k in self.fields)


def _root(path: str) -> str:
    return path.split(".", 1)[0]


def _value_bounded(em: Mapping[str, Any]) -> set[str]:
    return {name for name, ops in em.items() if name != "p" and bound_of(ops).kind != "none"}


# --- one index ----------------------------------------------------------------------------------


def _key_bounds(index: Index, c: Conjunction, em: Mapping[str, Any] | None) -> list[Bound]:
    """Bounds of each key: array-table keys from the one ``$elemMatch`` ``em``, others from fields."""
    out = []
    for path, _ in index.keys:
        root = _root(path)
        if root in TABLES and root != path:
            sub = path.split(".", 1)[1]
            out.append(bound_of(em[sub]) if em is not None and sub in em else NONE)
        else:
            out.append(c.bound(path))
    return out


def _elem_choices(index: Index, c: Conjunction) -> list[Mapping[str, Any] | None]:
    roots = {_root(k) for k, _ in index.keys if _root(k) in TABLES}
    if not roots:
        return [None]
    (root,) = roots  # a compound multikey index may hold one array only
    return [em for table, em in c.elems if table == root] or [None]


def usable(index: Index, c: Conjunction) -> bool:
    return index.requires is None or c.implies_exists(index.requires)


def bounded(index: Index, c: Conjunction) -> bool:
    """The index bounds the scan to an indexable entry condition of ``c``, tightly (module docstring)."""
    if not usable(index, c):
        return False
    for em in _elem_choices(index, c):
        bounds = _key_bounds(index, c, em)
        first = index.keys[0][0]
        if em is not None and first == f"{_root(first)}.p":
            if bounds[0].kind != "point":
                continue
            wanted = {f"{_root(first)}.{name}" for name in _value_bounded(em)}
            if not wanted or (len(index.keys) > 1 and index.keys[1][0] in wanted and bounds[1].kind != "none"):
                return True
            continue
        for (path, _), b in zip(index.keys, bounds, strict=True):
            if path in SELECTIVE and b.kind in ("point", "points"):
                return True
            if not _equal(b):
                break
    return False


def sorted_by(index: Index, c: Conjunction, sort: Sort) -> bool:
    """The index yields ``sort`` (ESR, direction, equality-skipped keys, no multikey sort key)."""
    if not usable(index, c) or any(_root(path) in ARRAYS for path, _ in sort):
        return False
    em = _elem_choices(index, c)[0]
    bounds = _key_bounds(index, c, em)
    points = [n for n, b in enumerate(bounds) if _equal(b)]
    if points and any(b.kind == "none" for b in bounds[: points[-1]]):
        return False  # the order holds, but the scan reads every key of an unbounded leading field (ESR)
    equal = {path for (path, _), b in zip(index.keys, bounds, strict=True) if _equal(b)}
    rest = [(p, d) for p, d in index.keys if p not in equal]
    wanted = [(p, d) for p, d in sort if p not in equal and not _equal(c.bound(p))]
    if len(wanted) > len(rest):
        return False
    head = rest[: len(wanted)]
    if [p for p, _ in head] != [p for p, _ in wanted]:
        return False
    same = all(d == w for (_, d), (_, w) in zip(head, wanted, strict=True))
    reverse = all(d == -w for (_, d), (_, w) in zip(head, wanted, strict=True))
    return same or reverse


def serves(index: Index, f: Filter, sort: Sort) -> bool:
    """Whether ``index`` alone serves the query ``f`` sorted by ``sort`` (no ``$or`` distribution)."""
    c = Conjunction()
    c.add(f)
    return _flat(c, sort, (index,)) is not None


# --- a query shape against an index set -------------------------------------------------------


def _flat(c: Conjunction, sort: Sort, indexes: Iterable[Index]) -> Index | None:
    if c.candidates():
        return next((i for i in indexes if bounded(i, c)), None)
    return next((i for i in indexes if sorted_by(i, c, sort)), None)


def served_by(indexes: Sequence[Index], f: Filter, sort: Sort) -> list[Index] | None:
    """The indexes a plan for ``f`` sorted by ``sort`` uses (one per ``$or`` clause), or None when
    no plan of the set serves it (see the module docstring)."""
    c = Conjunction()
    c.add(f)
    return _served(c, sort, (*indexes, ID_INDEX))


def _served(c: Conjunction, sort: Sort, indexes: Sequence[Index]) -> list[Index] | None:
    if not c.ors:
        found = _flat(c, sort, indexes)
        return None if found is None else [found]
    first, rest = c.ors[0], c.ors[1:]
    used: list[Index] = []
    for clause in first:
        branch = c.copy()
        branch.ors = list(rest)
        branch.add(clause)
        plan = _served(branch, sort, indexes)
        if plan is None:
            break
        used += plan
    else:
        return used
    if any(_clause(clause).candidates() for clause in first):
        return None  # an entry condition no index bounds: a scan would test every document
    residual = c.copy()
    residual.ors = list(rest)
    return _served(residual, sort, indexes)


def _clause(f: Filter) -> Conjunction:
    c = Conjunction()
    c.add(f)
    return c


def entries(doc: Mapping[str, Any], index: Index) -> int:
    """How many keys ``index`` holds for the document ``doc`` (its write cost): one per element of
    the array its keys reach (distinct key tuples), one for a scalar document, none when a partial
    index's path is missing."""
    if index.requires is not None and _get(doc, index.requires) is None:
        return 0
    arrays = {_root(k) for k, _ in index.keys if isinstance(doc.get(_root(k)), list)}
    if not arrays:
        return 1
    (root,) = arrays
    subs = [k.split(".", 1)[1] if "." in k else None for k, _ in index.keys if _root(k) == root]
    items = doc[root]
    keys = {tuple(repr(e.get(s) if isinstance(e, Mapping) and s else e) for s in subs) for e in items}
    return max(1, len(keys))


def _get(doc: Mapping[str, Any], path: str) -> object:
    value: object = doc
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value

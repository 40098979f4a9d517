"""Result order and keyset cursors for search and history. Pure: no I/O.

Search order (http://hl7.org/fhir/R4/search.html#sort): the query's sort keys, then ``type`` and
``id`` ascending so the order is total. A key on a parameter compares that parameter's smallest
value (ascending) or largest (descending), read from the ``sort`` sub-document written with each
resource (see :mod:`.schema`); resources without a value come last in both directions.

MongoDB puts missing values *first* when ascending, and the expressions that could compute a
"missing" flag in an aggregation are unreliable on the nx-27017 test server. So a query with ``k``
parameter keys runs as up to ``2**k`` plain ``find`` partitions, one per pattern of present/missing
keys: inside a partition the missing keys are constant, so MongoDB's own sort on the present keys
(indexable) is the wanted order, and the partitions' first pages are merged here with the full
comparator. Keyset cursors (``after``) are compiled per partition, which also prunes partitions
that lie entirely before the cursor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cmp_to_key
from itertools import product
from typing import Any

from server.errors import InvalidSearch, NotSupported
from server.search.model import SortKey
from server.stores.base import HistoryQuery

from .compile import ALWAYS, NEVER, Filter, and_, or_

MAX_PARAM_SORT_KEYS = 4
"""At most this many parameter sort keys (2**4 = 16 partition queries per page)."""

PARAM_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")
"""A parameter code usable as a key of the ``sort`` sub-document (no ``.``/``$``)."""

ROW_FIELDS = {"id": "id", "last_updated": "lu"}


@dataclass(frozen=True, slots=True)
class SortField:
    """One sort key as stored: a top-level field, or ``sort.<param>.<min|max>`` (``missable``)."""

    path: str
    descending: bool
    missable: bool

    def value(self, doc: Mapping[str, Any]) -> object:
        if not self.missable:
            return doc.get(self.path)
        _, param, bound = self.path.split(".")
        return (doc.get("sort") or {}).get(param, {}).get(bound)


@dataclass(frozen=True, slots=True)
class Partition:
    """One present/missing pattern of the missable keys: its extra filter and MongoDB sort."""

    missing: tuple[bool, ...]
    """Aligned with the plan's fields (always False for non-missable ones)."""
    filter: Filter
    sort: list[tuple[str, int]]


def sort_fields(keys: Sequence[SortKey]) -> tuple[SortField, ...]:
    """The stored fields for ``keys``, then ``type``/``id`` ascending (the tie-breakers).

    Keyset cursors (``Query.after``) hold one value per returned field, in this order."""
    fields: list[SortField] = []
    for key in keys:
        if key.table == "resource":
            if key.param not in ROW_FIELDS:
                raise InvalidSearch(f"cannot sort by {key.param!r}", expression=["_sort"])
            fields.append(SortField(ROW_FIELDS[key.param], key.descending, False))
        else:
            if not PARAM_NAME.match(key.param):
                raise InvalidSearch(f"cannot sort by {key.param!r}", expression=["_sort"])
            bound = "max" if key.descending else "min"
            fields.append(SortField(f"sort.{key.param}.{bound}", key.descending, True))
    if sum(f.missable for f in fields) > MAX_PARAM_SORT_KEYS:
        raise NotSupported(f"at most {MAX_PARAM_SORT_KEYS} parameters in _sort", expression=["_sort"])
    # tie-breakers make the order total; a field already sorted on is not repeated (a sort
    # specification must not name a field twice)
    fields += [
        f
        for f in (SortField("type", False, False), SortField("id", False, False))
        if f.path not in {g.path for g in fields}
    ]
    return tuple(fields)


def partitions(fields: Sequence[SortField]) -> list[Partition]:
    missable = [i for i, f in enumerate(fields) if f.missable]
    out = []
    for pattern in product((False, True), repeat=len(missable)):
        missing = [False] * len(fields)
        for i, m in zip(missable, pattern, strict=True):
            missing[i] = m
        exists = and_(*({fields[i].path: {"$exists": not missing[i]}} for i in missable))
        sort = [(f.path, -1 if f.descending else 1) for f, m in zip(fields, missing, strict=True) if not m]
        out.append(Partition(tuple(missing), exists, sort))
    return out


def after_filter(fields: Sequence[SortField], after: Sequence[object], missing: Sequence[bool]) -> Filter:
    """Rows of one partition strictly after the cursor row ``after`` (a :func:`cursor` value)."""
    if len(after) != len(fields):
        raise InvalidSearch("malformed paging cursor", expression=["_cursor"])
    branches: list[Filter] = []
    equal: list[Filter] = []
    for f, a, m in zip(fields, after, missing, strict=True):
        if m:  # this partition's rows lack the key: they follow any value, tie with "missing"
            greater, same = (NEVER, ALWAYS) if a is None else (ALWAYS, NEVER)
        elif a is None:  # the cursor row lacks the key, these rows have it: they come before
            if not f.missable:
                raise InvalidSearch("malformed paging cursor", expression=["_cursor"])
            greater, same = NEVER, NEVER
        else:
            if isinstance(a, dict | list | tuple):
                raise InvalidSearch("malformed paging cursor", expression=["_cursor"])
            greater = {f.path: {"$lt" if f.descending else "$gt": a}}
            same = {f.path: {"$eq": a}}
        branches.append(and_(*equal, greater))
        equal.append(same)
        if and_(*equal) == NEVER:
            break
    return or_(*branches)


def cursor(fields: Sequence[SortField], doc: Mapping[str, Any], keys: int) -> tuple[object, ...]:
    """The keyset cursor of a row in the search core's shape (``Query.after``): the values of the
    ``keys`` sort keys (None when missing), then type and id."""
    return (*(f.value(doc) for f in fields[:keys]), doc.get("type"), doc.get("id"))


def field_values(fields: Sequence[SortField], after: Sequence[object], keys: int) -> tuple[object, ...]:
    """A core cursor (``keys`` sort values, type, id) aligned with ``fields``, whose tie-breakers
    leave out a field already sorted on (``_sort=_id``)."""
    tail = {"type": after[-2], "id": after[-1]}
    return (*after[:keys], *(tail[f.path] for f in fields[keys:]))


def _rank(v: object) -> tuple[int, Any]:
    """BSON comparison order across types: numbers before strings (values of one key share a type)."""
    if isinstance(v, int | float):
        return (1, v)
    return (2, str(v))


def comparator(fields: Sequence[SortField]) -> Callable[[Mapping[str, Any]], Any]:
    """A sort key function for documents implementing the full search order."""

    def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
        for f in fields:
            va, vb = f.value(a), f.value(b)
            if va is None or vb is None:
                if va is None and vb is None:
                    continue
                return 1 if va is None else -1
            ra, rb = _rank(va), _rank(vb)
            if ra != rb:
                return (1 if ra > rb else -1) * (-1 if f.descending else 1)
        return 0

    return cmp_to_key(compare)


# --- history ----------------------------------------------------------------------------------

HISTORY_SORT = [("lu", -1), ("type", -1), ("id", -1), ("version", -1)]
"""Newest first; type, id and version break ties so the order is total."""


def history_filters(q: HistoryQuery) -> tuple[Filter, Filter]:
    """The scope (type, id) and the page (``since``, cursor) filters of a history query, on
    ``history`` documents; sorted by :data:`HISTORY_SORT` (indexes: :mod:`.schema`)."""
    scope = and_(
        {"type": {"$eq": q.type}} if q.type is not None else ALWAYS,
        {"id": {"$eq": q.id}} if q.id is not None else ALWAYS,
    )
    since = {"lu": {"$gte": q.since}} if q.since is not None else ALWAYS
    return scope, and_(since, before_filter(q.before))


def before_filter(before: tuple[int, str, str, int] | None) -> Filter:
    """History rows strictly after the cursor row ``before`` in :data:`HISTORY_SORT` order."""
    if before is None:
        return ALWAYS
    if len(before) != len(HISTORY_SORT):
        raise InvalidSearch("malformed history cursor", expression=["_cursor"])
    branches = []
    equal: list[Filter] = []
    for (path, _), value in zip(HISTORY_SORT, before, strict=True):
        branches.append(and_(*equal, {path: {"$lt": value}}))
        equal.append({path: {"$eq": value}})
    return or_(*branches)

"""Whether one resource meets a condition, decided in memory from its search entries. Pure.

Used only where there is no stored row to query: a write under a query-restricted scope
(``user/Observation.cu?category=laboratory``) must itself match the query. Tests on entries
(token, string, reference, uri, and number/date/quantity ranges), ``_id``/``_type``, and/or/not
are decided; chains and ``_has`` need other resources and are decided as *not matching*, which
refuses the write rather than widening the scope.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from server.search.index import Indexer
from server.search.model import (
    TABLES,
    Always,
    And,
    Condition,
    Entry,
    FieldTest,
    Match,
    Missing,
    Not,
    Or,
    ResourceTest,
)
from server.search.registry import SearchRegistry


@cache
def _indexer(registry: SearchRegistry) -> Indexer:
    return Indexer(registry)


def matches(cond: Condition, resource: dict[str, Any], registry: SearchRegistry) -> bool:
    entries = _indexer(registry).entries(resource)
    return _test(cond, resource, entries)


def _test(cond: Condition, resource: dict[str, Any], entries: list[Entry]) -> bool:
    if isinstance(cond, Always):
        return True
    if isinstance(cond, And):
        return all(_test(c, resource, entries) for c in cond.items)
    if isinstance(cond, Or):
        return any(_test(c, resource, entries) for c in cond.items)
    if isinstance(cond, Not):
        return not _test(cond.item, resource, entries)
    if isinstance(cond, Match):
        return any(e.table == cond.table and e.param == cond.param and _fields(e, cond.tests) for e in entries)
    if isinstance(cond, Missing):
        present = any(e.table == cond.table and e.param == cond.param for e in entries)
        return present != cond.missing
    if isinstance(cond, ResourceTest) and cond.field in ("id", "type"):
        value = resource.get("id") if cond.field == "id" else resource.get("resourceType")
        return _compare(value, cond.op, cond.value)
    return False  # chains, _has, _lastUpdated: not decidable here


def _fields(entry: Entry, tests: tuple[FieldTest, ...]) -> bool:
    values = dict(zip(TABLES[entry.table], entry.values, strict=True))
    return all(_compare(values.get(t.field), t.op, t.value) for t in tests)


def _compare(actual: object, op: str, expected: object) -> bool:
    if op == "eq":
        return actual == expected
    if op == "in":
        return isinstance(expected, tuple | list) and actual in expected
    if not isinstance(actual, str | int | float) or actual is None:
        return False
    if op == "prefix":
        return isinstance(actual, str) and isinstance(expected, str) and actual.startswith(expected)
    if op == "contains":
        return isinstance(actual, str) and isinstance(expected, str) and expected in actual
    try:
        if op == "lt":
            return actual < expected  # type: ignore[operator]
        if op == "le":
            return actual <= expected  # type: ignore[operator]
        if op == "gt":
            return actual > expected  # type: ignore[operator]
        if op == "ge":
            return actual >= expected  # type: ignore[operator]
    except TypeError:
        return False
    return False

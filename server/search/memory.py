"""A condition decided in memory on one resource's own index entries. Pure.

Where there is no stored row to query, or a query would cost more than the answer: the read path
deciding whether a version it already holds is visible (:mod:`server.interactions.visibility`),
and a write under a query-restricted scope that must itself match the query
(:mod:`server.access.evaluate`). Index tests (``Match``, ``Missing``), row tests (``ResourceTest``)
and and/or/not are decided here exactly as the stores decide them on stored entries; chains and
``_has`` need other resources and raise :class:`NeedsStore`, so the caller asks the store instead
(or refuses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from server.search.model import (
    Always,
    And,
    Chain,
    Condition,
    Entry,
    FieldTest,
    Has,
    Match,
    Missing,
    Not,
    Or,
    ResourceTest,
)


class NeedsStore(Exception):
    """The condition cannot be decided from the resource alone (a chain or ``_has``)."""


@dataclass(frozen=True, slots=True)
class Row:
    """The row fields a :class:`ResourceTest` looks at."""

    type: str
    id: str
    last_updated: int = 0


def tested_params(where: Condition) -> frozenset[str]:
    """The parameter codes ``where`` tests, so that only those are indexed (raises
    :class:`NeedsStore` for chains and ``_has``). Conditions are frozen values and a caller's
    visibility condition is asked about on every read: the answer is cached."""
    return _tested(where)


@lru_cache(maxsize=4096)
def _tested(where: Condition) -> frozenset[str]:
    out: set[str] = set()
    _collect(where, out)
    return frozenset(out)


def _collect(where: Condition, out: set[str]) -> None:
    if isinstance(where, Match | Missing):
        out.add(where.param)
        out.add(where.param.partition(":")[0])  # ``owner:identifier`` entries come from the ``owner`` parameter
    elif isinstance(where, And | Or):
        for item in where.items:
            _collect(item, out)
    elif isinstance(where, Not):
        _collect(where.item, out)
    elif isinstance(where, Chain | Has):
        raise NeedsStore


def field_passes(op: str, have: object, want: object) -> bool:
    if op == "eq":
        return have == want
    if have is None:
        return False
    if op == "in":
        return isinstance(want, tuple | list | set | frozenset) and have in want
    if op == "prefix":
        return isinstance(have, str) and isinstance(want, str) and have.startswith(want)
    if op == "contains":
        return isinstance(have, str) and isinstance(want, str) and want in have
    try:
        if op == "lt":
            return have < want  # type: ignore[operator]
        if op == "le":
            return have <= want  # type: ignore[operator]
        if op == "gt":
            return have > want  # type: ignore[operator]
        if op == "ge":
            return have >= want  # type: ignore[operator]
    except TypeError:
        return False
    return False


def _entry_passes(entry: Entry, tests: Sequence[FieldTest]) -> bool:
    fields = entry.as_dict()
    return all(field_passes(t.op, fields.get(t.field), t.value) for t in tests)


def holds(where: Condition, row: Row, entries: Sequence[Entry]) -> bool:
    """``where`` on the resource ``row`` with these index entries (chains and ``_has`` raise
    :class:`NeedsStore`)."""
    if isinstance(where, Always):
        return True
    if isinstance(where, Match):
        return any(e.table == where.table and e.param == where.param and _entry_passes(e, where.tests)
                   for e in entries)
    if isinstance(where, Missing):
        present = any(e.table == where.table and e.param == where.param for e in entries)
        return present != where.missing
    if isinstance(where, ResourceTest):
        have: object = {"id": row.id, "last_updated": row.last_updated, "type": row.type}[where.field]
        return field_passes(where.op, have, where.value)
    if isinstance(where, And):
        return all(holds(item, row, entries) for item in where.items)
    if isinstance(where, Or):
        return any(holds(item, row, entries) for item in where.items)
    if isinstance(where, Not):
        return not holds(where.item, row, entries)
    raise NeedsStore

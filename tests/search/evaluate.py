"""A tiny in-memory reference evaluator for search conditions, so that search semantics are tested
independently of either store: a :class:`World` holds resources with their index entries (from the
real :class:`~server.search.index.Indexer`) and answers :func:`matches` by brute force."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cmp_to_key
from typing import Any

from server.search.index import Indexer
from server.search.model import (
    TABLES,
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
    Query,
    ResourceTest,
    SortKey,
)
from server.search.order import sort_value


def field_passes(value: object, test: FieldTest) -> bool:
    if test.op == "eq":
        return value is None if test.value is None else value is not None and value == test.value
    if value is None:
        return False
    if test.op == "in":
        return value in test.value  # type: ignore[operator]
    if test.op == "prefix":
        return isinstance(value, str) and value.startswith(test.value)  # type: ignore[arg-type]
    if test.op == "contains":
        return isinstance(value, str) and test.value in value  # type: ignore[operator]
    ops = {"lt": value < test.value, "le": value <= test.value,  # type: ignore[operator]
           "gt": value > test.value, "ge": value >= test.value}  # type: ignore[operator]
    return ops[test.op]


def entry_passes(entry: Entry, tests: tuple[FieldTest, ...]) -> bool:
    row = dict(zip(TABLES[entry.table], entry.values, strict=True))
    return all(field_passes(row[t.field], t) for t in tests)


@dataclass
class Stored:
    resource: dict[str, Any]
    entries: list[Entry]
    last_updated: int = 0


@dataclass
class World:
    indexer: Indexer
    rows: dict[tuple[str, str], Stored] = field(default_factory=dict)

    def add(self, resource: dict[str, Any], last_updated: int = 0) -> None:
        key = (resource["resourceType"], resource["id"])
        self.rows[key] = Stored(resource, self.indexer.entries(resource), last_updated)

    def matches(self, key: tuple[str, str], cond: Condition) -> bool:
        row = self.rows[key]
        if isinstance(cond, Always):
            return True
        if isinstance(cond, Match):
            return any(e.table == cond.table and e.param == cond.param and entry_passes(e, cond.tests)
                       for e in row.entries)
        if isinstance(cond, Missing):
            has = any(e.table == cond.table and e.param == cond.param for e in row.entries)
            return has != cond.missing
        if isinstance(cond, ResourceTest):
            value = {"id": key[1], "type": key[0], "last_updated": row.last_updated}[cond.field]
            return field_passes(value, FieldTest(cond.field, cond.op, cond.value))
        if isinstance(cond, And):
            return all(self.matches(key, c) for c in cond.items)
        if isinstance(cond, Or):
            return any(self.matches(key, c) for c in cond.items)
        if isinstance(cond, Not):
            return not self.matches(key, cond.item)
        if isinstance(cond, Chain):
            for e in row.entries:
                if e.table == "reference" and e.param == cond.param and e.values[0] == cond.target_type:
                    target = (cond.target_type, str(e.values[1]))
                    if target in self.rows and self.matches(target, cond.where):
                        return True
            return False
        if isinstance(cond, Has):
            for other, stored in self.rows.items():
                if other[0] != cond.source_type:
                    continue
                points = any(e.table == "reference" and e.param == cond.param and e.values[:2] == key
                             for e in stored.entries)
                if points and self.matches(other, cond.where):
                    return True
            return False
        raise TypeError(cond)

    def ordered(self, query: Query) -> list[tuple[str, str]]:
        """(type, id) of every match of ``query`` in the search order: each sort key's value (the
        smallest of the parameter's entries ascending, the largest descending, by
        :func:`server.search.order.sort_value`; missing values last), then type and id."""
        keys = [k for k in self.rows if (not query.types or k[0] in query.types) and self.matches(k, query.where)]

        def value(key: tuple[str, str], sort: SortKey) -> object:
            if sort.table == "resource":
                return key[1] if sort.param == "id" else self.rows[key].last_updated
            found = [sort_value(e.table, dict(zip(TABLES[e.table], e.values, strict=True)), sort.descending)
                     for e in self.rows[key].entries if e.table == sort.table and e.param == sort.param]
            present = [v for v in found if v is not None]
            if not present:
                return None
            return max(present) if sort.descending else min(present)  # type: ignore[type-var]

        def compare(a: tuple[str, str], b: tuple[str, str]) -> int:
            for sort in query.sort:
                va, vb = value(a, sort), value(b, sort)
                if va == vb:
                    continue
                if va is None or vb is None:
                    return 1 if va is None else -1
                less = va < vb  # type: ignore[operator]
                return (1 if less else -1) if sort.descending else (-1 if less else 1)
            return (a > b) - (a < b)

        return sorted(keys, key=cmp_to_key(compare))

    def search(self, types: tuple[str, ...], cond: Condition) -> list[str]:
        """Sorted ids (``Type/id`` when several types) of resources of ``types`` matching ``cond``."""
        out = [f"{k[0]}/{k[1]}" if len(types) != 1 else k[1]
               for k in self.rows if (not types or k[0] in types) and self.matches(k, cond)]
        return sorted(out)


def search_ids(world: World, types: tuple[str, ...], query: str, **kwargs: Any) -> list[str]:
    """Parse ``query`` strictly (as a client would send it) and evaluate it on ``world``."""
    from urllib.parse import parse_qsl

    from server.search.parse import parse_search

    request = parse_search(types, parse_qsl(query, keep_blank_values=True), world.indexer.registry, strict=True,
                           base_url=world.indexer.options.base_url, **kwargs)
    return world.search(request.query.types, request.query.where)

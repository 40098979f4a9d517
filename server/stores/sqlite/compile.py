"""Compile the query representation (``server.search.model``) into SQLite SQL: which rows match
(ordering, paging and counting them is :mod:`.page`).

Pure: every function returns SQL text and its bound parameters; nothing from a request is ever
formatted into the SQL text. Table and column names come from ``model.TABLES``, operators from a
fixed table, index names from :mod:`.schema`.

Plan shape (the planner is told, not asked: SQLite has no statistics on a fresh database and
would otherwise walk every resource of the type in ``(type, id)`` order):

- A *driver* — the most selective-looking condition that an index answers — produces a set of
  ``rid`` values: ``SELECT rid FROM idx_<table> WHERE param = ? AND <tests>`` on the covering
  index ``(param, <fields>, rid)``, a chain's referring entries, a ``_has`` target list, ``_id``,
  or a ``UNION`` of those for an ``Or``. ``CROSS JOIN`` fixes it as the outer loop, so a search
  costs in proportion to its hits, not to the size of the type.
- Every other condition is a correlated test on the candidate row: one seek of the covering index
  when the test pins every probe column by equality (``param``, values, ``rid``: a source tag, a
  ``system|code``), otherwise a walk of the row's entries through the ``rid`` index
  (``INDEXED BY idx_<table>_rid``): a resource has a handful of entries per table.
- Of an ``And``'s driver candidates the one with the fewest rows drives; they are counted (a
  bounded index range read) to growing caps, so none much further than the fewest.
- With no usable driver (``:missing``, ``:not``, one-sided ranges, no criteria) the resources of
  the type are walked in result order, which stops as soon as a page is full.

Two-sided date ranges written as two parameters (``date=ge…&date=lt…``) are answered through the
*hull* rows the session writes for date parameters with several values (``<param>|hull``: the
smallest start and the largest end): every resource matching both bounds has a value or a hull
that overlaps the range, and an overlap is an index range when the value is short (at most
:data:`~.schema.SHORT_DATE_US`) or is found through the partial index of long values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from server.search.check import check_condition
from server.search.cost import DRIVE_CAP
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
from server.stores.sqlite.schema import HULL, INDEX_COLUMNS, SHORT_DATE_US

OPS = {"eq": "=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
RESOURCE_FIELDS = {"id": "id", "last_updated": "lu", "type": "type"}
MAX_CHAR = "\U0010ffff"
RANGE_TABLES = frozenset({"date", "number", "quantity"})
"""Tables whose entries are ranges [lo, hi] with lo <= hi."""

# driver ranks: lower is preferred
RANK_ID, RANK_EQ, RANK_LINK, RANK_PREFIX, RANK_RANGE, RANK_UPDATED = 0, 1, 2, 3, 4, 6

ESTIMATE_CAP = DRIVE_CAP
"""Driver candidates are counted up to this many rows (a bounded index range read): the search
core's cap (:data:`server.search.cost.DRIVE_CAP`, which says why 5,000). At the cap, a search in the
default order walks the type instead (:func:`server.search.cost.choose`, see :mod:`.page`)."""

FIRST_COUNT = 64
"""The first cap driver candidates are counted to (see :meth:`Compiler._fewest`)."""

MAX_UNION_TERMS = 400
"""An ``Or`` whose driver would be a compound of more SELECTs than this is tested row by row
instead: SQLite refuses compounds of more than 500 terms (the search core's value limits keep an
accepted query near 100-300, each value expanding to a few terms)."""

Estimate = Callable[["Sql", int], int]
"""Counts the rows of a driver's SQL up to a cap (at most :data:`ESTIMATE_CAP`); supplied by the store."""


@dataclass
class Sql:
    text: str
    params: list[object] = field(default_factory=list)


@dataclass
class Driver:
    """A ``SELECT rid …`` giving a superset of the rows a condition matches; ``covers`` is the
    (sub)condition whose rows it is exactly, if any, so that condition need not be tested again."""

    sql: Sql
    rank: int
    covers: Condition | None
    terms: int = 1
    """SELECTs in its top-level compound (``UNION``), held under :data:`MAX_UNION_TERMS`."""


def _with_implied_bounds(table: str, tests: tuple[FieldTest, ...]) -> tuple[FieldTest, ...]:
    """Add the bounds ``lo <= hi`` implies, so "within [a, b]" is a bounded index range on ``lo``."""
    if table not in RANGE_TABLES:
        return tests
    extra: list[FieldTest] = []
    for t in tests:
        if t.field == "hi" and t.op in ("lt", "le"):
            extra.append(FieldTest("lo", t.op, t.value))
        elif t.field == "lo" and t.op in ("gt", "ge"):
            extra.append(FieldTest("hi", t.op, t.value))
    return tests + tuple(e for e in extra if e not in tests)


def _pinned(table: str, tests: tuple[FieldTest, ...]) -> bool:
    """Whether every probe column of the table's first covering index has an equality test."""
    equal = {t.field for t in tests if t.op == "eq" and t.value is not None}
    return equal.issuperset(INDEX_COLUMNS[table][0])


def holds_sql(type_: str, id_: str, version: int, where: Condition) -> Sql:
    """One row (``0``/``1``: whether ``where`` holds) when ``type_/id_`` is at ``version`` and not
    deleted; no row otherwise."""
    text, params = _holds_sql(type_, where)
    return Sql(text, [*params, type_, id_, version])


@lru_cache(maxsize=1024)
def _row_test(type_: str, where: Condition) -> Sql:
    """``where`` on the ``resources`` row ``r``: checked and compiled once per caller's condition
    (a visibility condition is asked on every read)."""
    check_condition(where)
    return Compiler().where(where, "r", (type_,))


@lru_cache(maxsize=1024)
def _holds_sql(type_: str, where: Condition) -> tuple[str, tuple[object, ...]]:
    test = _row_test(type_, where)
    return (f"SELECT {test.text} FROM resources r WHERE r.type = ? AND r.id = ? AND r.version = ? "
            "AND r.deleted = 0", tuple(test.params))


@lru_cache(maxsize=1024)
def read_holding_sql(type_: str, where: Condition) -> tuple[str, tuple[object, ...]]:
    """The newest version of a resource (``VERSION_COLS``, then ``type, id`` to bind) and, as an
    eighth column, whether ``where`` holds on its current entries (NULL when it is deleted)."""
    test = _row_test(type_, where)
    return (f"SELECT v.type, v.id, v.version, v.lu, v.deleted, v.method, v.body, (SELECT {test.text} FROM "
            "resources r WHERE r.type = v.type AND r.id = v.id AND r.version = v.version AND r.deleted = 0) "
            "FROM versions v WHERE v.type = ? AND v.id = ? ORDER BY v.version DESC LIMIT 1", tuple(test.params))


def _probe_rank(m: Match) -> int | None:
    """How well the table's indexes answer ``m`` on their own; None when only ``param`` is probed."""
    leading = {cols[0] for cols in INDEX_COLUMNS[m.table]}
    best: int | None = None
    tests = _with_implied_bounds(m.table, m.tests)
    for t in tests:
        if t.field not in leading:
            continue
        if t.op in ("eq", "in") and t.value is not None:
            rank = RANK_EQ
        elif t.op == "prefix":
            rank = RANK_PREFIX
        elif m.table in RANGE_TABLES and t.field == "lo" and t.op in ("lt", "le") and any(
                u.field == "lo" and u.op in ("gt", "ge") for u in tests):
            rank = RANK_RANGE  # bounded on both sides
        else:
            continue
        best = rank if best is None else min(best, rank)
    return best


class Compiler:
    """Compiles conditions against rows of ``resources`` bound to an alias, for given types.

    With ``estimate``, an ``And`` is driven by its candidate with the fewest rows (so ``gender``
    never drives ``family=zha&gender=male``); without it, by the best :func:`_probe_rank`."""

    def __init__(self, estimate: Estimate | None = None) -> None:
        self._aliases = 0
        self.estimate = estimate

    def _alias(self, prefix: str = "r") -> str:
        self._aliases += 1
        return f"{prefix}{self._aliases}"

    @staticmethod
    def _params(param: str, types: tuple[str, ...]) -> tuple[str, list[object]]:
        names: list[object] = [f"{t}.{param}" for t in types]
        if len(names) == 1:
            return "param = ?", names
        return f"param IN ({', '.join('?' * len(names))})", list(names)

    @staticmethod
    def _types(alias: str, types: tuple[str, ...]) -> Sql:
        if not types:
            return Sql("1")
        if len(types) == 1:
            return Sql(f"{alias}.type = ?", [types[0]])
        return Sql(f"{alias}.type IN ({', '.join('?' * len(types))})", list(types))

    # --- correlated tests on one candidate row ------------------------------------------------

    def where(self, cond: Condition, alias: str, types: tuple[str, ...]) -> Sql:
        """A boolean SQL expression on the row ``alias`` (a resource of one of ``types``)."""
        if isinstance(cond, Always):
            return Sql("1")
        if isinstance(cond, Match):
            return self._exists(cond.table, cond.param, cond.tests, alias, types)
        if isinstance(cond, Missing):
            inner = self._exists(cond.table, cond.param, (), alias, types)
            return Sql(f"NOT {inner.text}", inner.params) if cond.missing else inner
        if isinstance(cond, ResourceTest):
            return self._resource_test(cond, alias)
        if isinstance(cond, And | Or):
            if not cond.items:
                return Sql("1" if isinstance(cond, And) else "0")
            parts = [self.where(c, alias, types) for c in cond.items]
            joiner = " AND " if isinstance(cond, And) else " OR "
            return Sql("(" + joiner.join(p.text for p in parts) + ")", [v for p in parts for v in p.params])
        if isinstance(cond, Not):
            inner = self.where(cond.item, alias, types)
            return Sql(f"NOT ({inner.text})", inner.params)
        if isinstance(cond, Chain):
            return self._chain_test(cond, alias, types)
        if isinstance(cond, Has):
            return self._has_test(cond, alias)
        raise TypeError(f"unknown condition {cond!r}")

    def _tests(self, table: str, tests: tuple[FieldTest, ...], prefix: str) -> Sql:
        fields = TABLES[table]
        parts: list[str] = []
        params: list[object] = []
        for test in _with_implied_bounds(table, tests):
            if test.field not in fields:
                raise ValueError(f"{test.field} is not a field of {table}")
            text, values = _field_test(f"{prefix}{test.field}", test)
            parts.append(text)
            params.extend(values)
        return Sql(" AND ".join(parts), params)

    def _exists(self, table: str, param: str, tests: tuple[FieldTest, ...], alias: str,
                types: tuple[str, ...]) -> Sql:
        e = self._alias("e")
        clause, params = self._params(param, types)
        where = [f"{e}.rid = {alias}.rid", f"{e}.{clause}"]
        found = self._tests(table, tests, f"{e}.")
        if found.text:
            where.append(found.text)
        # every probe column pinned: one seek of the covering index; else a walk of the row's entries
        index = f"idx_{table}_q0" if _pinned(table, tests) else f"idx_{table}_rid"
        return Sql(f"EXISTS (SELECT 1 FROM idx_{table} {e} INDEXED BY {index} WHERE {' AND '.join(where)})",
                   [*params, *found.params])

    @staticmethod
    def _resource_test(test: ResourceTest, alias: str) -> Sql:
        column = f"{alias}.{RESOURCE_FIELDS[test.field]}"
        text, values = _field_test(column, FieldTest(column, test.op, test.value))
        return Sql(text, values)

    def _chain_test(self, cond: Chain, alias: str, types: tuple[str, ...]) -> Sql:
        x, t = self._alias("x"), self._alias("t")
        clause, params = self._params(cond.param, types)
        inner = self.where(cond.where, t, (cond.target_type,))
        text = (
            f"EXISTS (SELECT 1 FROM idx_reference {x} INDEXED BY idx_reference_rid CROSS JOIN resources {t} "
            f"ON {t}.type = {x}.ref_type AND {t}.id = {x}.ref_id WHERE {x}.rid = {alias}.rid AND {x}.{clause} "
            f"AND {x}.ref_type = ? AND {t}.deleted = 0 AND {inner.text})"
        )
        return Sql(text, [*params, cond.target_type, *inner.params])

    def _has_test(self, cond: Has, alias: str) -> Sql:
        x, s = self._alias("x"), self._alias("s")
        inner = self.where(cond.where, s, (cond.source_type,))
        text = (
            f"EXISTS (SELECT 1 FROM idx_reference {x} INDEXED BY idx_reference_q0 CROSS JOIN resources {s} "
            f"ON {s}.rid = {x}.rid WHERE {x}.param = ? AND {x}.ref_id = {alias}.id AND {x}.ref_type = {alias}.type "
            f"AND {s}.type = ? AND {s}.deleted = 0 AND {inner.text})"
        )
        return Sql(text, [f"{cond.source_type}.{cond.param}", cond.source_type, *inner.params])

    # --- drivers: sets of rids from an index --------------------------------------------------

    def driver(self, cond: Condition, types: tuple[str, ...]) -> Driver | None:
        """The best index-driven superset of ``cond``'s rows, or None (walk the type instead)."""
        if isinstance(cond, ResourceTest):
            if cond.field == "id" and cond.op in ("eq", "in"):
                return Driver(self._resource_rids(cond, types), RANK_ID, cond)
            if cond.field == "last_updated" and cond.op in OPS:
                return Driver(self._resource_rids(cond, types), RANK_UPDATED, cond)
            return None
        if isinstance(cond, Match):
            rank = _probe_rank(cond)
            if rank is None:
                return None
            clause, params = self._params(cond.param, types)
            tests = self._tests(cond.table, cond.tests, "")
            where = f"{clause} AND {tests.text}" if tests.text else clause
            sql = Sql(f"SELECT DISTINCT rid FROM idx_{cond.table} WHERE {where}", [*params, *tests.params])
            return Driver(sql, rank, cond)
        if isinstance(cond, Chain):
            return self._chain_driver(cond, types)
        if isinstance(cond, Has):
            return self._has_driver(cond)
        if isinstance(cond, Or):
            found = [self.driver(c, types) for c in cond.items]
            if not found or any(d is None for d in found):
                return None
            drivers = [d for d in found if d is not None]
            terms = sum(d.terms for d in drivers)
            if terms > MAX_UNION_TERMS:
                return None
            text = " UNION ".join(d.sql.text for d in drivers)
            exact = all(d.covers is c for d, c in zip(drivers, cond.items, strict=True))
            return Driver(Sql(text, [v for d in drivers for v in d.sql.params]), max(d.rank for d in drivers),
                          cond if exact else None, terms)
        if isinstance(cond, And):
            candidates = [d for c in cond.items if (d := self.driver(c, types)) is not None]
            hull = self._hull_driver(cond, types)
            if hull is not None:
                candidates.append(hull)
            if not candidates:
                return None
            if self.estimate is not None and len(candidates) > 1:
                return self._fewest(candidates)
            return min(candidates, key=lambda d: d.rank)
        return None

    def _fewest(self, candidates: list[Driver]) -> Driver:
        """The candidate with the fewest rows (ties: the best rank, then the first). All are counted
        up to a small cap, then a cap four times larger, and so on until one has fewer rows than the
        cap (or the cap is :data:`ESTIMATE_CAP`): no candidate is counted much further than the
        fewest. An institution's source tag, on every resource it holds, was otherwise counted to
        the cap beside the hundred entries of one patient: most of an institution's search."""
        estimate = self.estimate
        assert estimate is not None
        ranked = sorted(candidates, key=lambda d: d.rank)
        cap = min(FIRST_COUNT, ESTIMATE_CAP)
        while True:
            counts = [estimate(d.sql, cap) for d in ranked]
            fewest = min(counts)
            if fewest < cap or cap >= ESTIMATE_CAP:
                return ranked[counts.index(fewest)]
            cap = min(cap * 4, ESTIMATE_CAP)

    def _resource_rids(self, cond: ResourceTest, types: tuple[str, ...]) -> Sql:
        kinds = self._types("resources", types)
        test = self._resource_test(cond, "resources")
        return Sql(f"SELECT DISTINCT rid FROM resources WHERE {kinds.text} AND {test.text}",
                   [*kinds.params, *test.params])

    def _chain_driver(self, cond: Chain, types: tuple[str, ...]) -> Driver | None:
        t = self._alias("t")
        target = self.rows(cond.where, t, (cond.target_type,), f"{t}.id")
        if target is None:
            return None
        clause, params = self._params(cond.param, types)
        text = f"SELECT DISTINCT rid FROM idx_reference WHERE {clause} AND ref_type = ? AND ref_id IN ({target.text})"
        return Driver(Sql(text, [*params, cond.target_type, *target.params]), RANK_LINK, cond)

    def _has_driver(self, cond: Has) -> Driver | None:
        s, x, k, r = self._alias("s"), self._alias("x"), self._alias("k"), self._alias("r")
        source = self.rows(cond.where, s, (cond.source_type,), f"{s}.rid")
        if source is None:
            return None
        text = (
            f"SELECT {r}.rid FROM (SELECT DISTINCT {x}.ref_type AS t, {x}.ref_id AS i FROM ({source.text}) {k} "
            f"CROSS JOIN idx_reference {x} INDEXED BY idx_reference_rid ON {x}.rid = {k}.rid "
            f"WHERE {x}.param = ? AND {x}.ref_id IS NOT NULL) {k}t "
            f"CROSS JOIN resources {r} ON {r}.type = {k}t.t AND {r}.id = {k}t.i"
        )
        return Driver(Sql(text, [*source.params, f"{cond.source_type}.{cond.param}"]), RANK_LINK, cond)

    def _hull_driver(self, cond: And, types: tuple[str, ...]) -> Driver | None:
        """Two-sided date range over several Matches of one parameter (see the module docstring)."""
        by_param: dict[str, list[tuple[object | None, object | None]]] = {}
        for item in cond.items:
            found = _hull_bounds(item)
            if found is not None:
                by_param.setdefault(found[0], []).append(found[1])
        for param, bounds in by_param.items():
            lows = [lo for lo, _ in bounds if lo is not None]  # lower bounds on the hull's end
            highs = [hi for _, hi in bounds if hi is not None]  # upper bounds on the hull's start
            if not lows or not highs:
                continue
            start_max, end_min = min(highs), max(lows)  # type: ignore[type-var]
            names = [f"{t}.{param}" for t in types] + [f"{t}.{param}{HULL}" for t in types]
            marks = ", ".join("?" * len(names))
            text = (
                f"SELECT rid FROM idx_date WHERE param IN ({marks}) AND lo >= ? AND lo <= ? AND hi >= ? "
                f"UNION SELECT rid FROM idx_date INDEXED BY idx_date_long WHERE param IN ({marks}) "
                f"AND hi - lo > {SHORT_DATE_US} AND lo <= ? AND hi >= ?"
            )
            params = [*names, int(end_min) - SHORT_DATE_US, start_max, end_min,  # type: ignore[call-overload]
                      *names, start_max, end_min]
            return Driver(Sql(text, params), RANK_RANGE, None, 2)
        return None

    # --- whole row sets ---------------------------------------------------------------------

    def rows(self, cond: Condition, alias: str, types: tuple[str, ...], column: str) -> Sql | None:
        """``SELECT <column>`` of current ``types`` rows (as ``alias``) matching ``cond``, driven by an
        index; None when no condition has an index to drive it (the caller then tests row by row)."""
        driver = self.driver(cond, types)
        if driver is None:
            return None
        source, where = self.source(cond, alias, types, driver)
        return Sql(f"SELECT {column} FROM {source.text} WHERE {where.text}", [*source.params, *where.params])

    def source(self, cond: Condition, alias: str, types: tuple[str, ...], driver: Driver | None
               ) -> tuple[Sql, Sql]:
        """FROM and WHERE for rows of ``types`` matching ``cond``, driven by ``driver`` if given."""
        rest: Condition = cond
        if driver is not None and driver.covers is cond:
            rest = Always()
        elif driver is not None and isinstance(cond, And) and any(c is driver.covers for c in cond.items):
            rest = And(tuple(c for c in cond.items if c is not driver.covers))
        kinds = self._types(alias, types)
        test = self.where(rest, alias, types)
        where = Sql(f"{alias}.deleted = 0 AND {kinds.text} AND {test.text}", [*kinds.params, *test.params])
        if driver is None:
            return Sql(f"resources {alias}"), where
        d = self._alias("d")  # every driver yields distinct rids (DISTINCT, UNION, or a join on a key)
        return (Sql(f"({driver.sql.text}) {d} CROSS JOIN resources {alias} ON {alias}.rid = {d}.rid",
                    list(driver.sql.params)), where)


def _hull_bounds(cond: Condition) -> tuple[str, tuple[object | None, object | None]] | None:
    """For a date condition on one parameter: (param, (lower bound of any matching value's end,
    upper bound of its start)) implied by the tests; the weakest over ``Or`` alternatives."""
    if isinstance(cond, Match) and cond.table == "date":
        low: object | None = None
        high: object | None = None
        for t in cond.tests:
            if t.op in ("gt", "ge") and t.field in ("lo", "hi"):
                low = t.value if low is None else max(low, t.value)  # type: ignore[call-overload]
            elif t.op in ("lt", "le") and t.field in ("lo", "hi"):
                high = t.value if high is None else min(high, t.value)  # type: ignore[call-overload]
        return cond.param, (low, high)
    if isinstance(cond, Or) and cond.items:
        found = [_hull_bounds(c) for c in cond.items]
        if any(f is None for f in found) or len({f[0] for f in found if f}) != 1:
            return None
        pairs = [f[1] for f in found if f]
        lows = [p[0] for p in pairs]
        highs = [p[1] for p in pairs]
        low = None if any(v is None for v in lows) else min(lows)  # type: ignore[type-var]
        high = None if any(v is None for v in highs) else max(highs)  # type: ignore[type-var]
        return found[0][0], (low, high)  # type: ignore[index]
    return None


def _field_test(column: str, test: FieldTest) -> tuple[str, list[object]]:
    op, value = test.op, test.value
    if op == "eq" and value is None:
        return f"{column} IS NULL", []
    if op in OPS:
        return f"{column} {OPS[op]} ?", [value]
    if op == "in":
        values = list(value)  # type: ignore[call-overload]
        if not values:
            return "0", []
        return f"{column} IN ({', '.join('?' * len(values))})", values
    if op == "prefix":
        return f"({column} >= ? AND {column} < ?)", [value, f"{value}{MAX_CHAR}"]
    if op == "contains":
        return f"instr({column}, ?) > 0", [value]
    raise ValueError(f"unknown field operator {op}")

"""Compile the query representation (``server.search.model``) into SQLite SQL.

Pure: ``compile_where`` returns an SQL fragment and its bound parameters; nothing from a
request is ever formatted into the SQL text. Table and column names come from
``model.TABLES``, operators from a fixed table. Every ``Match`` becomes
``r.rid IN (SELECT rid FROM idx_<table> WHERE param IN (...) AND ...)`` so SQLite probes the
covering index ``(param, <fields>, rid)`` and then the resources primary key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    Query,
    ResourceTest,
)

OPS = {"eq": "=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
RESOURCE_FIELDS = {"id": "id", "last_updated": "lu", "type": "type"}
MAX_CHAR = "\U0010ffff"


@dataclass
class Sql:
    text: str
    params: list[object] = field(default_factory=list)


class Compiler:
    """Compiles conditions for rows of ``resources`` bound to an alias, for given types."""

    def __init__(self) -> None:
        self._aliases = 0

    def _alias(self) -> str:
        self._aliases += 1
        return f"r{self._aliases}"

    def where(self, cond: Condition, alias: str, types: tuple[str, ...]) -> Sql:
        if isinstance(cond, Always):
            return Sql("1")
        if isinstance(cond, Match):
            return self._match(cond, alias, types)
        if isinstance(cond, Missing):
            inner = self._match(Match(cond.table, cond.param), alias, types)
            return Sql(f"NOT ({inner.text})", inner.params) if cond.missing else inner
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
            return self._chain(cond, alias, types)
        if isinstance(cond, Has):
            return self._has(cond, alias)
        raise TypeError(f"unknown condition {cond!r}")

    @staticmethod
    def _params(param: str, types: tuple[str, ...]) -> tuple[str, list[object]]:
        names = [f"{t}.{param}" for t in types]
        if len(names) == 1:
            return "param = ?", names
        return f"param IN ({', '.join('?' * len(names))})", list(names)

    def _match(self, cond: Match, alias: str, types: tuple[str, ...]) -> Sql:
        fields = TABLES[cond.table]
        clause, params = self._params(cond.param, types)
        parts = [clause]
        for test in cond.tests:
            if test.field not in fields:
                raise ValueError(f"{test.field} is not a field of {cond.table}")
            text, values = _field_test(test.field, test)
            parts.append(text)
            params.extend(values)
        return Sql(f"{alias}.rid IN (SELECT rid FROM idx_{cond.table} WHERE {' AND '.join(parts)})", params)

    @staticmethod
    def _resource_test(test: ResourceTest, alias: str) -> Sql:
        column = f"{alias}.{RESOURCE_FIELDS[test.field]}"
        text, values = _field_test(column, FieldTest(column, test.op, test.value))
        return Sql(text, values)

    def _chain(self, cond: Chain, alias: str, types: tuple[str, ...]) -> Sql:
        inner_alias = self._alias()
        inner = self.where(cond.where, inner_alias, (cond.target_type,))
        clause, params = self._params(cond.param, types)
        text = (
            f"{alias}.rid IN (SELECT x.rid FROM idx_reference x WHERE x.{clause} AND x.ref_type = ? "
            f"AND x.ref_id IN (SELECT {inner_alias}.id FROM resources {inner_alias} "
            f"WHERE {inner_alias}.type = ? AND {inner_alias}.deleted = 0 AND {inner.text}))"
        )
        return Sql(text, [*params, cond.target_type, cond.target_type, *inner.params])

    def _has(self, cond: Has, alias: str) -> Sql:
        inner_alias = self._alias()
        inner = self.where(cond.where, inner_alias, (cond.source_type,))
        text = (
            f"({alias}.type, {alias}.id) IN (SELECT x.ref_type, x.ref_id FROM idx_reference x "
            f"JOIN resources {inner_alias} ON {inner_alias}.rid = x.rid "
            f"WHERE x.param = ? AND {inner_alias}.deleted = 0 AND {inner.text})"
        )
        return Sql(text, [f"{cond.source_type}.{cond.param}", *inner.params])


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


@dataclass
class CompiledSearch:
    select: Sql
    count: Sql | None


def compile_query(query: Query) -> CompiledSearch:
    """SELECT for one page of ``query`` (count + 1 rows, to know if there is a next page)."""
    compiler = Compiler()
    alias = "r"
    base = ["r.deleted = 0"]
    params: list[object] = []
    if query.types:
        base.append(f"r.type IN ({', '.join('?' * len(query.types))})")
        params.extend(query.types)
    where = compiler.where(query.where, alias, query.types or ())
    base.append(where.text)
    params.extend(where.params)

    # sort columns: s0..sn, then type and id as the final tie-breakers
    sort_cols: list[str] = []
    sort_params: list[object] = []
    order: list[str] = []
    for n, key in enumerate(query.sort):
        if key.table == "resource":
            col = "r.lu" if key.param == "last_updated" else "r.id"
            sort_cols.append(f"{col} AS s{n}")
        else:
            side = "hi" if key.descending else "lo"
            names = [f"{t}.{key.param}" for t in query.types]
            sort_cols.append(
                f"(SELECT MIN(k.{side}) FROM sortkeys k WHERE k.rid = r.rid AND k.param IN "
                f"({', '.join('?' * len(names))})) AS s{n}"
            )
            sort_params.extend(names)
        order.append(f"s{n} {'DESC' if key.descending else 'ASC'} NULLS LAST")
    order.extend(["r.type ASC", "r.id ASC"])

    keyset_sql, keyset_params = _keyset(query)
    columns = ", ".join(["r.rid", "r.type", "r.id", "r.version", "r.lu", *sort_cols])
    inner = f"SELECT {columns} FROM resources r WHERE {' AND '.join(base)}"
    text = f"SELECT * FROM ({inner}) AS page"
    all_params = [*sort_params, *params]
    if keyset_sql:
        text += f" WHERE {keyset_sql}"
        all_params.extend(keyset_params)
    text += " ORDER BY " + ", ".join(o.replace("r.", "page.") for o in order)
    text += " LIMIT ?"
    all_params.append(query.count + 1)
    count = None
    if query.total != "none":
        count = Sql(f"SELECT COUNT(*) FROM resources r WHERE {' AND '.join(base)}", list(params))
    return CompiledSearch(Sql(text, all_params), count)


def _keyset(query: Query) -> tuple[str, list[object]]:
    """Rows strictly after ``query.after`` in the order (s0.., type, id); NULL sorts last."""
    if query.after is None:
        return "", []
    keys = [(f"page.s{n}", k.descending) for n, k in enumerate(query.sort)]
    keys += [("page.type", False), ("page.id", False)]
    values = list(query.after)
    if len(values) != len(keys):
        raise ValueError("cursor does not match the sort order")
    ors: list[str] = []
    params: list[object] = []
    for i, (col, desc) in enumerate(keys):
        eqs: list[str] = []
        eq_params: list[object] = []
        for j, (prev_col, _desc) in enumerate(keys[:i]):
            prev = values[j]
            if prev is None:
                eqs.append(f"{prev_col} IS NULL")
            else:
                eqs.append(f"{prev_col} = ?")
                eq_params.append(prev)
        value = values[i]
        if value is None:
            continue  # nothing sorts after NULL within this key (NULLS LAST)
        after = f"({col} {'<' if desc else '>'} ? OR {col} IS NULL)"
        ors.append("(" + " AND ".join([*eqs, after]) + ")")
        params.extend([*eq_params, value])
    if not ors:
        return "0", []
    return "(" + " OR ".join(ors) + ")", params

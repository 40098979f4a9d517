"""One page of a search on the embedded store: the driven or walked row source from
:mod:`.compile`, the ``_sort`` keys, the keyset cursor and ``LIMIT``, and the COUNT of ``_total``.

Order (http://hl7.org/fhir/R4/search.html#sort): the sort keys (a parameter's smallest value
ascending, its largest descending, read from its entries through the ``rid`` index; missing
values last), then type and id,
so the order is total and a cursor names one position in it. Pure: SQL text and bound values.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.search import cost
from server.search.model import Chain, Condition, Has, Query
from server.stores.sqlite.compile import ESTIMATE_CAP, Compiler, Driver, Estimate, Sql


@dataclass
class CompiledSearch:
    select: Sql
    count: Sql | None
    sides: tuple[str, ...] = ()
    """For ``__explain``: the side each chain/``_has`` was answered from (:mod:`server.search.cost`)."""


def compile_query(query: Query, estimate: Estimate | None = None) -> CompiledSearch:
    """SELECT for one page of ``query`` (count + 1 rows, to know if there is a next page), and
    the COUNT when a total is asked for. ``estimate`` (see :class:`Compiler`) also lets a
    search in the default order walk the type when its driver has as many hits as the search core's
    cap (:func:`server.search.cost.choose`: drive from the driver's rows when they are few, test each
    row of the type otherwise)."""
    compiler = Compiler(estimate)
    alias = "r"
    driver = compiler.driver(query.where, query.types)
    page_driver = driver
    # the store's estimate remembers its counts: the driver chosen is not counted again here
    hits = estimate(driver.sql, ESTIMATE_CAP) if driver is not None and estimate is not None else None
    if hits is not None and not query.sort and cost.choose(hits) is cost.Side.TEST_CANDIDATES:
        page_driver = None
    source, where = compiler.source(query.where, alias, query.types, page_driver)

    # sort columns: s0..sn, then type and id as the final tie-breakers
    sort_cols: list[str] = []
    sort_params: list[object] = []
    order: list[str] = []
    for n, key in enumerate(query.sort):
        if key.table == "resource":
            col = "r.lu" if key.param == "last_updated" else "r.id"
            sort_cols.append(f"{col} AS s{n}")
        else:
            names = [f"{t}.{key.param}" for t in query.types]
            sort_cols.append(
                f"(SELECT {'MAX' if key.descending else 'MIN'}({_sort_value(key.field)}) FROM idx_{key.table} k "
                f"INDEXED BY idx_{key.table}_rid "
                f"WHERE k.rid = r.rid AND k.param IN ({', '.join('?' * len(names))})) AS s{n}"
            )
            sort_params.extend(names)
        order.append(f"s{n} {'DESC' if key.descending else 'ASC'} NULLS LAST")
    order.extend(["r.type ASC", "r.id ASC"])

    keyset_sql, keyset_params = _keyset(query)
    columns = ", ".join(["r.rid", "r.type", "r.id", "r.version", "r.lu", *sort_cols])
    inner = f"SELECT {columns} FROM {source.text} WHERE {where.text}"
    text = f"SELECT * FROM ({inner}) AS page"
    all_params = [*sort_params, *source.params, *where.params]
    if keyset_sql:
        text += f" WHERE {keyset_sql}"
        all_params.extend(keyset_params)
    text += " ORDER BY " + ", ".join(o.replace("r.", "page.") for o in order)
    text += " LIMIT ?"
    all_params.append(query.count + 1)
    count = None
    if query.total != "none":
        if page_driver is not driver:
            source, where = compiler.source(query.where, alias, query.types, driver)
        count = Sql(f"SELECT COUNT(*) FROM {source.text} WHERE {where.text}", [*source.params, *where.params])
    return CompiledSearch(Sql(text, all_params), count, _sides(query.where, driver, page_driver, hits))


def _sides(where: Condition, driver: Driver | None, page_driver: Driver | None, hits: int | None) -> tuple[str, ...]:
    """One ``__explain`` line per chain/``_has`` of ``where``: the one whose rows drive the page
    was answered from its targets; every other one is a correlated test on each candidate row."""
    lines: list[str] = []
    for node in _subqueries(where):
        name = node.param if isinstance(node, Chain) else f"_has:{node.source_type}:{node.param}"
        driving = driver is not None and page_driver is driver and driver.covers is node
        side = cost.Side.DRIVE_FROM_TARGETS if driving else cost.Side.TEST_CANDIDATES
        how = "" if driving else " — a correlated EXISTS on each candidate row"
        lines.append(cost.explain(name, side, hits if driver is not None and driver.covers is node else None,
                                  None) + how)
    return tuple(lines)


def _subqueries(cond: Condition) -> list[Chain | Has]:
    if isinstance(cond, Chain | Has):
        return [cond]
    items = getattr(cond, "items", None)
    if items is not None:
        return [n for i in items for n in _subqueries(i)]
    item = getattr(cond, "item", None)
    return _subqueries(item) if item is not None else []


def _sort_value(field: str) -> str:
    """SQL for a sort value of entry ``k`` (see :mod:`server.search.order`): a stored field, or for
    ``ref`` the reference string ``Type/id`` (``||`` yields NULL when either part is NULL)."""
    if field == "ref":
        return "COALESCE(k.ref_type || '/' || k.ref_id, k.url)"
    return f"k.{field}"


def find_sql(type_: str, where: Condition, limit: int, estimate: Estimate | None = None) -> Sql:
    """Ids of at most ``limit`` current ``type_`` resources matching ``where`` (conditional
    interactions), driven by an index like a search."""
    compiler = Compiler(estimate)
    source, test = compiler.source(where, "r", (type_,), compiler.driver(where, (type_,)))
    return Sql(f"SELECT r.id FROM {source.text} WHERE {test.text} LIMIT ?", [*source.params, *test.params, limit])


def _keyset(query: Query) -> tuple[str, list[object]]:
    """Rows strictly after ``query.after`` in the order (s0.., type, id); NULL sorts last."""
    if query.after is None:
        return "", []
    if not query.sort and len(query.types) == 1 and query.after[:1] == query.types:
        # the default order within one type: an index seek on (type, id)
        return "page.id > ?", [query.after[1]]
    keys = [(f"page.s{n}", k.descending) for n, k in enumerate(query.sort)]
    keys += [("page.type", False), ("page.id", False)]
    values = list(query.after)  # its shape is checked by server.search.check.check_cursor
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

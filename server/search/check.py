"""The one check of a :class:`~server.search.model.Query` that every store runs before compiling
it, so an impossible query model (a field its table does not have, an unknown operator, a value of
the wrong shape, a paging cursor that does not fit the sort) is the same 400
:class:`~server.errors.InvalidSearch` on both stores instead of a store's own ``ValueError``. Pure.

The parser only builds valid models; queries built in code (``$everything``, ``_revinclude``,
jobs) and cursors sent back by clients are what this guards.
"""

from __future__ import annotations

from server.errors import InvalidSearch
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
    SortKey,
)
from server.search.order import SORT_FIELDS, sort_value_types

OPS = frozenset({"eq", "in", "prefix", "contains", "lt", "le", "gt", "ge"})
SCALARS = (str, int, float)
RESOURCE_FIELD_TYPES: dict[str, tuple[type, ...]] = {"id": (str,), "last_updated": (int,), "type": (str,)}


def _bad(message: str, where: str) -> InvalidSearch:
    return InvalidSearch(f"Search parameter '{where}': {message}", expression=(where,))


def _value(test: FieldTest, where: str) -> None:
    if test.op not in OPS:
        raise _bad(f"unknown comparison '{test.op}'", where)
    if test.op == "in":
        if not isinstance(test.value, tuple | list | frozenset):
            raise _bad("'in' needs a list of values", where)
        values = tuple(test.value)
    elif test.op == "eq" and test.value is None:
        return
    else:
        values = (test.value,)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, SCALARS):
            raise _bad(f"unsupported value {v!r}", where)
        if test.op in ("prefix", "contains") and not isinstance(v, str):
            raise _bad(f"'{test.op}' needs a text value", where)


def check_condition(cond: Condition) -> None:
    """Raise InvalidSearch for anything in ``cond`` no store can run."""
    if isinstance(cond, Always):
        return
    if isinstance(cond, Match | Missing):
        if cond.table not in TABLES:
            raise _bad(f"no index table '{cond.table}'", cond.param)
        for t in cond.tests if isinstance(cond, Match) else ():
            if t.field not in TABLES[cond.table]:
                raise _bad(f"{cond.table} entries have no field '{t.field}'", cond.param)
            _value(t, cond.param)
        return
    if isinstance(cond, ResourceTest):
        if cond.field not in RESOURCE_FIELD_TYPES:
            raise _bad(f"resources have no field '{cond.field}'", "_id")
        _value(FieldTest(cond.field, cond.op, cond.value), "_id" if cond.field == "id" else "_lastUpdated")
        return
    if isinstance(cond, And | Or):
        for item in cond.items:
            check_condition(item)
        return
    if isinstance(cond, Not):
        check_condition(cond.item)
        return
    if isinstance(cond, Chain | Has):
        check_condition(cond.where)
        return
    raise InvalidSearch(f"not a search condition: {type(cond).__name__}")


def check_sort(key: SortKey) -> None:
    if key.table == "resource":
        if key.param not in ("id", "last_updated") or key.field != key.param:
            raise _bad(f"cannot sort by '{key.param}'", "_sort")
        return
    if key.table not in SORT_FIELDS or key.field != SORT_FIELDS[key.table][1 if key.descending else 0]:
        raise _bad(f"cannot sort by the {key.field} of {key.table} entries", "_sort")


def check_cursor(query: Query) -> None:
    """``query.after`` holds one value per sort key, then the type and id of the last row: a value
    of the wrong kind or count (a cursor of another ``_sort``, type or server) is a 400."""
    after = query.after
    if after is None:
        return
    if len(after) != len(query.sort) + 2:
        raise _bad("the paging cursor does not fit this search's _sort; follow the Bundle's links", "_cursor")
    for key, value in zip(query.sort, after, strict=False):
        kinds = RESOURCE_FIELD_TYPES[key.param] if key.table == "resource" else sort_value_types(key.table)
        if key.table == "resource" and value is None:
            raise _bad("the paging cursor does not fit this search's _sort", "_cursor")
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            raise _bad("the paging cursor does not fit this search's _sort", "_cursor")
    type_, id_ = after[-2], after[-1]
    if not isinstance(type_, str) or not isinstance(id_, str) or (query.types and type_ not in query.types):
        raise _bad("the paging cursor does not fit this search's types; follow the Bundle's links", "_cursor")


def check_query(query: Query) -> None:
    """Everything a store relies on, checked once for both (see the module docstring)."""
    check_condition(query.where)
    for key in query.sort:
        check_sort(key)
    check_cursor(query)

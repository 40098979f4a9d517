"""Query models no store can run are the same 400 ``InvalidSearch`` on both stores, raised by the
search core's check (server.search.check) before either compiles them. SQLite used to raise
``ValueError`` (a 500) where MongoDB raised ``InvalidSearch``; a cursor that did not fit the sort was
a 500 or a silent answer on SQLite."""

from __future__ import annotations

import pytest

from server.errors import InvalidSearch
from server.search.model import FieldTest, Match, Not, Or, Query, ResourceTest, SortKey
from server.stores.base import Store

IMPOSSIBLE: list[tuple[str, Query, str]] = [
    ("no such table", Query(("Patient",), Match("blob", "family")), "family"),  # type: ignore[arg-type]
    ("no such field", Query(("Patient",), Match("string", "family", (FieldTest("code", "eq", "x"),))), "family"),
    ("unknown operator", Query(("Patient",), Match("string", "family", (FieldTest("value", "like", "x"),))),  # type: ignore[arg-type]
     "family"),
    ("in without a list", Query(("Patient",), Match("token", "gender", (FieldTest("code", "in", "male"),))), "gender"),
    ("a dict as a value",
     Query(("Patient",), Not(Or((Match("token", "gender", (FieldTest("code", "eq", {"$ne": 1}),)),)))), "gender"),
    ("prefix of a number",
     Query(("Patient",), Match("string", "family", (FieldTest("value", "prefix", 3),))), "family"),
    ("no such resource field", Query(("Patient",), ResourceTest("version", "eq", 1)), "_id"),  # type: ignore[arg-type]
    ("sort by an unknown field", Query(("Patient",), sort=(SortKey("date", "birthdate", "start"),)), "_sort"),
    ("descending sort by the start", Query(("Patient",), sort=(SortKey("date", "birthdate", "lo", True),)), "_sort"),
    ("cursor shorter than the sort", Query(("Patient",), sort=(SortKey("string", "family", "value"),),
                                           after=("Patient", "x")), "_cursor"),
    ("cursor of another type", Query(("Patient",), after=("Observation", "x")), "_cursor"),
    ("cursor value of the wrong kind", Query(("Patient",), sort=(SortKey("date", "birthdate", "lo"),),
                                             after=("1990", "Patient", "x")), "_cursor"),
    ("cursor id not a string", Query(("Patient",), after=("Patient", 7)), "_cursor"),
]


@pytest.mark.parametrize(("name", "query", "expression"), IMPOSSIBLE, ids=[c[0] for c in IMPOSSIBLE])
async def test_an_impossible_query_is_invalid_search_on_both_stores(store: Store, name: str, query: Query,
                                                                    expression: str) -> None:
    with pytest.raises(InvalidSearch) as e:
        await store.search(query)
    assert e.value.expression == (expression,), name
    with pytest.raises(InvalidSearch):
        await store.query_plan(query)

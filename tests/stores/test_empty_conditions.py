"""Conditions with empty connectives: ``Or(())`` matches nothing, ``And(())`` everything, and
``Not(Always())`` nothing, anywhere in a condition, on both stores (search, total, ``_sort``, the
query plan and a session's ``find``). The access policy produces them (a grant that allows no
compartment is ``Or(())``); MongoDB itself refuses ``{"$or": []}``, so the compiler must fold them."""

from __future__ import annotations

import itertools
import time

import orjson
import pytest
import pytest_asyncio

from server.search.model import Always, And, Condition, Entry, FieldTest, Match, Not, Or, Query, SortKey
from server.stores.base import Store, Version, Write
from server.stores.mongo.compile import NEVER, compile_where

_clock = itertools.count(int(time.time() * 1_000_000))
TAG = "urn:test:empty-conditions"
PATIENTS = {"e1": "male", "e2": "female", "e3": "male"}


def _tag(code: str) -> Match:
    return Match("token", "_tag", (FieldTest("system", "eq", TAG), FieldTest("code", "eq", code)))


MINE = _tag("mine")
MALE = Match("token", "gender", (FieldTest("code", "eq", "male"),))
EVERY = set(PATIENTS)
MEN = {i for i, g in PATIENTS.items() if g == "male"}

CASES: list[tuple[str, Condition, set[str]]] = [
    ("Or()", Or(()), set()),
    ("And()", And(()), EVERY),
    ("Not(Always)", Not(Always()), set()),
    ("Not(Or())", Not(Or(())), EVERY),
    ("Not(And())", Not(And(())), set()),
    ("Not(Not(Always))", Not(Not(Always())), EVERY),
    ("match and Or()", And((MALE, Or(()))), set()),
    ("match or Or()", Or((MALE, Or(()))), MEN),
    ("match and And()", And((MALE, And(()))), MEN),
    ("match or Not(Always)", Or((Not(Always()), MALE)), MEN),
    ("match and Not(Always)", And((MALE, Not(Always()))), set()),
    ("Or(And(), Not(Always))", Or((And(()), Not(Always()))), EVERY),
    ("match or And()", Or((MALE, And(()))), EVERY),
    ("nested empties", And((Or((Or(()), And((Or(()),)))), MALE)), set()),
    ("not of match and Or()", Not(And((MALE, Or(())))), EVERY),
    ("Or(Or(), Or())", Or((Or(()), Or(()))), set()),
    ("And(And(), And())", And((And(()), And(()))), EVERY),
]


@pytest_asyncio.fixture(scope="module")
async def patients(store: Store) -> Store:
    async with store.session() as s:
        for id_, gender in PATIENTS.items():
            body = orjson.dumps({"resourceType": "Patient", "id": id_, "gender": gender})
            version = Version("Patient", id_, 1, next(_clock), False, "PUT", body)
            entries = [Entry("token", "gender", ("http://hl7.org/fhir/administrative-gender", gender, None)),
                       Entry("token", "_tag", (TAG, "mine", None))]
            await s.write(Write(version, entries, None))
    return store


@pytest.mark.parametrize(("name", "where", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_empty_connectives_search(patients: Store, name: str, where: Condition, expected: set[str]) -> None:
    scoped = And((MINE, where))
    found = await patients.search(Query(("Patient",), scoped, total="accurate"))
    assert {v.id for v in found.rows} == expected, name
    assert found.total == len(expected)
    alone = await patients.search(Query(("Patient",), where, total="accurate"))  # at the top, unscoped
    assert {v.id for v in alone.rows} == expected
    by_id = await patients.search(Query(("Patient",), scoped, sort=(SortKey("resource", "id", "id", True),)))
    assert [v.id for v in by_id.rows] == sorted(expected, reverse=True)
    every_type = await patients.search(Query((), scoped, total="accurate"))
    assert {v.id for v in every_type.rows} == expected
    count_only = await patients.search(Query(("Patient",), scoped, count=0, total="accurate"))
    assert count_only.total == len(expected) and not count_only.rows
    plan = await patients.query_plan(Query(("Patient",), scoped))
    assert plan.sections


@pytest.mark.parametrize(("name", "where", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_empty_connectives_in_a_session_find(patients: Store, name: str, where: Condition,
                                                   expected: set[str]) -> None:
    async with patients.session() as s:
        assert set(await s.find("Patient", And((MINE, where)), 10)) == expected, name


def _empty_lists_of(value: object, keys: tuple[str, ...]) -> bool:
    if isinstance(value, dict):
        return any((k in keys and v == []) or _empty_lists_of(v, keys) for k, v in value.items())
    if isinstance(value, list):
        return any(_empty_lists_of(v, keys) for v in value)
    return False


@pytest.mark.parametrize(("name", "where", "expected"), CASES, ids=[c[0] for c in CASES])
def test_mongo_filters_never_hold_empty_connectives(name: str, where: Condition, expected: set[str]) -> None:
    """MongoDB refuses ``$or``/``$and``/``$nor`` with an empty list: the compiler folds them away."""
    for cond in (where, And((MINE, where)), Or((MINE, where)), Not(where)):
        compiled = compile_where(cond)
        assert not _empty_lists_of(compiled, ("$or", "$and", "$nor")), (name, compiled)
    if not expected:
        assert compile_where(where) == NEVER

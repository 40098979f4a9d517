"""Injection safety: whatever a client sends ends up as a plain bound value in a FieldTest or
ResourceTest, never as a field name or operator (stores compile only TABLES fields and FieldOp
literals). Values that look like Mongo operators, SQL, LIKE wildcards or regexes must match
only themselves."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from server.search.index import Indexer
from server.search.model import TABLES, And, Chain, Condition, Has, Match, Not, Or
from server.search.parse import parse_search
from server.search.registry import SearchRegistry
from tests.search.evaluate import World, search_ids

NASTY = ['{"$ne": null}', "$where", "'; DROP TABLE resources; --", '" OR "1"="1', "%", "_", "%_%", ".*", "^a",
         "(a|b)+", "[x]", "a\\", "\u0000", "${jndi:x}", "' OR 1=1 --"]
FIELD_OPS = {"eq", "in", "prefix", "contains", "lt", "le", "gt", "ge"}


def walk(cond: Condition) -> Iterator[Match]:
    if isinstance(cond, Match):
        yield cond
    elif isinstance(cond, And | Or):
        for c in cond.items:
            yield from walk(c)
    elif isinstance(cond, Not):
        yield from walk(cond.item)
    elif isinstance(cond, Chain | Has):
        yield from walk(cond.where)


@pytest.mark.parametrize("value", NASTY)
@pytest.mark.parametrize("name", ["name", "name:exact", "name:contains", "identifier", "identifier:text",
                                  "general-practitioner:identifier", "organization.name",
                                  "_has:Observation:subject:code"])
def test_values_stay_values(registry: SearchRegistry, name: str, value: str) -> None:
    where = parse_search(("Patient",), [(name, value)], registry, strict=True).query.where
    matches = list(walk(where))
    assert matches
    for m in matches:
        for test in m.tests:
            assert test.field in TABLES[m.table]
            assert test.op in FIELD_OPS
            assert isinstance(test.value, str | type(None))


@pytest.fixture(scope="module")
def world(indexer: Indexer) -> World:
    w = World(indexer)
    for i, family in enumerate(NASTY):
        w.add({"resourceType": "Patient", "id": f"n{i}", "name": [{"family": family}],
               "identifier": [{"system": "http://x", "value": family}]})
    w.add({"resourceType": "Patient", "id": "plain", "name": [{"family": "Smith"}],
           "identifier": [{"system": "http://x", "value": "Smith"}]})
    return w


@pytest.mark.parametrize(("i", "value"), list(enumerate(NASTY)))
def test_nasty_values_match_only_themselves(world: World, i: int, value: str) -> None:
    assert search_ids(world, ("Patient",), urlencode({"name:exact": value})) == [f"n{i}"]
    assert search_ids(world, ("Patient",), urlencode({"identifier": "http://x|" + value.replace("\\", "\\\\")
                                                                   .replace("|", "\\|").replace(",", "\\,")
                                                                   .replace("$", "\\$")})) == [f"n{i}"]
    assert "plain" not in search_ids(world, ("Patient",), urlencode({"name": value}))

"""Quantity search: http://hl7.org/fhir/R4/search.html#quantity (number|system|code, ||unit,
UCUM-canonical comparison, Money, Range, comparators)."""

from __future__ import annotations

import pytest

from server.errors import InvalidSearch
from server.search.index import Indexer
from server.search.ucum import canonical
from tests.search.evaluate import World, search_ids

UCUM = "http://unitsofmeasure.org"


def obs(rid: str, **value: object) -> dict[str, object]:
    return {"resourceType": "Observation", "id": rid, "status": "final", "code": {"text": "x"}, **value}


@pytest.fixture(scope="module")
def world(indexer: Indexer) -> World:
    w = World(indexer)
    w.add(obs("q1", valueQuantity={"value": 5.4, "unit": "mg", "system": UCUM, "code": "mg"}))
    w.add(obs("q2", valueQuantity={"value": 0.0054, "unit": "g", "system": UCUM, "code": "g"}))
    w.add(obs("q3", valueQuantity={"value": 5.4, "unit": "mg"}))
    w.add(obs("q4", valueQuantity={"value": 120, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}))
    w.add(obs("q5", valueQuantity={"value": 100, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"}))
    w.add(obs("q6", valueQuantity={"value": 5400, "unit": "µg", "system": UCUM, "code": "ug"}))
    w.add(obs("q7", valueQuantity={"value": 5, "comparator": "<", "unit": "mg", "system": UCUM, "code": "mg"}))
    w.add(obs("q8", valueString="none"))
    w.add({"resourceType": "Invoice", "id": "i1", "status": "issued", "totalGross": {"value": 48, "currency": "EUR"}})
    w.add({"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/x"},
           "onsetRange": {"low": {"value": 3, "unit": "a", "system": UCUM, "code": "a"},
                          "high": {"value": 18, "unit": "a", "system": UCUM, "code": "a"}}})
    w.add({"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/x"},
           "onsetAge": {"value": 54, "unit": "years", "system": UCUM, "code": "a"}})
    return w


@pytest.mark.parametrize(("query", "expected"), [
    ("value-quantity=5.4", ["q1", "q3"]),
    (f"value-quantity=5.4|{UCUM}|mg", ["q1", "q2", "q6"]),
    (f"value-quantity=0.0054|{UCUM}|g", ["q1", "q2", "q6"]),
    (f"value-quantity=5400|{UCUM}|ug", ["q1", "q2", "q6"]),
    (f"value-quantity=5.4|{UCUM}|g", []),
    ("value-quantity=5.4||mg", ["q1", "q3"]),
    ("value-quantity=5.4||g", []),
    ("value-quantity=5.4|http://other.org|mg", []),
    (f"value-quantity=gt100|{UCUM}|mm[Hg]", ["q4"]),
    (f"value-quantity=lt100|{UCUM}|mm[Hg]", []),
    (f"value-quantity=lt0.2|{UCUM}|mol/L", ["q5"]),
    (f"value-quantity=100000|{UCUM}|umol/L", ["q5"]),
    (f"value-quantity=gt5|{UCUM}|mg", ["q1", "q2", "q6"]),
    (f"value-quantity=lt3|{UCUM}|mg", ["q7"]),
    (f"value-quantity=gt6|{UCUM}|mg", []),
    ("value-quantity=ap5", ["q1", "q3", "q7"]),
    ("value-quantity:missing=true", ["q8"]),
])
def test_value_quantity(world: World, query: str, expected: list[str]) -> None:
    assert search_ids(world, ("Observation",), query) == expected


@pytest.mark.parametrize(("types", "query", "expected"), [
    (("Invoice",), "totalgross=48|urn:iso:std:iso:4217|EUR", ["i1"]),
    (("Invoice",), "totalgross=48||EUR", ["i1"]),
    (("Invoice",), "totalgross=48|urn:iso:std:iso:4217|USD", []),
    (("Invoice",), "totalgross=gt40", ["i1"]),
    (("Condition",), f"onset-age=54|{UCUM}|a", ["c2"]),
    (("Condition",), f"onset-age=gt10|{UCUM}|a", ["c1", "c2"]),
    (("Condition",), f"onset-age=lt10|{UCUM}|a", ["c1"]),
    (("Condition",), f"onset-age=10|{UCUM}|a", []),
    (("Condition",), f"onset-age=gt19|{UCUM}|a", ["c2"]),
    (("Condition",), f"onset-age=lt1000|{UCUM}|wk", ["c1"]),
])
def test_money_range_age(world: World, types: tuple[str, ...], query: str, expected: list[str]) -> None:
    assert search_ids(world, types, query) == expected


@pytest.mark.parametrize(("code", "factor", "unit"), [
    ("mg", "0.001", "g"), ("kg", "1000", "g"), ("cm", "0.01", "m"), ("dL", "0.1", "L"),
    ("umol/L", "0.000001", "mol/L"), ("min", "60", "s"), ("h", "3600", "s"), ("%", "1", "%"),
])
def test_ucum_table(code: str, factor: str, unit: str) -> None:
    found = canonical(code)
    assert found is not None and str(found[0]) == factor and found[1] == unit


def test_ucum_leaves_unknown_units_alone() -> None:
    assert canonical("Cel") is None and canonical("mm[Hg]") is None and canonical(None) is None


@pytest.mark.parametrize("query", ["value-quantity=5.4|mg", "value-quantity=abc", "value-quantity=5.4|a|b|c",
                                   "value-quantity:exact=5", "value-quantity=||mg"])
def test_quantity_errors(world: World, query: str) -> None:
    with pytest.raises(InvalidSearch) as caught:
        search_ids(world, ("Observation",), query)
    assert caught.value.expression == ("value-quantity",)

"""Number search: http://hl7.org/fhir/R4/search.html#number (implicit precision for eq/ne/ap,
exact value for the other prefixes)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from server.errors import InvalidSearch
from server.search.index import Indexer
from server.search.model import FieldTest
from server.search.types.number import numeric_tests
from tests.search.evaluate import World, search_ids


@pytest.mark.parametrize(("text", "lo", "hi"), [
    ("5.4", 5.35, 5.45), ("100", 99.5, 100.5), ("1e2", 50.0, 150.0), ("0.02", 0.015, 0.025),
    ("-3", -3.5, -2.5), ("100.00", 99.995, 100.005),
])
def test_eq_uses_written_precision(text: str, lo: float, hi: float) -> None:
    assert numeric_tests("eq", Decimal(text)) == ((FieldTest("lo", "ge", lo), FieldTest("hi", "lt", hi)),)


def test_other_prefixes_use_the_exact_value() -> None:
    assert numeric_tests("gt", Decimal("5.4")) == ((FieldTest("hi", "gt", 5.4),),)
    assert numeric_tests("ge", Decimal("5.4")) == ((FieldTest("hi", "ge", 5.4),),)
    assert numeric_tests("le", Decimal("5.4")) == ((FieldTest("lo", "le", 5.4),),)


@pytest.fixture(scope="module")
def world(indexer: Indexer) -> World:
    w = World(indexer)
    for rid, p in (("r1", 0.02), ("r2", 0.025), ("r3", 0.5)):
        w.add({"resourceType": "RiskAssessment", "id": rid, "status": "final", "subject": {"reference": "Patient/x"},
               "prediction": [{"probabilityDecimal": p}]})
    w.add({"resourceType": "RiskAssessment", "id": "r4", "status": "final", "subject": {"reference": "Patient/x"}})
    return w


@pytest.mark.parametrize(("query", "expected"), [
    ("probability=0.02", ["r1"]),
    ("probability=0.025", ["r2"]),
    ("probability=0.0250", ["r2"]),
    ("probability=0.5", ["r3"]),
    ("probability=0.50", ["r3"]),
    ("probability=1", ["r3"]),  # "1" means [0.5, 1.5)
    ("probability=1.0", []),
    ("probability=ne0.02", ["r2", "r3"]),
    ("probability=gt0.02", ["r2", "r3"]),
    ("probability=ge0.02", ["r1", "r2", "r3"]),
    ("probability=lt0.5", ["r1", "r2"]),
    ("probability=le0.025", ["r1", "r2"]),
    ("probability=sa0.02", ["r2", "r3"]),
    ("probability=eb0.5", ["r1", "r2"]),
    ("probability=ap0.5", ["r3"]),
    ("probability=ap0.022", ["r1"]),  # ±10%: [0.0198, 0.0242]
    ("probability=ap0.023", ["r2"]),
    ("probability=gt0.01&probability=lt0.03", ["r1", "r2"]),
    ("probability:missing=true", ["r4"]),
])
def test_probability(world: World, query: str, expected: list[str]) -> None:
    assert search_ids(world, ("RiskAssessment",), query) == expected


@pytest.mark.parametrize("query", ["probability=abc", "probability=gt", "probability=1,x", "probability=0x10",
                                   "probability:exact=1", "probability=NaN", "probability=Infinity"])
def test_number_errors(world: World, query: str) -> None:
    with pytest.raises(InvalidSearch) as caught:
        search_ids(world, ("RiskAssessment",), query)
    assert caught.value.expression == ("probability",)

"""Composite search: http://hl7.org/fhir/R4/search.html#composite (all parts from the same
element; token, quantity, date, string, concept and coordinate composites)."""

from __future__ import annotations

import pytest

from server.errors import InvalidSearch
from server.search.index import Indexer
from tests.search.evaluate import World, search_ids

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SCT = "http://snomed.info/sct"


def qty(value: float, code: str) -> dict[str, object]:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


def coding(system: str, code: str) -> dict[str, object]:
    return {"coding": [{"system": system, "code": code}]}


@pytest.fixture(scope="module")
def world(indexer: Indexer) -> World:
    w = World(indexer)
    base = {"resourceType": "Observation", "status": "final"}
    w.add({**base, "id": "bp", "code": coding(LOINC, "85354-9"), "component": [
        {"code": coding(LOINC, "8480-6"), "valueQuantity": qty(120, "mm[Hg]")},
        {"code": coding(LOINC, "8462-4"), "valueQuantity": qty(80, "mm[Hg]")}]})
    w.add({**base, "id": "ht", "code": coding(LOINC, "8302-2"), "valueQuantity": qty(166, "cm")})
    w.add({**base, "id": "ht2", "code": coding(LOINC, "8302-2"), "valueQuantity": qty(1.7, "m")})
    w.add({**base, "id": "smoke", "code": coding(LOINC, "72166-2"), "valueCodeableConcept": coding(SCT, "449868002")})
    w.add({**base, "id": "dated", "code": {"coding": [{"code": "X"}]}, "valueDateTime": "2020-01-01"})
    w.add({**base, "id": "texted", "code": {"coding": [{"code": "Y"}]}, "valueString": "Positive result"})
    w.add({"resourceType": "MolecularSequence", "id": "ms1", "type": "dna", "coordinateSystem": 0,
           "referenceSeq": {"chromosome": coding("http://terminology.hl7.org/CodeSystem/chromosome-human", "1"),
                            "windowStart": 100, "windowEnd": 200},
           "variant": [{"start": 128, "end": 129}]})
    return w


@pytest.mark.parametrize(("query", "expected"), [
    (f"code-value-quantity={LOINC}|8302-2$gt160", ["ht"]),
    ("code-value-quantity=8302-2$gt160", ["ht"]),
    (f"code-value-quantity=8302-2$gt1.65|{UCUM}|m", ["ht", "ht2"]),
    (f"code-value-quantity=8302-2$170|{UCUM}|cm", ["ht2"]),
    ("code-value-quantity=8302-2$166||cm", ["ht"]),
    ("code-value-quantity=8302-2$lt2", ["ht2"]),
    ("code-value-quantity=8302-2$lt2||cm", []),
    ("code-value-quantity=http://other|8302-2$gt0", []),
    (f"component-code-value-quantity={LOINC}|8480-6$gt100", ["bp"]),
    ("component-code-value-quantity=8480-6$lt100", []),
    ("component-code-value-quantity=8462-4$lt100", ["bp"]),
    ("component-code-value-quantity=8480-6$80", []),
    ("component-code-value-quantity=8480-6$120,8462-4$80", ["bp"]),
    ("combo-code-value-quantity=8480-6$120", ["bp"]),
    ("combo-code-value-quantity=8302-2$166", ["ht"]),
    ("combo-code-value-quantity=85354-9$120", []),
    (f"code-value-concept=72166-2${SCT}|449868002", ["smoke"]),
    ("code-value-concept=72166-2$449868002", ["smoke"]),
    ("code-value-concept=72166-2$http://other|449868002", []),
    (f"code-value-concept={LOINC}|72166-2$|449868002", []),
    ("code-value-date=X$2020", ["dated"]),
    ("code-value-date=|X$2020-01", ["dated"]),
    ("code-value-date=X$gt2021", []),
    ("code-value-string=Y$pos", ["texted"]),
    ("code-value-string=Y$POSITIVE R", ["texted"]),
    ("code-value-string=Y$result", []),
    ("code-value-string=X$pos", []),
    ("code-value-quantity:missing=true", ["bp", "dated", "smoke", "texted"]),
])
def test_observation_composites(world: World, query: str, expected: list[str]) -> None:
    assert search_ids(world, ("Observation",), query) == expected


@pytest.mark.parametrize(("query", "expected"), [
    ("chromosome-variant-coordinate=1$gt100$lt200", ["ms1"]),
    ("chromosome-variant-coordinate=1$128$129", ["ms1"]),
    ("chromosome-variant-coordinate=1$gt130$lt200", []),
    ("chromosome-variant-coordinate=2$gt100$lt200", []),
    ("chromosome-window-coordinate=1$100$200", ["ms1"]),
    ("chromosome-window-coordinate=1$le100$ge200", ["ms1"]),
    ("chromosome-window-coordinate=1$101$200", []),
])
def test_coordinates(world: World, query: str, expected: list[str]) -> None:
    assert search_ids(world, ("MolecularSequence",), query) == expected


@pytest.mark.parametrize("query", ["code-value-quantity=8302-2", "code-value-quantity=8302-2$abc",
                                   "code-value-quantity=8302-2$1$2", "code-value-quantity=$5",
                                   "code-value-quantity:exact=8302-2$5", "code-value-quantity=a|b|c$5",
                                   "code-value-quantity=8302-2$5|http://unitsofmeasure.org|"])
def test_composite_errors(world: World, query: str) -> None:
    with pytest.raises(InvalidSearch) as caught:
        search_ids(world, ("Observation",), query)
    assert caught.value.expression == ("code-value-quantity",)

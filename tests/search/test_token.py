"""Token search: http://hl7.org/fhir/R4/search.html#token (system|code forms, :text, :not,
:of-type, :missing; terminology modifiers declined)."""

from __future__ import annotations

import pytest

from server.errors import InvalidSearch, NotSupported
from server.search.index import Indexer
from tests.search.evaluate import World, search_ids

LOINC = "http://loinc.org"
V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"


@pytest.fixture(scope="module")
def world(indexer: Indexer) -> World:
    w = World(indexer)
    w.add({"resourceType": "Observation", "id": "o1", "status": "final",
           "code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic blood pressure"}],
                    "text": "BP sys"}})
    w.add({"resourceType": "Observation", "id": "o2", "status": "preliminary",
           "code": {"coding": [{"system": "http://snomed.info/sct", "code": "123"}, {"code": "local-1"}]}})
    w.add({"resourceType": "Observation", "id": "o3", "status": "amended", "code": {"text": "Free text only"}})
    w.add({"resourceType": "Patient", "id": "p1", "active": True, "gender": "female",
           "identifier": [{"system": "http://hospital/mrn", "value": "12345",
                           "type": {"coding": [{"system": V2, "code": "MR"}], "text": "Medical record number"}}],
           "telecom": [{"system": "phone", "value": "555-1234"}, {"system": "email", "value": "a@b.c"}]})
    w.add({"resourceType": "Patient", "id": "p2", "active": False, "gender": "male",
           "identifier": [{"value": "999"}]})
    w.add({"resourceType": "Patient", "id": "p3"})
    return w


@pytest.mark.parametrize(("query", "expected"), [
    ("code=8480-6", ["o1"]),
    (f"code={LOINC}|8480-6", ["o1"]),
    ("code=http://snomed.info/sct|8480-6", []),
    ("code=|local-1", ["o2"]),
    ("code=|8480-6", []),
    (f"code={LOINC}|", ["o1"]),
    ("code=8480-6,123", ["o1", "o2"]),
    ("code=8480-6&code=123", []),
    ("code=8480", []),
    ("code=8480-6X", []),
    ("code:text=systolic", ["o1"]),
    ("code:text=SYSTOLIC BLOOD", ["o1"]),
    ("code:text=bp", ["o1"]),
    ("code:text=free", ["o3"]),
    ("code:text=blood", []),
    ("code:not=8480-6", ["o2", "o3"]),
    ("code:not=8480-6,local-1", ["o3"]),
    ("status:not=final", ["o2", "o3"]),
    ("status=final,amended", ["o1", "o3"]),
    ("code:missing=false", ["o1", "o2", "o3"]),
])
def test_observation_tokens(world: World, query: str, expected: list[str]) -> None:
    assert search_ids(world, ("Observation",), query) == expected


@pytest.mark.parametrize(("query", "expected"), [
    ("active=true", ["p1"]),
    ("active=false", ["p2"]),
    ("active:not=true", ["p2", "p3"]),
    ("gender=female", ["p1"]),
    ("gender=Female", []),
    ("identifier=12345", ["p1"]),
    ("identifier=http://hospital/mrn|12345", ["p1"]),
    ("identifier=http://other|12345", []),
    ("identifier=|999", ["p2"]),
    ("identifier=|12345", []),
    (f"identifier:of-type={V2}|MR|12345", ["p1"]),
    (f"identifier:of-type={V2}|DL|12345", []),
    (f"identifier:of-type={V2}|MR|999", []),
    ("identifier:text=medical", ["p1"]),
    ("identifier:missing=true", ["p3"]),
    ("identifier:missing=false", ["p1", "p2"]),
    ("telecom=555-1234", ["p1"]),
    ("telecom=phone|555-1234", ["p1"]),
    ("telecom=email|555-1234", []),
    ("phone=555-1234", ["p1"]),
    ("email=a@b.c", ["p1"]),
    ("phone=a@b.c", []),
])
def test_patient_tokens(world: World, query: str, expected: list[str]) -> None:
    assert search_ids(world, ("Patient",), query) == expected


@pytest.mark.parametrize(("query", "error", "name"), [
    ("code=a|b|c", InvalidSearch, "code"),
    ("code=|", InvalidSearch, "code"),
    ("code:exact=x", InvalidSearch, "code"),
    ("code:contains=x", InvalidSearch, "code"),
    ("code:in=http://hl7.org/fhir/ValueSet/x", NotSupported, "code"),
    ("code:not-in=http://hl7.org/fhir/ValueSet/x", NotSupported, "code"),
    ("code:below=http://snomed.info/sct|123", NotSupported, "code"),
    ("code:above=http://snomed.info/sct|123", NotSupported, "code"),
    ("identifier:of-type=a|b", InvalidSearch, "identifier"),
    ("identifier:missing=maybe", InvalidSearch, "identifier"),
    ("code:text=", None, None),
])
def test_token_errors(world: World, query: str, error: type[Exception] | None, name: str | None) -> None:
    types = ("Patient",) if query.startswith("identifier") else ("Observation",)
    if error is None:  # an empty value is ignored, not an error (search.html: empty parameters)
        assert search_ids(world, types, query) == ["o1", "o2", "o3"]
        return
    with pytest.raises(error) as caught:
        search_ids(world, types, query)
    assert caught.value.expression == (name,)
    assert name in caught.value.message

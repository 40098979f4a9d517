"""Reference search and chaining: http://hl7.org/fhir/R4/search.html#reference, #chaining, #has
(Type/id, id, :Type, absolute URLs under this server's base, canonicals, :identifier, :missing,
forward chains to any depth, reverse chains nested)."""

from __future__ import annotations

import pytest

from server.errors import InvalidSearch
from server.search.index import Indexer
from server.search.registry import SearchRegistry
from server.search.types import reference
from server.search.types.common import Options
from tests.search.conftest import BASE
from tests.search.evaluate import World, search_ids


def obs(rid: str, subject: dict[str, object], **more: object) -> dict[str, object]:
    return {"resourceType": "Observation", "id": rid, "status": "final", "code": {"text": rid},
            "subject": subject, **more}


@pytest.fixture(scope="module")
def world(indexer: Indexer) -> World:
    w = World(indexer)
    w.add({"resourceType": "Organization", "id": "org1", "name": "Acme Hospital"})
    w.add({"resourceType": "Organization", "id": "org2", "name": "Other"})
    w.add({"resourceType": "Patient", "id": "1", "name": [{"family": "Smith"}],
           "managingOrganization": {"reference": "Organization/org1"}})
    w.add({"resourceType": "Patient", "id": "2", "name": [{"family": "Jones"}]})
    w.add({"resourceType": "Group", "id": "g1", "type": "person", "actual": True, "name": "Jones family"})
    w.add({"resourceType": "Location", "id": "loc1", "name": "Jones Ward"})
    w.add(obs("o1", {"reference": "Patient/1"}, performer=[{"reference": "Organization/org2"}]))
    w.add(obs("o2", {"reference": f"{BASE}/Patient/2"}))
    w.add(obs("o3", {"reference": "http://other.org/fhir/Patient/3"}))
    w.add(obs("o4", {"reference": "Group/g1"}))
    w.add(obs("o5", {"identifier": {"system": "http://ids", "value": "abc"}}))
    w.add(obs("o6", {"reference": "#p"}, contained=[{"resourceType": "Patient", "id": "p"}]))
    w.add(obs("o7", {"reference": "Patient/1/_history/3"}))
    w.add(obs("o8", {"reference": "urn:uuid:5b1c2f6e-6f0a-4c1e-9e0e-2d5d1b2f9c11"}))
    w.add(obs("o9", {"reference": "Location/loc1"}))
    w.add({"resourceType": "Observation", "id": "o10", "status": "final", "code": {"text": "o10"}})
    w.add({"resourceType": "QuestionnaireResponse", "id": "qr1", "status": "completed",
           "questionnaire": "http://q.org/Questionnaire/q1|2.0"})
    w.add({"resourceType": "QuestionnaireResponse", "id": "qr2", "status": "completed",
           "questionnaire": "http://q.org/Questionnaire/q1"})
    return w


@pytest.mark.parametrize(("query", "expected"), [
    ("subject=Patient/1", ["o1", "o7"]),
    ("subject=1", ["o1", "o7"]),
    ("subject:Patient=1", ["o1", "o7"]),
    ("subject:Group=1", []),
    ("subject=Patient/1/_history/3", ["o1", "o7"]),
    (f"subject={BASE}/Patient/1", ["o1", "o7"]),
    ("subject=Patient/2", ["o2"]),
    (f"subject={BASE}/Patient/2", ["o2"]),
    ("subject=http://other.org/fhir/Patient/3", ["o3"]),
    ("subject=Patient/3", []),
    ("subject:Group=g1", ["o4"]),
    ("subject=Group/g1,Patient/2", ["o2", "o4"]),
    ("subject=urn:uuid:5b1c2f6e-6f0a-4c1e-9e0e-2d5d1b2f9c11", ["o8"]),
    ("subject:identifier=http://ids|abc", ["o5"]),
    ("subject:identifier=abc", ["o5"]),
    ("subject:identifier=http://other|abc", []),
    ("patient=Patient/1", ["o1", "o7"]),
    ("patient=2", ["o2"]),
    ("subject:missing=true", ["o10"]),
    ("subject:missing=false", ["o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8", "o9"]),
    ("performer:missing=false", ["o1"]),
    ("subject:Patient.name=smith", ["o1", "o7"]),
    ("subject.name=jones", ["o2", "o9"]),  # Patient.name or Location.name (Group has no name parameter)
    ("subject:Location.name=jones", ["o9"]),
    ("subject:Patient.organization.name=acme", ["o1", "o7"]),
    ("subject:Patient.organization.name=other", []),
    ("subject:Patient.organization=Organization/org1", ["o1", "o7"]),
    ("subject:Patient._id=2", ["o2"]),
    ("subject.name:exact=Smith", ["o1", "o7"]),
    ("subject:Patient.name:missing=false", ["o1", "o2", "o7"]),
    ("performer:Organization.name=other&subject=Patient/1", ["o1"]),
])
def test_observation_references(world: World, query: str, expected: list[str]) -> None:
    assert search_ids(world, ("Observation",), query) == expected


@pytest.mark.parametrize(("types", "query", "expected"), [
    (("Patient",), "_has:Observation:subject:code:text=o1", ["1"]),
    (("Patient",), "_has:Observation:patient:_id=o2", ["2"]),
    (("Patient",), "_has:Observation:subject:status=final", ["1", "2"]),
    (("Patient",), "_has:Observation:subject:status=cancelled", []),
    (("Organization",), "_has:Patient:organization:_has:Observation:patient:code:text=o7", ["org1"]),
    (("Organization",), "_has:Patient:organization:name=smith", ["org1"]),
    (("Organization",), "_has:Observation:performer:subject:Patient.name=smith", ["org2"]),
    (("QuestionnaireResponse",), "questionnaire=http://q.org/Questionnaire/q1", ["qr1", "qr2"]),
    (("QuestionnaireResponse",), "questionnaire=http://q.org/Questionnaire/q1|2.0", ["qr1"]),
    (("QuestionnaireResponse",), "questionnaire=http://q.org/Questionnaire/q1|3.0", []),
])
def test_reverse_chains_and_canonicals(world: World, types: tuple[str, ...], query: str,
                                       expected: list[str]) -> None:
    assert search_ids(world, types, query) == expected


@pytest.mark.parametrize(("text", "base", "found"), [
    ("Patient/1", "", ("Patient", "1", None)),
    ("Patient/1/_history/2", "", ("Patient", "1", None)),
    (f"{BASE}/Patient/1", BASE, ("Patient", "1", None)),
    (f"{BASE}/Patient/1", "", (None, None, f"{BASE}/Patient/1")),
    ("http://x.org/Patient/1", BASE, (None, None, "http://x.org/Patient/1")),
    ("urn:oid:1.2.3", "", (None, None, "urn:oid:1.2.3")),
    ("#contained", "", (None, None, "#contained")),
    ("", "", None),
])
def test_parse_reference(text: str, base: str, found: tuple[str | None, ...] | None) -> None:
    assert reference.parse_reference(text, Options(base_url=base)) == found


def test_bare_id_takes_the_declared_or_single_target_type(registry: SearchRegistry) -> None:
    subject = registry.get("Observation", "subject")
    organization = registry.get("Patient", "organization")
    assert subject is not None and organization is not None
    assert reference.references(subject, {"reference": "abc", "type": "Group"}, "Reference") == [("Group", "abc", None)]
    assert reference.references(organization, {"reference": "abc"}, "Reference") == [("Organization", "abc", None)]
    assert reference.references(subject, {"reference": "abc"}, "Reference") == [(None, "abc", None)]


@pytest.mark.parametrize(("query", "name"), [
    ("subject=Patient/", "subject"),
    ("subject:Foo=1", "subject"),
    ("subject:Medication=1", "subject"),
    ("subject:Patient=Group/g1", "subject"),
    ("subject:exact=1", "subject"),
    ("patient=Device/d1", "patient"),
    ("subject:Group.name=x", "subject:Group.name"),
    ("subject=a b", "subject"),
    ("subject=#p", "subject"),
    ("code.name=x", "code"),
    ("subject.nope=x", "subject.nope"),
    ("_has:Nope:subject:code=x", "_has"),
    ("_has:Observation:code:code=x", "_has"),
    ("_has:Observation:subject=x", "_has"),
])
def test_reference_errors(world: World, query: str, name: str) -> None:
    with pytest.raises(InvalidSearch) as caught:
        search_ids(world, ("Observation",), query)
    assert caught.value.expression == (name,)

"""Structural validation against the R4 core definitions, rule by rule.

Spec: http://hl7.org/fhir/R4/json.html (JSON representation), http://hl7.org/fhir/R4/elementdefinition.html
(cardinality, choice types), http://hl7.org/fhir/R4/references.html#contained,
http://hl7.org/fhir/R4/narrative.html, http://hl7.org/fhir/R4/extensibility.html.

Each case is a resource and the exact set of (severity, code, expression) it must produce; an
empty set means the resource is valid.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from profiles.model import Element, Node, TypeModel, core_model
from profiles.validator import Validator, default_validator

Expected = set[tuple[str, str, str]]

XHTML = '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'
EXT = {"url": "http://example.org/ext", "valueString": "x"}


def patient(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **fields}


def observation(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, **fields}


def err(code: str, expression: str) -> tuple[str, str, str]:
    return ("error", code, expression)


VALID: list[tuple[str, dict[str, Any]]] = [
    ("minimal patient", patient()),
    ("patient with ids and names", patient(id="p-1.x", identifier=[{"system": "urn:x", "value": "1"}],
                                           name=[{"family": "张", "given": ["三", "四"]}], active=True)),
    ("choice: one variant", observation(valueQuantity={"value": 1.5, "unit": "kg"})),
    ("choice: integer variant", patient(multipleBirthInteger=2)),
    ("primitive extension sibling", patient(birthDate="1970", _birthDate={"extension": [EXT]})),
    ("primitive sibling alone", patient(_birthDate={"id": "b", "extension": [EXT]})),
    ("required primitive given only as sibling",
     {"resourceType": "Observation", "_status": {"extension": [EXT]}, "code": {"text": "x"}}),
    ("primitive array aligned with nulls",
     patient(name=[{"given": ["a", None], "_given": [None, {"extension": [EXT]}]}])),
    ("primitive array sibling only", patient(name=[{"_given": [{"extension": [EXT]}]}])),
    ("nested extensions", patient(extension=[{"url": "http://x", "extension": [EXT, EXT]}])),
    ("modifier extension", patient(modifierExtension=[EXT])),
    ("element id is any string", patient(name=[{"id": "any string ok", "family": "x"}])),
    ("contained with id", patient(contained=[{"resourceType": "Organization", "id": "o1", "name": "x"}])),
    ("narrative", patient(text={"status": "generated", "div": XHTML})),
    ("bundle with entries", {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": patient(birthDate="2000-01-01")},
        {"resource": observation(valueString="x")}]}),
    ("parameters with resources", {"resourceType": "Parameters", "parameter": [
        {"name": "a", "resource": patient()},
        {"name": "b", "part": [{"name": "c", "valueInteger": 1}, {"name": "d", "resource": patient()}]}]}),
    ("content reference recursion", {"resourceType": "Questionnaire", "status": "draft", "item": [
        {"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "string"}]}]}),
]

INVALID: list[tuple[str, Any, Expected]] = [
    # resourceType
    ("no resourceType", {"id": "x"}, {("fatal", "required", "resourceType")}),
    ("unknown resourceType", {"resourceType": "Patients"}, {("fatal", "invalid", "resourceType")}),
    ("abstract resourceType", {"resourceType": "DomainResource"}, {("fatal", "invalid", "resourceType")}),
    ("datatype as resourceType", {"resourceType": "HumanName"}, {("fatal", "invalid", "resourceType")}),
    ("resourceType not a string", {"resourceType": ["Patient"]}, {("fatal", "invalid", "resourceType")}),
    ("not an object", ["Patient"], {("fatal", "invalid", "")}),
    ("resourceType in a datatype", patient(name=[{"resourceType": "HumanName"}]),
     {err("structure", "Patient.name[0].resourceType")}),
    # unknown elements
    ("unknown element", patient(foo=1), {err("structure", "Patient.foo")}),
    ("unknown nested element", patient(name=[{"family": "x"}, {"surname": "x"}]),
     {err("structure", "Patient.name[1].surname")}),
    ("element of another resource", observation(gender="male"), {err("structure", "Observation.gender")}),
    # JSON kinds
    ("boolean as string", patient(active="true"), {err("structure", "Patient.active")}),
    ("date as number", patient(birthDate=19700101), {err("structure", "Patient.birthDate")}),
    ("object as string", patient(maritalStatus="M"), {err("structure", "Patient.maritalStatus")}),
    ("array item not object", patient(name=["John"]), {err("structure", "Patient.name[0]")}),
    ("number as string", observation(valueInteger="1"), {err("structure", "Observation.valueInteger")}),
    # arrays vs single values
    ("array for max 1 primitive", patient(gender=["male"]), {err("structure", "Patient.gender")}),
    ("array for max 1 complex", patient(maritalStatus=[{"text": "x"}]), {err("structure", "Patient.maritalStatus")}),
    ("single for repeating complex", patient(identifier={"value": "1"}), {err("structure", "Patient.identifier")}),
    ("single for repeating primitive", patient(name=[{"given": "John"}]), {err("structure", "Patient.name[0].given")}),
    ("array for single resource", {"resourceType": "Bundle", "type": "collection",
                                   "entry": [{"resource": [patient()]}]},
     {err("structure", "Bundle.entry[0].resource")}),
    # cardinality
    ("missing required", {"resourceType": "Observation"},
     {err("required", "Observation.status"), err("required", "Observation.code")}),
    ("missing required in backbone", patient(link=[{"type": "seealso"}]), {err("required", "Patient.link[0].other")}),
    ("missing required choice in datatype", {"resourceType": "Library", "status": "draft", "type": {"text": "x"},
                                             "useContext": [{"code": {"code": "x"}}]},
     {err("required", "Library.useContext[0].value[x]")}),
    ("missing bundle type", {"resourceType": "Bundle"}, {err("required", "Bundle.type")}),
    # choice types
    ("two choice variants", observation(valueString="x", valueBoolean=True),
     {err("structure", "Observation.valueBoolean")}),
    ("undeclared choice type", observation(valueFoo=1), {err("structure", "Observation.valueFoo")}),
    ("choice type not allowed here", patient(deceasedString="yes"), {err("structure", "Patient.deceasedString")}),
    # primitive formats in place
    ("bad date", patient(birthDate="1970-13-01"), {err("value", "Patient.birthDate")}),
    ("bad resource id", patient(id="a b"), {err("value", "Patient.id")}),
    ("resource id too long", patient(id="x" * 65), {err("value", "Patient.id")}),
    ("bad code in array item", patient(identifier=[{"value": "1"}, {"use": "of ficial "}]),
     {err("value", "Patient.identifier[1].use"), err("code-invalid", "Patient.identifier[1].use")}),
    ("integer out of range", patient(multipleBirthInteger=2**31), {err("value", "Patient.multipleBirthInteger")}),
    ("bad instant in meta", patient(meta={"lastUpdated": "2020-01-01"}), {err("value", "Patient.meta.lastUpdated")}),
    ("extension url must be uri", patient(extension=[{"url": "not a uri", "valueString": "x"}]),
     {err("value", "Patient.extension[0].url")}),
    # primitive siblings
    ("sibling with unknown key", patient(birthDate="1970", _birthDate={"foo": 1}),
     {err("structure", "Patient.birthDate.foo")}),
    ("sibling not an object", patient(_birthDate="x"), {err("structure", "Patient.birthDate")}),
    ("sibling of complex element", patient(_name={"id": "x"}), {err("structure", "Patient._name")}),
    ("sibling extension without url", patient(_birthDate={"extension": [{"valueString": "x"}]}),
     {err("required", "Patient.birthDate.extension[0].url")}),
    ("sibling of unknown element", patient(_foo={"id": "x"}), {err("structure", "Patient._foo")}),
    ("array sibling not an array", patient(name=[{"given": ["a"], "_given": {"id": "x"}}]),
     {err("structure", "Patient.name[0]._given")}),
    # arrays of primitives with nulls
    ("null without sibling", patient(name=[{"given": ["a", None]}]), {err("structure", "Patient.name[0].given[1]")}),
    ("null on both sides", patient(name=[{"given": ["a", None], "_given": [None, None]}]),
     {err("structure", "Patient.name[0].given[1]")}),
    ("misaligned arrays", patient(name=[{"given": ["a"], "_given": [None, {"id": "x"}]}]),
     {err("structure", "Patient.name[0]._given")}),
    ("null in complex array", patient(name=[None]), {err("structure", "Patient.name[0]")}),
    ("null single value", patient(gender=None), {err("structure", "Patient.gender")}),
    # empties
    ("empty object", patient(maritalStatus={}), {err("structure", "Patient.maritalStatus")}),
    ("empty object in array", patient(name=[{}]), {err("structure", "Patient.name[0]")}),
    ("empty array", patient(identifier=[]), {err("structure", "Patient.identifier")}),
    ("empty string", patient(gender=""), {err("value", "Patient.gender"), err("code-invalid", "Patient.gender")}),
    ("empty string in array", patient(name=[{"given": [""]}]), {err("value", "Patient.name[0].given[0]")}),
    ("empty sibling", patient(birthDate="1970", _birthDate={}), {err("structure", "Patient.birthDate")}),
    # extensions
    ("extension without url", patient(extension=[{"valueString": "x"}]), {err("required", "Patient.extension[0].url")}),
    ("extension with two values", patient(extension=[{"url": "http://x", "valueString": "x", "valueCode": "y"}]),
     {err("structure", "Patient.extension[0].valueCode")}),
    ("modifierExtension without url", patient(modifierExtension=[{"valueBoolean": True}]),
     {err("required", "Patient.modifierExtension[0].url")}),
    ("nested extension without url", patient(extension=[{"url": "http://x", "extension": [{"valueString": "x"}]}]),
     {err("required", "Patient.extension[0].extension[0].url")}),
    ("extension on datatype", patient(name=[{"extension": [{"url": "http://x", "valueFoo": 1}]}]),
     {err("structure", "Patient.name[0].extension[0].valueFoo")}),
    # contained
    ("contained without id", patient(contained=[{"resourceType": "Organization", "name": "x"}]),
     {err("required", "Patient.contained[0].id")}),
    ("nested contained", patient(contained=[{"resourceType": "Organization", "id": "o", "contained": [
        {"resourceType": "Organization", "id": "p"}]}]), {err("structure", "Patient.contained[0].contained")}),
    ("contained validated", patient(contained=[{"resourceType": "Organization", "id": "o", "active": "yes"}]),
     {err("structure", "Patient.contained[0].active")}),
    ("contained without resourceType", patient(contained=[{"id": "o"}]),
     {err("required", "Patient.contained[0].resourceType")}),
    ("contained not an object", patient(contained=["o"]), {err("structure", "Patient.contained[0]")}),
    # nested resources
    ("bundle entry validated as its type", {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": patient()}, {"resource": patient(name=[{"given": [1]}])}]},
     {err("structure", "Bundle.entry[1].resource.name[0].given[0]")}),
    ("bundle entry unknown type", {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Nope"}}]}, {err("invalid", "Bundle.entry[0].resource.resourceType")}),
    ("bundle entry missing required", {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Observation", "status": "final"}}]},
     {err("required", "Bundle.entry[0].resource.code")}),
    ("bundle response outcome", {"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"response": {"status": "400", "outcome": {"resourceType": "OperationOutcome"}}}]},
     {err("required", "Bundle.entry[0].response.outcome.issue")}),
    ("parameters resource", {"resourceType": "Parameters", "parameter": [
        {"name": "a", "resource": patient(birthDate="x")}]},
     {err("value", "Parameters.parameter[0].resource.birthDate")}),
    ("parameters part resource", {"resourceType": "Parameters", "parameter": [
        {"name": "a", "part": [{"name": "b", "resource": {"resourceType": "Observation", "status": "final"}}]}]},
     {err("required", "Parameters.parameter[0].part[0].resource.code")}),
    ("bundle inside bundle", {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient(foo=1)}]}}]},
     {err("structure", "Bundle.entry[0].resource.entry[0].resource.foo")}),
    # narrative
    ("div not a div", patient(text={"status": "generated", "div": "<p>x</p>"}), {err("value", "Patient.text.div")}),
    ("div without namespace", patient(text={"status": "generated", "div": "<div>x</div>"}),
     {err("value", "Patient.text.div")}),
    ("div missing", patient(text={"status": "generated"}), {err("required", "Patient.text.div")}),
    ("div not a string", patient(text={"status": "generated", "div": {"p": "x"}}),
     {err("structure", "Patient.text.div")}),
]


@pytest.mark.parametrize(("name", "resource"), VALID, ids=[c[0] for c in VALID])
def test_valid_resources_have_no_issues(name: str, resource: dict[str, Any]) -> None:
    assert default_validator().validate(resource) == []


@pytest.mark.parametrize(("name", "resource", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_resources_report_where(name: str, resource: Any, expected: Expected) -> None:
    issues = default_validator().validate(resource)
    assert {(i.severity, i.code, i.expression) for i in issues} == expected
    assert all(i.message for i in issues)


@pytest.mark.parametrize(
    ("resource", "fragment"),
    [
        (patient(nmae=[{"family": "x"}]), "did you mean 'name'"),
        (observation(valueFoo=1), "valueQuantity"),
        (observation(valueString="x", valueBoolean=True), "valueString"),
        (patient(birthDate="1970-13-01"), "YYYY-MM-DD"),
        (patient(gender=["male"]), "single"),
        (patient(identifier={"value": "1"}), "array"),
        ({"resourceType": "Bundle"}, "'type'"),
    ],
)
def test_messages_say_what_to_do(resource: dict[str, Any], fragment: str) -> None:
    (issue,) = default_validator().validate(resource)
    assert fragment in issue.message


def test_every_error_is_reported_not_just_the_first() -> None:
    resource = patient(foo=1, active="yes", gender=["x"], name=[{}], birthDate="x")
    assert len(default_validator().validate(resource)) == 5


class NarrowNames(TypeModel):
    """The core model with Patient.name limited to 2 repetitions, as a profile would do."""

    def children(self, node: Node) -> dict[str, Element]:
        found = super().children(node)
        if node == Node("Patient", "Patient"):
            found = {**found, "name": replace(found["name"], max="2")}
        return found


@pytest.mark.parametrize(("count", "expected"), [(2, set()), (3, {err("structure", "Patient.name")})])
def test_numeric_max_cardinality(count: int, expected: Expected) -> None:
    validator = Validator(NarrowNames(core_model().definitions))
    issues = validator.validate(patient(name=[{"family": str(i)} for i in range(count)]))
    assert {(i.severity, i.code, i.expression) for i in issues} == expected

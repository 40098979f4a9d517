"""Validation against profiles, rule by rule (http://hl7.org/fhir/R4/profiling.html).

Each case is a profile differential, a resource that claims the profile, and the exact set of
(severity, code, expression) issues the profile stage must report — an empty set means the
resource conforms. Structural issues are left out (they have their own tests); dom-6 is off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from profiles.engine import ProfileEngine
from profiles.registry import ProfileRegistry
from profiles.validator import Validator

Expected = set[tuple[str, str, str]]
URL = "http://example.org/fhir/StructureDefinition/test"
EXT = "http://example.org/fhir/StructureDefinition/ext-string"
COMPLEX_EXT = "http://example.org/fhir/StructureDefinition/ext-complex"
TARGET = "http://example.org/fhir/StructureDefinition/named-patient"
CORE = "http://hl7.org/fhir/StructureDefinition/"


@dataclass(frozen=True)
class Check:
    result: bool | None
    message: str = ""
    display: str | None = None


class FakeTerminology:
    """Knows two value sets; everything else is 'cannot tell'."""

    SETS: ClassVar[dict[str, set[tuple[str | None, str]]]] = {
        "http://example.org/vs/colors": {("http://example.org/cs", "red"), ("http://example.org/cs", "blue")},
        "http://hl7.org/fhir/ValueSet/administrative-gender": {(None, "male"), (None, "female"), (None, "other"),
                                                               (None, "unknown")}}

    def __init__(self) -> None:
        self.calls = 0

    def check(self, valueset_url: str, system: str | None, code: str, display: str | None = None) -> Check:
        self.calls += 1
        codes = self.SETS.get(valueset_url.split("|")[0])
        if codes is None:
            return Check(None, f"{valueset_url} unknown")
        return Check((system, code) in codes or (None, code) in codes)


def structure(type_name: str, url: str, elements: list[dict[str, Any]], kind: str = "resource",
              context: list[dict[str, str]] | None = None) -> dict[str, Any]:
    sd: dict[str, Any] = {
        "resourceType": "StructureDefinition", "url": url, "name": "T", "status": "draft", "kind": kind,
        "abstract": False, "type": type_name, "derivation": "constraint", "baseDefinition": CORE + type_name,
        "differential": {"element": [{"id": e["path"] if "id" not in e else e["id"], **e} for e in elements]}}
    if context is not None:
        sd["context"] = context
    return sd


SUPPORT = [
    structure("Extension", EXT, [{"path": "Extension.url", "fixedUri": EXT},
                                 {"path": "Extension.value[x]", "min": 1, "type": [{"code": "string"}]}],
              kind="complex-type", context=[{"type": "element", "expression": "Patient"}]),
    structure("Extension", COMPLEX_EXT, [
        {"path": "Extension.extension", "min": 1},
        {"id": "Extension.extension:a", "path": "Extension.extension", "sliceName": "a", "min": 1, "max": "1"},
        {"id": "Extension.extension:a.url", "path": "Extension.extension.url", "fixedUri": "a"},
        {"id": "Extension.extension:a.value[x]", "path": "Extension.extension.value[x]",
         "type": [{"code": "integer"}]},
        {"path": "Extension.url", "fixedUri": COMPLEX_EXT},
        {"path": "Extension.value[x]", "max": "0"}], kind="complex-type",
        context=[{"type": "element", "expression": "Element"}]),
    structure("Patient", TARGET, [{"path": "Patient.name", "min": 1}]),
]


def make_validator(*profiles: dict[str, Any], **options: Any) -> tuple[Validator, FakeTerminology]:
    registry = ProfileRegistry()
    registry.add_all([*SUPPORT, *profiles])
    terminology = FakeTerminology()
    engine = ProfileEngine(registry, terminology=terminology, best_practice=None, **options)
    return Validator(engine=engine), terminology


def issues_of(elements: list[dict[str, Any]], resource: dict[str, Any], type_name: str | None = None) -> Expected:
    sd = structure(type_name or resource["resourceType"], URL, elements)
    validator, _ = make_validator(sd)
    claimed = {**resource, "meta": {"profile": [URL]}}
    structural = {(i.severity, i.code, i.expression) for i in Validator().validate(claimed)}
    return {(i.severity, i.code, i.expression) for i in validator.validate(claimed)
            if i.severity != "information"} - structural


def err(code: str, expression: str) -> tuple[str, str, str]:
    return ("error", code, expression)


def warn(code: str, expression: str) -> tuple[str, str, str]:
    return ("warning", code, expression)


PATIENT = {"resourceType": "Patient"}
OBS = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
SLICED_IDENTIFIER = [
    {"path": "Patient.identifier", "slicing": {"discriminator": [{"type": "value", "path": "system"}],
                                               "rules": "closed", "ordered": True}},
    {"id": "Patient.identifier:a", "path": "Patient.identifier", "sliceName": "a", "min": 1, "max": "1"},
    {"id": "Patient.identifier:a.system", "path": "Patient.identifier.system", "fixedUri": "urn:a"},
    {"id": "Patient.identifier:b", "path": "Patient.identifier", "sliceName": "b", "max": "2"},
    {"id": "Patient.identifier:b.system", "path": "Patient.identifier.system", "fixedUri": "urn:b"},
]
CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any], Expected]] = [
    # cardinality
    ("min narrowed, present", [{"path": "Patient.name", "min": 1}], {**PATIENT, "name": [{"family": "x"}]}, set()),
    ("min narrowed, absent", [{"path": "Patient.name", "min": 1}], PATIENT, {err("required", "Patient.name")}),
    ("max narrowed", [{"path": "Patient.name", "max": "1"}], {**PATIENT, "name": [{"text": "a"}, {"text": "b"}]},
     {err("structure", "Patient.name")}),
    ("max 0 forbids", [{"path": "Patient.photo", "max": "0"}], {**PATIENT, "photo": [{"title": "x"}]},
     {err("structure", "Patient.photo")}),
    ("nested min inside a type", [{"path": "Patient.identifier.system", "min": 1}],
     {**PATIENT, "identifier": [{"system": "urn:x"}, {"value": "1"}]},
     {err("required", "Patient.identifier[1].system")}),
    # types and choices
    ("choice restricted, allowed type", [{"path": "Observation.value[x]", "type": [{"code": "Quantity"}]}],
     {**OBS, "valueQuantity": {"value": 1}}, set()),
    ("choice restricted, other type", [{"path": "Observation.value[x]", "type": [{"code": "Quantity"}]}],
     {**OBS, "valueString": "x"}, {err("structure", "Observation.valueString")}),
    ("type profile on a data type", [{"path": "Observation.value[x]", "type": [
        {"code": "Quantity", "profile": [CORE + "SimpleQuantity"]}]}],
     {**OBS, "valueQuantity": {"value": 1, "comparator": "<"}},
     {err("structure", "Observation.valueQuantity.comparator"), err("invariant", "Observation.valueQuantity")}),
    # fixed and pattern
    ("fixed primitive", [{"path": "Patient.gender", "fixedCode": "female"}], {**PATIENT, "gender": "male"},
     {err("value", "Patient.gender")}),
    ("fixed complex must match exactly", [{"path": "Patient.maritalStatus", "fixedCodeableConcept": {"text": "M"}}],
     {**PATIENT, "maritalStatus": {"text": "M", "coding": [{"code": "M"}]}}, {err("value", "Patient.maritalStatus")}),
    ("pattern is a partial match", [{"path": "Observation.code", "patternCodeableConcept": {
        "coding": [{"system": "http://loinc.org", "code": "1-1"}]}}],
     {**OBS, "code": {"coding": [{"system": "urn:other", "code": "z"}, {"system": "http://loinc.org", "code": "1-1",
                                                                        "display": "d"}], "text": "t"}}, set()),
    ("pattern mismatch", [{"path": "Observation.code", "patternCodeableConcept": {
        "coding": [{"system": "http://loinc.org", "code": "1-1"}]}}],
     {**OBS, "code": {"coding": [{"system": "http://loinc.org", "code": "2-2"}]}}, {err("value", "Observation.code")}),
    # value limits
    ("maxLength", [{"path": "Patient.name.family", "maxLength": 3}], {**PATIENT, "name": [{"family": "abcd"}]},
     {err("value", "Patient.name[0].family")}),
    ("minValue integer", [{"path": "Patient.multipleBirth[x]", "minValueInteger": 1}],
     {**PATIENT, "multipleBirthInteger": 0}, {err("value", "Patient.multipleBirthInteger")}),
    ("maxValue quantity with unit conversion", [{"path": "Observation.valueQuantity", "maxValueQuantity": {
        "value": 1, "system": "http://unitsofmeasure.org", "code": "kg"}}],
     {**OBS, "valueQuantity": {"value": 1500, "system": "http://unitsofmeasure.org", "code": "g"}},
     {err("value", "Observation.valueQuantity")}),
    ("maxValue quantity within limit", [{"path": "Observation.valueQuantity", "maxValueQuantity": {
        "value": 1, "system": "http://unitsofmeasure.org", "code": "kg"}}],
     {**OBS, "valueQuantity": {"value": 900, "system": "http://unitsofmeasure.org", "code": "g"}}, set()),
    ("minValue date", [{"path": "Patient.birthDate", "minValueDate": "1900-01-01"}],
     {**PATIENT, "birthDate": "1899-12-31"}, {err("value", "Patient.birthDate")}),
    # bindings
    ("required binding met", [{"path": "Observation.code", "binding": {
        "strength": "required", "valueSet": "http://example.org/vs/colors"}}],
     {**OBS, "code": {"coding": [{"system": "urn:x", "code": "no"}, {"system": "http://example.org/cs",
                                                                     "code": "red"}]}}, set()),
    ("required binding not met", [{"path": "Observation.code", "binding": {
        "strength": "required", "valueSet": "http://example.org/vs/colors"}}],
     {**OBS, "code": {"coding": [{"system": "http://example.org/cs", "code": "green"}]}},
     {err("code-invalid", "Observation.code")}),
    ("required binding without a code", [{"path": "Observation.code", "binding": {
        "strength": "required", "valueSet": "http://example.org/vs/colors"}}], OBS,
     {err("code-invalid", "Observation.code")}),
    ("extensible binding not met", [{"path": "Observation.code", "binding": {
        "strength": "extensible", "valueSet": "http://example.org/vs/colors"}}],
     {**OBS, "code": {"coding": [{"system": "http://example.org/cs", "code": "green"}]}},
     {warn("code-invalid", "Observation.code")}),
    ("preferred binding ignored", [{"path": "Observation.code", "binding": {
        "strength": "preferred", "valueSet": "http://example.org/vs/colors"}}],
     {**OBS, "code": {"coding": [{"system": "http://example.org/cs", "code": "green"}]}}, set()),
    ("unknown value set cannot tell", [{"path": "Observation.code", "binding": {
        "strength": "required", "valueSet": "http://example.org/vs/unknown"}}],
     {**OBS, "code": {"coding": [{"system": "http://example.org/cs", "code": "green"}]}}, set()),
    # invariants
    ("profile invariant violated", [{"path": "Patient.name", "constraint": [
        {"key": "t-1", "severity": "error", "human": "family or text",
         "expression": "family.exists() or text.exists()"}]}],
     {**PATIENT, "name": [{"given": ["a"]}]}, {err("invariant", "Patient.name[0]")}),
    ("profile invariant with warning severity", [{"path": "Patient", "constraint": [
        {"key": "t-2", "severity": "warning", "human": "active", "expression": "active.exists()"}]}],
     PATIENT, {warn("invariant", "Patient")}),
    ("invariant on a primitive", [{"path": "Patient.identifier.value", "constraint": [
        {"key": "t-3", "severity": "error", "human": "digits", "expression": "matches('^[0-9]+$')"}]}],
     {**PATIENT, "identifier": [{"value": "12a"}, {"value": "12"}]}, {err("invariant", "Patient.identifier[0].value")}),
    # slicing
    ("slices matched", SLICED_IDENTIFIER,
     {**PATIENT, "identifier": [{"system": "urn:a", "value": "1"}, {"system": "urn:b", "value": "2"}]}, set()),
    ("required slice missing", SLICED_IDENTIFIER, {**PATIENT, "identifier": [{"system": "urn:b"}]},
     {err("required", "Patient.identifier")}),
    ("closed slicing rejects others", SLICED_IDENTIFIER,
     {**PATIENT, "identifier": [{"system": "urn:a"}, {"system": "urn:c"}]},
     {err("structure", "Patient.identifier[1]")}),
    ("slice max", SLICED_IDENTIFIER,
     {**PATIENT, "identifier": [{"system": "urn:a"}, {"system": "urn:b"}, {"system": "urn:b"}, {"system": "urn:b"}]},
     {err("structure", "Patient.identifier")}),
    ("ordered slicing", SLICED_IDENTIFIER, {**PATIENT, "identifier": [{"system": "urn:b"}, {"system": "urn:a"}]},
     {err("structure", "Patient.identifier[1]")}),
    ("pattern discriminator", [
        {"path": "Observation.category", "slicing": {"discriminator": [{"type": "pattern", "path": "$this"}],
                                                     "rules": "open"}},
        {"id": "Observation.category:vs", "path": "Observation.category", "sliceName": "vs", "min": 1,
         "patternCodeableConcept": {"coding": [{"code": "vital-signs"}]}}],
     {**OBS, "category": [{"coding": [{"code": "other"}]}]}, {err("required", "Observation.category")}),
    ("type discriminator on a choice", [
        {"path": "Observation.value[x]", "slicing": {"discriminator": [{"type": "type", "path": "$this"}],
                                                     "rules": "closed"}},
        {"id": "Observation.value[x]:valueQuantity", "path": "Observation.value[x]", "sliceName": "valueQuantity",
         "type": [{"code": "Quantity"}]}],
     {**OBS, "valueString": "x"}, {err("structure", "Observation.valueString")}),
    ("exists discriminator", [
        {"path": "Observation.component", "slicing": {"discriminator": [{"type": "exists", "path": "value"}],
                                                      "rules": "closed"}},
        {"id": "Observation.component:valued", "path": "Observation.component", "sliceName": "valued",
         "min": 1},
        {"id": "Observation.component:valued.value[x]", "path": "Observation.component.value[x]", "min": 1}],
     {**OBS, "component": [{"code": {"text": "a"}}]}, {err("required", "Observation.component"),
                                                       err("structure", "Observation.component[0]")}),
    ("openAtEnd", [
        {"path": "Patient.identifier", "slicing": {"discriminator": [{"type": "value", "path": "system"}],
                                                   "rules": "openAtEnd"}},
        {"id": "Patient.identifier:a", "path": "Patient.identifier", "sliceName": "a"},
        {"id": "Patient.identifier:a.system", "path": "Patient.identifier.system", "fixedUri": "urn:a"}],
     {**PATIENT, "identifier": [{"system": "urn:z"}, {"system": "urn:a"}]},
     {err("structure", "Patient.identifier[1]")}),
    ("re-slicing", [
        {"path": "Patient.identifier", "slicing": {"discriminator": [{"type": "value", "path": "system"}],
                                                   "rules": "open"}},
        {"id": "Patient.identifier:a", "path": "Patient.identifier", "sliceName": "a",
         "slicing": {"discriminator": [{"type": "value", "path": "use"}], "rules": "closed"}},
        {"id": "Patient.identifier:a.system", "path": "Patient.identifier.system", "fixedUri": "urn:a"},
        {"id": "Patient.identifier:a/official", "path": "Patient.identifier", "sliceName": "a/official"},
        {"id": "Patient.identifier:a/official.use", "path": "Patient.identifier.use", "fixedCode": "official"}],
     {**PATIENT, "identifier": [{"system": "urn:a", "use": "official"}, {"system": "urn:a", "use": "temp"}]},
     {err("structure", "Patient.identifier[1]")}),
    ("profile discriminator on Bundle entries", [
        {"path": "Bundle.entry", "slicing": {"discriminator": [{"type": "profile", "path": "resource"}],
                                             "rules": "open"}},
        {"id": "Bundle.entry:named", "path": "Bundle.entry", "sliceName": "named", "min": 1},
        {"id": "Bundle.entry:named.resource", "path": "Bundle.entry.resource",
         "type": [{"code": "Patient", "profile": [TARGET]}]}],
     {"resourceType": "Bundle", "type": "collection", "entry": [
         {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}}]}, {err("required", "Bundle.entry")}),
    # extensions
    ("sliced extension with its profile", [
        {"path": "Patient.extension", "slicing": {"discriminator": [{"type": "value", "path": "url"}],
                                                  "rules": "open"}},
        {"id": "Patient.extension:e", "path": "Patient.extension", "sliceName": "e", "min": 1,
         "type": [{"code": "Extension", "profile": [EXT]}]}],
     {**PATIENT, "extension": [{"url": EXT, "valueInteger": 1}]},
     {err("structure", "Patient.extension[0].valueInteger")}),
    ("required extension slice missing", [
        {"path": "Patient.extension", "slicing": {"discriminator": [{"type": "value", "path": "url"}],
                                                  "rules": "open"}},
        {"id": "Patient.extension:e", "path": "Patient.extension", "sliceName": "e", "min": 1,
         "type": [{"code": "Extension", "profile": [EXT]}]}], PATIENT, {err("required", "Patient.extension")}),
    # references
    ("target profile type", [{"path": "Observation.subject", "type": [
        {"code": "Reference", "targetProfile": [CORE + "Patient"]}]}],
     {**OBS, "subject": {"reference": "Group/1"}}, {err("structure", "Observation.subject.reference")}),
    ("target profile conformance of a contained target", [{"path": "Observation.subject", "type": [
        {"code": "Reference", "targetProfile": [TARGET]}]}],
     {**OBS, "contained": [{"resourceType": "Patient", "id": "p"}], "subject": {"reference": "#p"}},
     {err("structure", "Observation.subject.reference")}),
]


@pytest.mark.parametrize(("name", "elements", "resource", "expected"), CASES, ids=[c[0] for c in CASES])
def test_profile_rules(name: str, elements: list[dict[str, Any]], resource: dict[str, Any],
                      expected: Expected) -> None:
    assert issues_of(elements, resource) == expected


def test_explicit_profile_argument_without_a_claim() -> None:
    sd = structure("Patient", URL, [{"path": "Patient.name", "min": 1}])
    validator, _ = make_validator(sd)
    assert [i.expression for i in validator.validate(PATIENT, profiles=[URL]) if i.is_error] == ["Patient.name"]
    assert [i.code for i in validator.validate(PATIENT, profiles=["http://example.org/none"]) if i.is_error] == [
        "not-found"]


def test_a_claimed_unknown_profile_is_a_warning() -> None:
    validator, _ = make_validator()
    found = validator.validate({**PATIENT, "meta": {"profile": ["http://example.org/none"]}})
    assert [(i.severity, i.code) for i in found if i.severity != "information"] == [("warning", "not-found")]


def test_profiles_need_an_engine() -> None:
    with pytest.raises(ValueError, match="ProfileEngine"):
        Validator().validate(PATIENT, profiles=[URL])


EXTENSION_CASES: list[tuple[str, dict[str, Any], Expected]] = [
    ("known extension", {**PATIENT, "extension": [{"url": EXT, "valueString": "x"}]}, set()),
    ("known extension, wrong value type", {**PATIENT, "extension": [{"url": EXT, "valueBoolean": True}]},
     {err("structure", "Patient.extension[0].valueBoolean")}),
    ("known extension out of context", {**OBS, "extension": [{"url": EXT, "valueString": "x"}]},
     {err("extension", "Observation.extension[0]")}),
    ("complex extension",
     {**PATIENT, "extension": [{"url": COMPLEX_EXT, "extension": [{"url": "a", "valueInteger": 1}]}]},
     set()),
    ("complex extension missing its part", {**PATIENT, "extension": [
        {"url": COMPLEX_EXT, "extension": [{"url": "b", "valueInteger": 1}]}]},
     {err("required", "Patient.extension[0].extension"),
      err("extension", "Patient.extension[0].extension[0].url")}),  # 'b' is no part the definition names
    ("unknown extension", {**PATIENT, "extension": [{"url": "http://other.org/x", "valueString": "x"}]},
     {warn("extension", "Patient.extension[0]")}),
    ("unknown extension on a primitive", {**PATIENT, "birthDate": "2000", "_birthDate": {
        "extension": [{"url": "http://other.org/x", "valueString": "x"}]}},
     {warn("extension", "Patient.birthDate.extension[0]")}),
    ("unknown modifier extension",
     {**PATIENT, "modifierExtension": [{"url": "http://other.org/x", "valueString": "x"}]},
     {err("extension", "Patient.modifierExtension[0]")}),
    ("ext-1 value and extensions", {**PATIENT, "extension": [{"url": "http://example.org/x", "valueString": "x",
                                                              "extension": [{"url": "y", "valueString": "z"}]}]},
     {err("invariant", "Patient.extension[0]")}),
]


@pytest.mark.parametrize(("name", "resource", "expected"), EXTENSION_CASES, ids=[c[0] for c in EXTENSION_CASES])
def test_extensions_in_core_validation(name: str, resource: dict[str, Any], expected: Expected) -> None:
    validator, _ = make_validator()
    structural = {(i.severity, i.code, i.expression) for i in Validator().validate(resource)}
    found = {(i.severity, i.code, i.expression) for i in validator.validate(resource) if i.severity != "information"}
    assert found - structural == expected


def test_unknown_extension_severity_is_configurable() -> None:
    validator, _ = make_validator(unknown_extensions="error")
    patient = {**PATIENT, "extension": [{"url": "http://other.org/x", "valueString": "x"},
                                        {"url": "http://example.org/fhir/unknown", "valueString": "x"},
                                        {"url": "http://hl7.org/fhir/StructureDefinition/not-in-r4",
                                         "valueString": "x"}]}
    assert [i.severity for i in validator.validate(patient) if i.code == "extension"] == [
        "error", "information", "warning"]

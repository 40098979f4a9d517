"""The required-binding table of the structural stage (profiles.required): which elements it checks,
the codes it allows, and that it answers what the profile engine's terminology answers
(http://hl7.org/fhir/R4/terminologies.html#required)."""

from __future__ import annotations

from typing import Any

import pytest

from profiles.model import Node, core_model
from profiles.report import build_validator
from profiles.required import Bound, default_required_bindings, for_terminology
from profiles.validator import Validator, default_validator
from terminology import Terminology, default_terminology

GENDER = "http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1"


def node(path: str) -> Node:
    return Node(path.split(".", 1)[0], path)


def bound(path: str, key: str) -> Bound | None:
    return (default_required_bindings().of(node(path)) or {}).get(key)


@pytest.mark.parametrize(("path", "key", "value_set"), [
    ("Patient", "gender", GENDER),
    ("Patient.contact", "gender", GENDER),
    ("Observation", "status", "http://hl7.org/fhir/ValueSet/observation-status|4.0.1"),
    ("Bundle", "type", "http://hl7.org/fhir/ValueSet/bundle-type|4.0.1"),
    ("Narrative", "status", "http://hl7.org/fhir/ValueSet/narrative-status|4.0.1"),
    ("Identifier", "use", "http://hl7.org/fhir/ValueSet/identifier-use|4.0.1"),
    ("ContactPoint", "system", "http://hl7.org/fhir/ValueSet/contact-point-system|4.0.1"),
    ("HumanName", "use", "http://hl7.org/fhir/ValueSet/name-use|4.0.1"),
    ("Address", "use", "http://hl7.org/fhir/ValueSet/address-use|4.0.1"),
    ("Quantity", "comparator", "http://hl7.org/fhir/ValueSet/quantity-comparator|4.0.1"),
    ("Condition", "clinicalStatus", "http://hl7.org/fhir/ValueSet/condition-clinical|4.0.1"),
    ("Questionnaire.item", "type", "http://hl7.org/fhir/ValueSet/item-type|4.0.1"),
])
def test_required_enumerable_bindings_are_in_the_table(path: str, key: str, value_set: str) -> None:
    found = bound(path, key)
    assert found is not None and found.value_set == value_set
    assert found.path == f"{path}.{key}"


def test_allowed_codes_are_the_value_set() -> None:
    gender = bound("Patient", "gender")
    assert gender is not None and gender.type == "code"
    assert gender.bare == {"male", "female", "other", "unknown"}
    assert ("http://hl7.org/fhir/administrative-gender", "male") in gender.pairs
    status = bound("Condition", "clinicalStatus")
    assert status is not None and status.type == "CodeableConcept"
    assert ("http://terminology.hl7.org/CodeSystem/condition-clinical", "active") in status.pairs


@pytest.mark.parametrize(("path", "key", "why"), [
    ("Attachment", "contentType", "required to mimetypes, which cannot be listed"),
    ("Money", "currency", "required to currencies, which this server carries only in part"),
    ("Reference", "type", "extensible"),
    ("Patient", "language", "preferred"),
    ("Coding", "code", "no binding"),
    ("Quantity", "code", "no binding in the core type (UCUM is a profile's pattern)"),
    ("Observation", "category", "preferred"),
    ("Patient", "maritalStatus", "extensible"),
])
def test_bindings_that_cannot_be_checked_by_a_set_are_left_out(path: str, key: str, why: str) -> None:
    assert bound(path, key) is None, why


def test_nodes_without_bindings_have_no_table() -> None:
    assert default_required_bindings().of(node("Period")) is None


def test_sites_lists_paths_through_types_and_backbones() -> None:
    paths = {p for p, _ in default_required_bindings().sites("Patient")}
    assert {"Patient.gender", "Patient.contact.gender", "Patient.name.use", "Patient.telecom.system",
            "Patient.identifier.use", "Patient.text.status"} <= paths


@pytest.mark.parametrize(("value", "ok"), [
    ("male", True), ("robot", False), ("", False), ("Male", False),
])
def test_code_check(value: str, ok: bool) -> None:
    gender = bound("Patient", "gender")
    assert gender is not None
    issue = gender.check(value, "Patient.gender")
    assert (issue is None) is ok
    if issue is not None:
        assert (issue.severity, issue.code, issue.expression) == ("error", "code-invalid", "Patient.gender")
        assert GENDER in issue.message and repr(value) in issue.message


CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


@pytest.mark.parametrize(("value", "ok"), [
    ({"coding": [{"system": CLINICAL, "code": "active"}]}, True),
    ({"coding": [{"system": "http://example.org", "code": "x"}, {"system": CLINICAL, "code": "resolved"}]}, True),
    ({"coding": [{"code": "active"}]}, True),  # no system: the code alone is looked up
    ({"coding": [{"system": CLINICAL, "code": "bogus"}]}, False),
    ({"coding": [{"system": "http://example.org", "code": "active"}]}, False),  # wrong system
    ({"text": "active"}, False),  # a required binding needs a code, not only text
    ({"coding": [{"system": ["not", "a", "string"], "code": "active"}]}, False),  # malformed: never a crash
])
def test_codeable_concept_check(value: dict[str, Any], ok: bool) -> None:
    status = bound("Condition", "clinicalStatus")
    assert status is not None
    assert (status.check(value, "Condition.clinicalStatus") is None) is ok


def test_table_agrees_with_the_terminology_the_engine_asks() -> None:
    """Every listed code is one the terminology accepts, and a code outside the list is refused by both."""
    terminology = default_terminology()
    table = default_required_bindings()
    seen: set[str] = set()
    for type_name in sorted(core_model().definitions.resource_types):
        for _, found in table.sites(type_name, depth=1):
            if found.value_set in seen:
                continue
            seen.add(found.value_set)
            for system, code in found.pairs:
                assert terminology.check(found.value_set, system, code).result is True, (found, code)
            for code in found.bare:
                assert terminology.check(found.value_set, None, code).result is True, (found, code)
            assert terminology.check(found.value_set, None, "no-such-code-x").result is False
    assert len(seen) > 100


def test_a_changed_value_set_is_used_for_the_next_resource() -> None:
    terminology = Terminology()
    validator = Validator(bindings=for_terminology(terminology))
    robot = {"resourceType": "Patient", "gender": "robot"}
    assert [i.code for i in validator.validate(robot)] == ["code-invalid"]
    terminology.add({"resourceType": "ValueSet", "url": "http://hl7.org/fhir/ValueSet/administrative-gender",
                     "version": "4.0.1", "status": "active",
                     "compose": {"include": [{"system": "http://example.org/gender",
                                              "concept": [{"code": "robot"}]}]}})
    assert validator.validate(robot) == []


def test_structural_and_full_validation_report_the_binding_once_and_alike() -> None:
    resource = {"resourceType": "Patient", "gender": "robot", "name": [{"use": "nick-name"}],
                "contact": [{"gender": "x"}], "contained": [{"resourceType": "Observation", "id": "o",
                                                             "status": "bogus", "code": {"text": "x"}}]}
    structural = [i for i in default_validator().validate(resource) if i.code == "code-invalid"]
    full = [i for i in build_validator().validate(resource) if i.code == "code-invalid"]
    assert structural == full
    assert [i.expression for i in structural] == ["Patient.gender", "Patient.name[0].use", "Patient.contact[0].gender",
                                                  "Patient.contained[0].status"]


def test_a_validator_without_a_table_does_not_check_bindings() -> None:
    assert default_validator().with_bindings(None).validate({"resourceType": "Patient", "gender": "robot"}) == []

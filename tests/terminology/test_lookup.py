"""CodeSystem/$lookup and $subsumes, and the :below/:above helpers.

http://hl7.org/fhir/R4/codesystem-operation-lookup.html
http://hl7.org/fhir/R4/codesystem-operation-subsumes.html
"""

from __future__ import annotations

import pytest

from terminology import cn
from terminology.errors import InvalidRequest, UnknownCode, UnknownSystem
from terminology.service import Terminology
from tests.terminology.parameters_util import param, params, parts

GENDER = "http://hl7.org/fhir/administrative-gender"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"


@pytest.mark.parametrize(("system", "code", "display"), [
    (GENDER, "female", "Female"),
    (CLINICAL, "relapse", "Relapse"),
    (ACT, "AMB", "ambulatory"),
    (OBS_CAT, "vital-signs", "Vital Signs"),
    (cn.SEX, "1", "男"),
    (cn.MARITAL_STATUS, "22", "再婚"),
    (cn.PATIENT_TYPE, "3", "住院"),
    (cn.ICD10, "E11.9", "2型糖尿病不伴有并发症"),
    (cn.FOLLOWUP_EVALUATION, "1", "控制满意"),
])
def test_lookup_display(term: Terminology, system: str, code: str, display: str) -> None:
    out = term.lookup(system, code)
    assert out["resourceType"] == "Parameters"
    assert param(out, "display") == display
    assert param(out, "name")


def _properties(out: dict) -> list[tuple[str, object]]:
    return [(p["code"], p["value"]) for p in map(parts, params(out, "property"))]


@pytest.mark.parametrize(("system", "code", "expected"), [
    (CLINICAL, "active", {("child", "recurrence"), ("child", "relapse"), ("inactive", False)}),
    (CLINICAL, "relapse", {("parent", "active")}),
    (cn.MARITAL_STATUS, "21", {("parent", "20")}),
    (cn.ICD10, "I10", {("parent", "I10-I15"), ("kind", "category")}),
    (cn.ICD10, "I10-I15", {("parent", "I00-I99"), ("child", "I15"), ("notSelectable", True)}),
    # v3 poly-hierarchy: COVMX names children through the child property, outside its nesting
    (ACT, "COVMX", {("child", "LFEMX"), ("child", "PRDMX")}),
])
def test_lookup_hierarchy_and_properties(term: Terminology, system: str, code: str, expected: set) -> None:
    assert expected <= set(_properties(term.lookup(system, code)))


def test_lookup_designations_carry_english(term: Terminology) -> None:
    out = term.lookup(cn.SEX, "2")
    designations = [parts(d) for d in params(out, "designation")]
    assert {"language": "en", "value": "Female"} in designations
    assert any(d.get("value") == "女性" for d in designations)


def test_lookup_outside_a_partial_code_system_says_so(term: Terminology) -> None:
    with pytest.raises(UnknownCode, match="partial copy"):
        term.lookup(cn.ICD10, "K35.8")


def test_lookup_property_selection(term: Terminology) -> None:
    out = term.lookup(CLINICAL, "active", properties=["parent"])
    assert _properties(out) == []
    assert params(out, "designation") == []
    out = term.lookup(CLINICAL, "active", properties=["child"])
    assert {c for c, _ in _properties(out)} == {"child"}


@pytest.mark.parametrize(("system", "code", "error"), [
    (GENDER, "man", UnknownCode),
    (cn.SEX, "3", UnknownCode),
    ("http://loinc.org", "8480-6", UnknownSystem),
    ("http://snomed.info/sct", "22298006", UnknownSystem),  # R4 ships SNOMED as content not-present
    ("", "x", InvalidRequest),
    (GENDER, None, InvalidRequest),
])
def test_lookup_errors(term: Terminology, system: str, code: str | None, error: type) -> None:
    with pytest.raises(error):
        term.lookup(system, code)


@pytest.mark.parametrize(("system", "a", "b", "outcome"), [
    (CLINICAL, "active", "active", "equivalent"),
    (CLINICAL, "active", "relapse", "subsumes"),
    (CLINICAL, "recurrence", "active", "subsumed-by"),
    (CLINICAL, "relapse", "inactive", "not-subsumed"),
    (CLINICAL, "remission", "recurrence", "not-subsumed"),
    (ACT, "_ActEncounterCode", "EMER", "subsumes"),
    (ACT, "COVMX", "LFEMX", "subsumes"),  # via the child property
    (cn.MARITAL_STATUS, "20", "23", "subsumes"),
    (cn.MARITAL_STATUS, "10", "20", "not-subsumed"),
    (cn.ICD10, "I00-I99", "I63.9", "subsumes"),
    (cn.ICD10, "E11.2", "E10-E14", "subsumed-by"),
    (cn.ICD10, "E11", "E10.2", "not-subsumed"),
])
def test_subsumes(term: Terminology, system: str, a: str, b: str, outcome: str) -> None:
    assert param(term.subsumes(system, a, b), "outcome") == outcome


def test_subsumes_with_codings(term: Terminology) -> None:
    out = term.subsumes(coding_a={"system": CLINICAL, "code": "inactive"},
                        coding_b={"system": CLINICAL, "code": "resolved"})
    assert param(out, "outcome") == "subsumes"
    with pytest.raises(InvalidRequest):
        term.subsumes(coding_a={"system": CLINICAL, "code": "inactive"}, coding_b={"system": GENDER, "code": "male"})


@pytest.mark.parametrize(("system", "a", "b", "error"), [
    (CLINICAL, "active", "nonsense", UnknownCode),
    ("http://loinc.org", "1-8", "2-6", UnknownSystem),
    (None, "a", "b", InvalidRequest),
])
def test_subsumes_errors(term: Terminology, system: str | None, a: str, b: str, error: type) -> None:
    with pytest.raises(error):
        term.subsumes(system, a, b)


@pytest.mark.parametrize(("system", "code", "below", "above"), [
    (CLINICAL, "inactive", {"remission", "resolved"}, set()),
    (CLINICAL, "resolved", set(), {"inactive"}),
    (cn.MARITAL_STATUS, "20", {"21", "22", "23"}, set()),
    (cn.ICD10, "I10-I15", {"I10", "I11", "I11.0", "I11.9", "I12", "I12.0", "I12.9", "I13", "I13.0", "I13.1",
                           "I13.2", "I13.9", "I15", "I15.0", "I15.1", "I15.2", "I15.8", "I15.9"}, {"I00-I99"}),
    (GENDER, "male", set(), set()),  # a flat code system
    (CLINICAL, "not-a-code", set(), set()),
])
def test_descendants_and_ancestors(term: Terminology, system: str, code: str, below: set, above: set) -> None:
    assert term.descendants(system, code) == below
    assert term.ancestors(system, code) == above


def test_hierarchy_of_unknown_system_is_none(term: Terminology) -> None:
    assert term.descendants("http://loinc.org", "LP1") is None
    assert term.ancestors("http://snomed.info/sct", "22298006") is None


def test_display_helper(term: Terminology) -> None:
    assert term.display(cn.ABO_BLOOD_TYPE, "4") == "AB型"
    assert term.display(cn.ABO_BLOOD_TYPE, "7") is None
    assert term.display("http://loinc.org", "8480-6") is None

"""$validate-code on ValueSets and CodeSystems, and the validator's check() helper.

http://hl7.org/fhir/R4/valueset-operation-validate-code.html
http://hl7.org/fhir/R4/codesystem-operation-validate-code.html

Choices tested here (documented in terminology.membership): a wrong display is result=false with a
message in the operation, but CodeCheck.result=True with display_valid=False; a system we do not
carry answers unknown (no result parameter, CodeCheck.result None), never false.
"""

from __future__ import annotations

import pytest

from terminology import cn
from terminology.errors import InvalidRequest, UnknownResource
from terminology.service import Terminology
from tests.terminology.parameters_util import param

GENDER = "http://hl7.org/fhir/administrative-gender"
VS_GENDER = "http://hl7.org/fhir/ValueSet/administrative-gender"
VS_OBS_CODES = "http://hl7.org/fhir/ValueSet/observation-codes"  # all of LOINC
VS_CONDITION_CODE = "http://hl7.org/fhir/ValueSet/condition-code"  # SNOMED, published expansion is partial
VS_ENCOUNTER_CLASS = "http://terminology.hl7.org/ValueSet/v3-ActEncounterCode"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
VS_ITEM_TYPE = "http://hl7.org/fhir/ValueSet/item-type"
VS_UNITS_OF_TIME = "http://hl7.org/fhir/ValueSet/units-of-time"  # UCUM codes listed in the compose
UCUM = "http://unitsofmeasure.org"


@pytest.mark.parametrize(("vs", "system", "code", "result"), [
    (VS_GENDER, GENDER, "male", True),
    (VS_GENDER, GENDER, "man", False),
    (VS_GENDER, "http://example.org/other", "male", False),
    (VS_ENCOUNTER_CLASS, ACT, "AMB", True),
    (VS_ENCOUNTER_CLASS, ACT, "_ActEncounterCode", False),  # excluded by the compose
    (VS_ENCOUNTER_CLASS, ACT, "CASH", False),  # in the code system, not under the is-a root
    (VS_ITEM_TYPE, "http://hl7.org/fhir/item-type", "question", False),  # abstract (notSelectable)
    (VS_ITEM_TYPE, "http://hl7.org/fhir/item-type", "string", True),
    (VS_UNITS_OF_TIME, UCUM, "min", True),  # enumerated: known without carrying UCUM
    (VS_UNITS_OF_TIME, UCUM, "mg", False),
    (VS_OBS_CODES, "http://loinc.org", "8480-6", None),  # LOINC is not carried
    (VS_OBS_CODES, "http://snomed.info/sct", "8480-6", False),  # the value set is LOINC only
    (VS_CONDITION_CODE, "http://snomed.info/sct", "109006", True),  # in the published expansion
    (VS_CONDITION_CODE, "http://snomed.info/sct", "44054006", None),  # maybe in, expansion is partial
    (cn.VS_SEX, cn.SEX, "9", True),
    (cn.VS_SEX, cn.SEX, "3", False),
    (cn.VS_SEX, GENDER, "male", False),
    (cn.VS_MARITAL_STATUS, cn.MARITAL_STATUS, "23", True),
    (cn.VS_ETHNIC_GROUP, cn.ETHNIC_GROUP, "56", True),
    (cn.VS_ETHNIC_GROUP, cn.ETHNIC_GROUP, "57", False),
    (cn.VS_ICD10, cn.ICD10, "C34.1", True),
    (cn.VS_ICD10, cn.ICD10, "C15-C26", False),  # a block, defined but left out by the kind filter
    (cn.VS_ICD10, cn.ICD10, "K35.8", None),  # real ICD-10, outside the subset we carry
    (cn.VS_ICD10, cn.ICD10, "I10.x00", None),  # 国家临床版 extension code
    ("http://example.org/ValueSet/unknown", GENDER, "male", None),
])
def test_check(term: Terminology, vs: str, system: str, code: str, result: bool | None) -> None:
    check = term.check(vs, system, code)
    assert check.result is result, check.message
    assert (check.message == "") is (result is True)


@pytest.mark.parametrize(("display", "valid"), [
    ("男", True),
    ("男性", True),  # a Chinese synonym designation
    ("Male", True),  # the English designation
    (" male ", True),  # case and surrounding space are not significant
    ("女", False),
])
def test_check_display(term: Terminology, display: str, valid: bool) -> None:
    check = term.check(cn.VS_SEX, cn.SEX, "1", display)
    assert check.result is True
    assert check.display_valid is valid
    assert check.display == "男"
    assert (check.message == "") is valid


def test_check_bare_code_without_system(term: Terminology) -> None:
    assert term.check(VS_GENDER, None, "female").result is True
    assert term.check(VS_GENDER, None, "woman").result is False
    assert term.check(VS_OBS_CODES, None, "8480-6").result is None


def test_check_inactive_and_deprecated_pass_with_message(term: Terminology) -> None:
    retired = term.check("http://terminology.hl7.org/ValueSet/v3-ActCode", ACT, "STORE")
    assert retired.result is True and "inactive" in retired.message
    deprecated = term.check("http://hl7.org/fhir/ValueSet/observation-interpretation",
                            "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "TOX")
    assert deprecated.result is True and "deprecated" in deprecated.message


def test_check_hit_is_cached(term: Terminology) -> None:
    first = term.check(VS_GENDER, GENDER, "male")
    assert term.check(VS_GENDER, GENDER, "male") is first


@pytest.mark.parametrize(("kwargs", "result"), [
    ({"url": VS_GENDER, "system": GENDER, "code": "other"}, True),
    ({"url": VS_GENDER, "system": GENDER, "code": "other", "display": "Other"}, True),
    ({"url": VS_GENDER, "system": GENDER, "code": "other", "display": "Others"}, False),
    ({"url": VS_GENDER, "system": GENDER, "code": "x"}, False),
    ({"url": VS_GENDER, "coding": {"system": GENDER, "code": "female"}}, True),
    ({"url": VS_OBS_CODES, "coding": {"system": "http://loinc.org", "code": "8480-6"}}, None),
    ({"url": cn.VS_PATIENT_TYPE, "codeable_concept": {"coding": [
        {"system": "http://local", "code": "MZ"}, {"system": cn.PATIENT_TYPE, "code": "1"}]}}, True),
    ({"url": cn.VS_PATIENT_TYPE, "codeable_concept": {"coding": [
        {"system": "http://local", "code": "MZ"}, {"system": cn.PATIENT_TYPE, "code": "7"}]}}, False),
    ({"url": VS_OBS_CODES, "codeable_concept": {"coding": [
        {"system": "http://snomed.info/sct", "code": "1"}, {"system": "http://loinc.org", "code": "8480-6"}]}}, None),
    # CodeSystem/$validate-code: by url, by kind, by system alone
    ({"url": GENDER, "code": "unknown"}, True),
    ({"url": cn.ICD10, "code": "N18.3", "kind": "CodeSystem"}, True),
    ({"url": cn.ICD10, "code": "N18.7", "kind": "CodeSystem"}, None),  # fragment: cannot rule out
    ({"system": GENDER, "code": "nope"}, False),
    ({"system": "http://loinc.org", "code": "8480-6"}, None),
    ({"system": "http://unitsofmeasure.org", "code": "mm[Hg]"}, None),
    ({"system": cn.ABO_BLOOD_TYPE, "code": "3", "display": "O型"}, True),
    ({"system": cn.ABO_BLOOD_TYPE, "code": "3", "display": "A型"}, False),
])
def test_validate_code(term: Terminology, kwargs: dict, result: bool | None) -> None:
    out = term.validate_code(**kwargs)
    assert out["resourceType"] == "Parameters"
    assert param(out, "result") is result
    if result is not True:
        assert param(out, "message")


def test_validate_code_returns_display(term: Terminology) -> None:
    out = term.validate_code(url=cn.VS_RH_BLOOD_TYPE, system=cn.RH_BLOOD_TYPE, code="2")
    assert param(out, "display") == "阳性"


def test_validate_code_inline_resources(term: Terminology) -> None:
    valueset = {"resourceType": "ValueSet", "url": "http://example.org/vs/inline", "compose": {"include": [
        {"system": GENDER, "concept": [{"code": "male"}, {"code": "female"}]}]}}
    assert param(term.validate_code(valueset=valueset, system=GENDER, code="female"), "result") is True
    assert param(term.validate_code(valueset=valueset, system=GENDER, code="other"), "result") is False
    codesystem = {"resourceType": "CodeSystem", "url": "http://example.org/cs", "content": "complete",
                  "concept": [{"code": "a", "display": "A"}]}
    assert param(term.validate_code(codesystem=codesystem, code="a"), "result") is True
    assert param(term.validate_code(codesystem=codesystem, code="b"), "result") is False


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"url": VS_GENDER}, InvalidRequest),
    ({"url": "http://example.org/ValueSet/none", "system": GENDER, "code": "male"}, UnknownResource),
    ({"code": "male"}, InvalidRequest),
    ({"url": "http://example.org/ValueSet/none", "code": "male", "kind": "ValueSet"}, UnknownResource),
])
def test_validate_code_errors(term: Terminology, kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        term.validate_code(**kwargs)

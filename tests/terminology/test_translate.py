"""ConceptMap/$translate forward and reverse, on R4 maps and the Chinese maps to FHIR codes.

http://hl7.org/fhir/R4/conceptmap-operation-translate.html
"""

from __future__ import annotations

import pytest

from terminology import cn
from terminology.errors import InvalidRequest, UnknownResource
from terminology.service import Terminology
from tests.terminology.parameters_util import param, params, parts

GENDER = "http://hl7.org/fhir/administrative-gender"
V3_GENDER = "http://terminology.hl7.org/CodeSystem/v3-AdministrativeGender"
V3_MARITAL = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def matches(out: dict) -> list[tuple[str, str | None, str | None]]:
    found = []
    for entry in params(out, "match"):
        p = parts(entry)
        concept = p.get("concept") or {}
        found.append((p["equivalence"], concept.get("system"), concept.get("code")))
    return found


@pytest.mark.parametrize(("system", "code", "target_system", "expected"), [
    (cn.SEX, "1", None, [("equivalent", GENDER, "male")]),
    (cn.SEX, "2", GENDER, [("equivalent", GENDER, "female")]),
    (cn.SEX, "0", None, [("equivalent", GENDER, "unknown")]),
    (cn.SEX, "9", None, [("wider", GENDER, "unknown")]),  # not stated is not "other"
    (cn.MARITAL_STATUS, "10", None, [("equivalent", V3_MARITAL, "S")]),
    (cn.MARITAL_STATUS, "22", None, [("wider", V3_MARITAL, "M")]),
    (cn.MARITAL_STATUS, "90", None, [("wider", NULL_FLAVOR, "UNK")]),
    (cn.PATIENT_TYPE, "2", None, [("equivalent", ACT, "EMER")]),
    (cn.PATIENT_TYPE, "9", None, [("inexact", ACT, "AMB")]),
    (cn.ID_DOCUMENT_TYPE, "03", None, [("equivalent", "http://terminology.hl7.org/CodeSystem/v2-0203", "PPN")]),
    (cn.EXAM_RESULT, "2", None, [("equivalent", "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                  "A")]),
    (GENDER, "female", V3_GENDER, [("equal", V3_GENDER, "F")]),
])
def test_forward(term: Terminology, system: str, code: str, target_system: str | None, expected: list) -> None:
    out = term.translate(system=system, code=code, target_system=target_system)
    assert param(out, "result") is True
    assert matches(out) == expected
    assert all(parts(m)["source"].startswith("http") for m in params(out, "match"))


@pytest.mark.parametrize(("system", "code", "result", "expected"), [
    (cn.ID_DOCUMENT_TYPE, "02", False, [("unmatched", None, None)]),  # mapped explicitly to nothing
    (cn.SEX, "5", False, []),  # not in the map at all
    ("http://loinc.org", "8480-6", False, []),  # no map from this system
])
def test_forward_without_match(term: Terminology, system: str, code: str, result: bool, expected: list) -> None:
    out = term.translate(system=system, code=code)
    assert param(out, "result") is result
    assert matches(out) == expected
    assert "No mapping" in param(out, "message")


def test_reverse_turns_equivalence_around(term: Terminology) -> None:
    out = term.translate(system=GENDER, code="unknown", target_system=cn.SEX, reverse=True)
    assert matches(out) == [("equivalent", cn.SEX, "0"), ("narrower", cn.SEX, "9")]
    married = term.translate(system=V3_MARITAL, code="M", reverse=True)
    assert [m[2] for m in matches(married)] == ["20", "21", "22", "23"]


def test_reverse_across_maps(term: Terminology) -> None:
    out = term.translate(system=ACT, code="EMER", reverse=True)
    assert ("equivalent", cn.PATIENT_TYPE, "2") in matches(out)


def test_translate_with_a_named_map_and_scopes(term: Terminology) -> None:
    out = term.translate(url=cn.CM_SEX_TO_GENDER, system=cn.SEX, code="1")
    assert matches(out) == [("equivalent", GENDER, "male")]
    scoped = term.translate(system=cn.SEX, code="1", source=cn.VS_SEX,
                            target="http://hl7.org/fhir/ValueSet/administrative-gender")
    assert matches(scoped) == [("equivalent", GENDER, "male")]
    assert matches(term.translate(system=cn.SEX, code="1", target="http://example.org/vs")) == []
    coded = term.translate(coding={"system": cn.SEX, "code": "2"})
    assert matches(coded) == [("equivalent", GENDER, "female")]


def test_unmapped_modes(term: Terminology) -> None:
    cm = {"resourceType": "ConceptMap", "url": "http://example.org/cm", "group": [
        {"source": "http://a", "target": "http://b", "element": [{"code": "x", "target": [
            {"code": "y", "equivalence": "equivalent"}]}], "unmapped": {"mode": "provided"}},
        {"source": "http://a", "target": "http://c", "element": [], "unmapped": {"mode": "fixed", "code": "z"}},
    ]}
    out = term.translate(conceptmap=cm, system="http://a", code="q")
    assert matches(out) == [("equal", "http://b", "q"), ("equivalent", "http://c", "z")]
    assert matches(term.translate(conceptmap=cm, system="http://a", code="x", target_system="http://b")) == [
        ("equivalent", "http://b", "y")]


def test_other_map(term: Terminology) -> None:
    term.add({"resourceType": "ConceptMap", "url": "http://example.org/first", "group": [
        {"source": cn.SEX, "target": GENDER, "element": [], "unmapped": {"mode": "other-map",
                                                                        "url": cn.CM_SEX_TO_GENDER}}]})
    out = term.translate(url="http://example.org/first", system=cn.SEX, code="2")
    assert matches(out) == [("equivalent", GENDER, "female")]


def test_translate_errors(term: Terminology) -> None:
    with pytest.raises(UnknownResource):
        term.translate(url="http://example.org/none", system=cn.SEX, code="1")
    with pytest.raises(InvalidRequest):
        term.translate(system=cn.SEX)

"""ValueSet/$expand: compose rules, every R4 filter operator, imports, paging, activeOnly, text filter.

http://hl7.org/fhir/R4/valueset-operation-expand.html
http://hl7.org/fhir/R4/valueset.html#compositions
http://hl7.org/fhir/R4/valueset-filter-operator.html
"""

from __future__ import annotations

from typing import Any

import pytest

from terminology import cn, expansion
from terminology.compose import UNCLOSED
from terminology.errors import InvalidRequest, NotSupported, TooCostly, UnknownResource
from terminology.service import Terminology

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def inline(*include: dict[str, Any], exclude: tuple[dict[str, Any], ...] = (), **compose: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"include": list(include), **compose}
    if exclude:
        body["exclude"] = list(exclude)
    return {"resourceType": "ValueSet", "url": "http://example.org/ValueSet/test", "status": "active", "compose": body}


def codes(vs: dict[str, Any]) -> list[str]:
    return [c["code"] for c in vs["expansion"].get("contains", [])]


def flt(prop: str, op: str, value: str) -> dict[str, str]:
    return {"property": prop, "op": op, "value": value}


@pytest.mark.parametrize(("system", "filters", "expected"), [
    (CLINICAL, [flt("concept", "is-a", "active")], ["active", "recurrence", "relapse"]),
    (CLINICAL, [flt("concept", "descendent-of", "active")], ["recurrence", "relapse"]),
    (CLINICAL, [flt("concept", "is-not-a", "active")], ["inactive", "remission", "resolved"]),
    (CLINICAL, [flt("concept", "generalizes", "relapse")], ["active", "relapse"]),
    (CLINICAL, [flt("concept", "=", "remission")], ["remission"]),
    (CLINICAL, [flt("concept", "is-a", "nonexistent")], []),
    (cn.MARITAL_STATUS, [flt("parent", "=", "20")], ["21", "22", "23"]),
    (cn.MARITAL_STATUS, [flt("code", "regex", "[1-4]0")], ["10", "20", "30", "40"]),
    (cn.MARITAL_STATUS, [flt("display", "regex", ".*婚")], ["10", "20", "21", "22", "23", "40"]),
    (cn.MARITAL_STATUS, [flt("code", "in", "10, 30,99")], ["10", "30"]),
    (cn.MARITAL_STATUS, [flt("code", "not-in", "10,20,21,22,23")], ["30", "40", "90"]),
    (cn.ICD10, [flt("kind", "=", "chapter")], ["C00-D48", "E00-E90", "I00-I99", "J00-J99", "N00-N99"]),
    (cn.ICD10, [flt("kind", "in", "chapter,block"), flt("concept", "is-a", "C00-D48")],
     ["C00-D48", "C15-C26", "C30-C39", "C50-C50", "C51-C58", "C60-C63", "C73-C75"]),
    (cn.ICD10, [flt("notSelectable", "exists", "true"), flt("concept", "is-a", "J00-J99")], ["J00-J99", "J40-J47"]),
    (cn.ICD10, [flt("notSelectable", "exists", "false"), flt("code", "regex", "I6[34]")], ["I63", "I64"]),
    (cn.ICD10, [flt("concept", "descendent-of", "J45")], ["J45.0", "J45.1", "J45.8", "J45.9"]),
    (ACT, [flt("concept", "is-a", "COVMX")], ["LFEMX", "PRDMX", "COVMX"]),  # v3 child property; CS order
])
def test_filters(term: Terminology, system: str, filters: list[dict[str, str]], expected: list[str]) -> None:
    assert codes(term.expand(valueset=inline({"system": system, "filter": filters}))) == expected


@pytest.mark.parametrize(("op", "value", "error"), [
    ("matches", "x", NotSupported),  # not an R4 operator
    ("regex", "([", NotSupported),  # a broken regex leaves the include unevaluable
    ("exists", "maybe", NotSupported),
])
def test_bad_filters_cannot_expand(term: Terminology, op: str, value: str, error: type) -> None:
    with pytest.raises(error):
        term.expand(valueset=inline({"system": CLINICAL, "filter": [flt("code", op, value)]}))


def test_include_exclude_and_concept_lists(term: Terminology) -> None:
    vs = inline({"system": cn.MARITAL_STATUS},
                {"system": "http://hl7.org/fhir/administrative-gender", "concept": [{"code": "male", "display": "男"}]},
                exclude=({"system": cn.MARITAL_STATUS, "filter": [flt("concept", "descendent-of", "20")]},
                         {"system": cn.MARITAL_STATUS, "concept": [{"code": "90"}]}))
    out = term.expand(valueset=vs)
    assert codes(out) == ["10", "20", "30", "40", "male"]
    assert out["expansion"]["contains"][-1]["display"] == "男"  # the value set's display wins
    assert out["expansion"]["total"] == 5
    assert "extension" not in out["expansion"]


def test_nested_value_sets_and_intersection(term: Terminology) -> None:
    no_unknown = {"system": cn.SEX, "concept": [{"code": "0"}]}
    union = inline({"valueSet": [cn.VS_SEX]}, {"valueSet": [cn.VS_PATIENT_TYPE]}, exclude=(no_unknown,))
    assert codes(term.expand(valueset=union)) == ["1", "2", "9", "1", "2", "3", "9"]
    both = inline({"system": cn.MARITAL_STATUS, "filter": [flt("concept", "is-a", "20")],
                   "valueSet": [cn.VS_MARITAL_STATUS]})
    assert codes(term.expand(valueset=both)) == ["20", "21", "22", "23"]
    disjoint = inline({"valueSet": [cn.VS_SEX, cn.VS_PATIENT_TYPE]})
    assert codes(term.expand(valueset=disjoint)) == []


def test_import_cycle_is_reported(term: Terminology) -> None:
    a = {"resourceType": "ValueSet", "url": "http://example.org/ValueSet/a",
         "compose": {"include": [{"valueSet": ["http://example.org/ValueSet/b"]}]}}
    b = {"resourceType": "ValueSet", "url": "http://example.org/ValueSet/b",
         "compose": {"include": [{"valueSet": ["http://example.org/ValueSet/a"]}, {"system": cn.SEX}]}}
    term.add(a)
    term.add(b)
    assert term.check("http://example.org/ValueSet/a", cn.SEX, "1").result is True
    assert term.check("http://example.org/ValueSet/a", cn.MARITAL_STATUS, "10").result is None


def test_r4_value_set_with_is_a_and_exclude(term: Terminology) -> None:
    out = term.expand("http://terminology.hl7.org/ValueSet/v3-ActEncounterCode")
    assert codes(out) == ["AMB", "EMER", "FLD", "HH", "IMP", "ACUTE", "NONAC", "OBSENC", "PRENC", "SS", "VR"]
    assert out["url"] == "http://terminology.hl7.org/ValueSet/v3-ActEncounterCode"
    assert "text" not in out
    assert out["expansion"]["identifier"].startswith("urn:uuid:")
    assert out["expansion"]["timestamp"]


def test_paging(term: Terminology) -> None:
    full = codes(term.expand(cn.VS_ETHNIC_GROUP))
    assert len(full) == 58
    page = term.expand(cn.VS_ETHNIC_GROUP, count=10, offset=50)
    assert codes(page) == full[50:58]
    assert page["expansion"]["total"] == 58 and page["expansion"]["offset"] == 50
    assert {p["name"] for p in page["expansion"]["parameter"]} == {"count", "offset"}
    assert "contains" not in term.expand(cn.VS_ETHNIC_GROUP, count=0)["expansion"]
    with pytest.raises(InvalidRequest):
        term.expand(cn.VS_ETHNIC_GROUP, count=-1)


@pytest.mark.parametrize(("vs", "text", "expected"), [
    (cn.VS_MARITAL_STATUS, "婚", ["10", "20", "21", "22", "23", "40", "90"]),
    (cn.VS_MARITAL_STATUS, "MARRIED", ["10", "20", "22", "23"]),  # English designations, any case
    (cn.VS_ICD10, "i63.", ["I63.0", "I63.1", "I63.2", "I63.3", "I63.4", "I63.5", "I63.6", "I63.8", "I63.9"]),
    (cn.VS_ICD10, "非胰岛素依赖", ["E11"]),  # the older name, kept as a synonym
    ("http://hl7.org/fhir/ValueSet/administrative-gender", "fem", ["female"]),
    (cn.VS_SEX, "nothing-like-this", []),
])
def test_text_filter(term: Terminology, vs: str, text: str, expected: list[str]) -> None:
    out = term.expand(vs, filter=text)
    assert codes(out) == expected
    assert out["expansion"]["total"] == len(expected)


def test_active_only_and_compose_inactive(term: Terminology) -> None:
    whole = inline({"system": ACT, "filter": [flt("code", "in", "STORE,AMB")]})
    assert codes(term.expand(valueset=whole)) == ["AMB", "STORE"]
    assert term.expand(valueset=whole)["expansion"]["contains"][1]["inactive"] is True
    assert codes(term.expand(valueset=whole, active_only=True)) == ["AMB"]
    active = inline({"system": ACT, "filter": [flt("code", "in", "STORE,AMB")]}, inactive=False)
    assert codes(term.expand(valueset=active)) == ["AMB"]


def test_abstract_codes_are_flagged(term: Terminology) -> None:
    out = term.expand("http://hl7.org/fhir/ValueSet/item-type")
    question = next(c for c in out["expansion"]["contains"] if c["code"] == "question")
    assert question["abstract"] is True


def test_designations_on_request(term: Terminology) -> None:
    plain = term.expand(cn.VS_SEX)["expansion"]["contains"][1]
    assert "designation" not in plain
    rich = term.expand(cn.VS_SEX, include_designations=True)["expansion"]["contains"][1]
    assert {"language": "en", "value": "Male"} in rich["designation"]


def test_published_expansion_used_for_snomed(term: Terminology) -> None:
    out = term.expand("http://hl7.org/fhir/ValueSet/condition-code", count=3)
    assert out["expansion"]["total"] > 1000
    assert len(out["expansion"]["contains"]) == 3
    assert {"url": UNCLOSED, "valueBoolean": True} in out["expansion"]["extension"]


def test_partial_code_system_is_marked_unclosed(term: Terminology) -> None:
    out = term.expand(cn.VS_ICD10, count=1)
    assert {"url": UNCLOSED, "valueBoolean": True} in out["expansion"]["extension"]
    assert out["expansion"]["total"] == 253 - 16  # every code but the 5 chapters and 11 blocks


@pytest.mark.parametrize("vs", [
    inline({"system": "http://loinc.org", "filter": [flt("SCALE_TYP", "=", "Qn")]}),
    inline({"system": "http://snomed.info/sct"}),
    inline({"valueSet": ["http://example.org/ValueSet/not-there"]}),
])
def test_cannot_expand_what_we_do_not_carry(term: Terminology, vs: dict[str, Any]) -> None:
    with pytest.raises(NotSupported):
        term.expand(valueset=vs)


def test_unknown_value_set(term: Terminology) -> None:
    with pytest.raises(UnknownResource):
        term.expand("http://example.org/ValueSet/none")
    with pytest.raises(InvalidRequest):
        term.expand()


def test_too_costly_without_paging(term: Terminology, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expansion, "MAX_UNPAGED", 20)
    with pytest.raises(TooCostly):
        term.expand(cn.VS_ETHNIC_GROUP)
    assert len(codes(term.expand(cn.VS_ETHNIC_GROUP, count=20))) == 20
    assert codes(term.expand(cn.VS_ETHNIC_GROUP, filter="汉")) == ["01"]

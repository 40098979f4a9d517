"""Resources created through the API are used at once: add/remove drop every cache that read them."""

from __future__ import annotations

from typing import Any

from terminology import cn
from terminology.service import Terminology
from tests.terminology.parameters_util import param

LOCAL = "http://hospital.example.cn/CodeSystem/lab-items"
LOCAL_VS = "http://hospital.example.cn/ValueSet/lab-items"
OUTER_VS = "http://hospital.example.cn/ValueSet/outer"


def codesystem(*codes: str) -> dict[str, Any]:
    return {"resourceType": "CodeSystem", "url": LOCAL, "status": "active", "content": "complete",
            "concept": [{"code": c, "display": f"项目{c}"} for c in codes]}


def valueset(url: str, include: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "ValueSet", "url": url, "status": "active", "compose": {"include": [include]}}


def test_new_code_system_is_used_by_cached_value_sets(term: Terminology) -> None:
    term.add(valueset(LOCAL_VS, {"system": LOCAL}))
    term.add(valueset(OUTER_VS, {"valueSet": [LOCAL_VS]}))
    assert term.check(OUTER_VS, LOCAL, "GLU").result is None  # system unknown yet: cannot tell
    term.add(codesystem("GLU", "HBA1C"))
    assert term.check(OUTER_VS, LOCAL, "GLU").result is True  # nested cache dropped too
    assert term.check(LOCAL_VS, LOCAL, "TC").result is False
    term.add(codesystem("GLU", "HBA1C", "TC"))
    assert term.check(OUTER_VS, LOCAL, "TC").result is True
    assert [c["code"] for c in term.expand(OUTER_VS)["expansion"]["contains"]] == ["GLU", "HBA1C", "TC"]


def test_remove_restores_previous_answers(term: Terminology) -> None:
    term.add(codesystem("GLU"))
    term.add(valueset(LOCAL_VS, {"system": LOCAL}))
    assert term.check(LOCAL_VS, LOCAL, "GLU").result is True
    term.remove(LOCAL)
    assert term.check(LOCAL_VS, LOCAL, "GLU").result is None
    term.remove(LOCAL_VS)
    assert term.check(LOCAL_VS, LOCAL, "GLU").result is None
    assert "not known" in term.check(LOCAL_VS, LOCAL, "GLU").message


def test_overriding_a_packaged_value_set_and_removing_it(term: Terminology) -> None:
    assert term.check(cn.VS_SEX, cn.SEX, "9").result is True
    term.add(valueset(cn.VS_SEX, {"system": cn.SEX, "concept": [{"code": "1"}, {"code": "2"}]}))
    assert term.check(cn.VS_SEX, cn.SEX, "9").result is False
    term.remove(cn.VS_SEX)
    assert term.check(cn.VS_SEX, cn.SEX, "9").result is True


def test_changing_a_code_system_refreshes_lookup_and_hierarchy(term: Terminology) -> None:
    term.add(codesystem("A"))
    assert term.descendants(LOCAL, "A") == set()
    term.add({**codesystem(), "concept": [{"code": "A", "display": "甲", "concept": [{"code": "B", "display": "乙"}]}]})
    assert term.descendants(LOCAL, "A") == {"B"}
    assert param(term.lookup(LOCAL, "A"), "display") == "甲"


def test_added_concept_map_is_found_by_translate(term: Terminology) -> None:
    target = "http://hospital.example.cn/CodeSystem/other"
    term.add({"resourceType": "ConceptMap", "url": "http://hospital.example.cn/ConceptMap/m", "group": [
        {"source": LOCAL, "target": target, "element": [{"code": "GLU", "target": [
            {"code": "G", "equivalence": "equivalent"}]}]}]})
    assert param(term.translate(system=LOCAL, code="GLU"), "result") is True
    term.remove("http://hospital.example.cn/ConceptMap/m")
    assert param(term.translate(system=LOCAL, code="GLU"), "result") is False


def test_versioned_value_set_url_is_invalidated_too(term: Terminology) -> None:
    term.add(valueset(LOCAL_VS, {"system": LOCAL}))
    assert term.check(f"{LOCAL_VS}|1.0", LOCAL, "GLU").result is None
    term.add(codesystem("GLU"))
    assert term.check(f"{LOCAL_VS}|1.0", LOCAL, "GLU").result is True


def test_replaced_value_set_does_not_use_the_r4_published_expansion(term: Terminology) -> None:
    url = "http://hl7.org/fhir/ValueSet/condition-code"
    assert term.check(url, "http://snomed.info/sct", "109006").result is True  # from the published expansion
    term.add(valueset(url, {"system": "http://snomed.info/sct", "filter": [
        {"property": "concept", "op": "is-a", "value": "73211009"}]}))
    assert term.check(url, "http://snomed.info/sct", "109006").result is None

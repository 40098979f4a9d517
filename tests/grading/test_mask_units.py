"""The pure grading and masking functions: value masks, grading, stamping, the policy file."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from server.errors import Conflict
from server.grading.body import mask_body
from server.grading.clearance import clearance
from server.grading.grade import LEVEL_SYSTEM, REDACTED, grade, is_redacted, stamp, stamped_level
from server.grading.mask import (
    mask_address,
    mask_human_name,
    mask_id_number,
    mask_name_text,
    mask_phone,
    mask_resource,
    year_only,
)
from server.grading.policy import PolicyError, load_policy, parse_policy

POLICY = load_policy()


@pytest.mark.parametrize(("value", "masked"), [
    ("11010519491231002X", "110105********002X"),
    ("110105194912310021", "110105********0021"),
    ("110105491231002", "110105*****1002"),  # a 15-digit (first generation) number
    ("HR-000123", "HR*****23"),
    ("A123", "****"),
    ("AB1234", "A****4"),
])
def test_id_numbers(value: str, masked: str) -> None:
    assert mask_id_number(value) == masked
    assert len(mask_id_number(value)) == len(value)


@pytest.mark.parametrize(("value", "masked"), [
    ("13812345678", "138****5678"),
    ("+86 138 1234 5678", "138****5678"),
    ("008613812345678", "138****5678"),
    ("010-87654321", "010-****4321"),
    ("1234567", "*******"),
    ("zhang.san@example.cn", "z***@example.cn"),
])
def test_phones(value: str, masked: str) -> None:
    assert mask_phone(value) == masked


@pytest.mark.parametrize(("text", "masked"), [
    ("张三", "张*"), ("张三丰", "张*"), ("欧阳娜娜", "欧阳*"), ("John Smith", "J. S."), ("Smith, John", "S. J."),
])
def test_name_texts(text: str, masked: str) -> None:
    assert mask_name_text(text) == masked


def test_human_names() -> None:
    assert mask_human_name({"use": "official", "text": "司马相如", "family": "司马", "given": ["相如"]}) == \
        {"use": "official", "text": "司马*", "family": "司马", "given": ["*"]}
    assert mask_human_name({"family": "王", "given": ["小明"]}) == {"family": "王", "given": ["*"]}
    assert mask_human_name({"family": "Smith", "given": ["John", "Paul"], "prefix": ["Dr."]}) == \
        {"prefix": ["Dr."], "family": "S.", "given": ["J.", "P."]}


def test_addresses() -> None:
    cn = {"use": "home", "text": "广东省广州市越秀区中山二路58号", "line": ["中山二路58号"], "state": "广东省",
          "city": "广州市", "district": "越秀区", "postalCode": "510080", "country": "CN",
          "extension": [{"url": "http://example.org/village", "valueString": "某村"}]}
    assert mask_address(cn) == {"use": "home", "country": "CN", "state": "广东省", "city": "广州市",
                                "district": "越秀区", "text": "广东省广州市越秀区"}
    us = {"line": ["1 Main St"], "city": "Springfield", "state": "IL", "postalCode": "62701"}
    assert mask_address(us) == {"state": "IL", "city": "Springfield", "text": "IL Springfield"}
    assert mask_address({"line": ["x"], "postalCode": "1"}) == {}


@pytest.mark.parametrize(("value", "year"), [("1980-05-12", "1980"), ("1980-05", "1980"), ("1980", "1980"),
                                             ("1980-05-12T08:00:00+08:00", "1980")])
def test_dates(value: str, year: str) -> None:
    assert year_only(value) == year


def patient() -> dict[str, Any]:
    return {"resourceType": "Patient", "text": {"status": "generated", "div": "<div>张三</div>"},
            "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": "11010519491231002X"}],
            "name": [{"text": "张三"}], "telecom": [{"system": "phone", "value": "13812345678"}],
            "birthDate": "1949-12-31", "photo": [{"contentType": "image/png", "data": "AAAA"}],
            "contact": [{"name": {"text": "李四"}, "telecom": [{"system": "phone", "value": "13900001111"}]}]}


def test_grade_by_type_elements_and_codes() -> None:
    assert grade({"resourceType": "Organization"}, POLICY).level == 1
    assert grade({"resourceType": "Patient", "gender": "male"}, POLICY).level == 3
    assert grade(patient(), POLICY).level == 4
    g = grade({"resourceType": "Condition", "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                                                  "code": "f32.9"}]}}, POLICY)
    assert (g.level, g.category, g.sensitive) == (5, "健康状况", True)
    assert grade({"resourceType": "Condition", "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10",
                                                                     "code": "E11.9"}]}}, POLICY).level == 3
    assert grade({"resourceType": "Observation", "code": {"coding": [{"system": "http://loinc.org",
                                                                       "code": "75622-1"}]}}, POLICY).sensitive
    assert grade({"resourceType": "Encounter", "contained": [patient()]}, POLICY).level == 4


def test_stamp_replaces_client_labels_and_refuses_redacted() -> None:
    r = patient()
    r["meta"] = {"security": [{"system": LEVEL_SYSTEM, "code": "L1"}, {"system": "x", "code": "y"}]}
    stamp(r, POLICY)
    assert r["meta"]["security"][0] == {"system": "x", "code": "y"}
    assert stamped_level(orjson.dumps(r)) == 4
    r["meta"]["security"].append(dict(REDACTED))
    assert is_redacted(r)
    with pytest.raises(Conflict):
        stamp(r, POLICY)


def test_stamped_level_cannot_be_lowered_by_a_look_alike() -> None:
    r = {"resourceType": "Observation", "code": {"coding": [{"system": LEVEL_SYSTEM, "code": "L1"}]},
         "valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "75622-1"}]}}
    stamp(r, POLICY)
    assert stamped_level(orjson.dumps(r)) == 5


def test_mask_resource_by_clearance() -> None:
    r = patient()
    assert not mask_resource(r, POLICY, 4) and r == patient()
    assert mask_resource(r, POLICY, 3)
    assert r["identifier"][0]["value"] == "110105********002X" and "photo" not in r and "text" not in r
    assert r["name"] == [{"text": "张三"}] and r["contact"][0]["name"] == {"text": "李四"}
    assert r["contact"][0]["telecom"][0]["value"] == "139****1111"
    assert is_redacted(r)
    r = patient()
    assert mask_resource(r, POLICY, 2)
    assert r["name"] == [{"text": "张*"}] and r["birthDate"] == "1949" and r["contact"][0]["name"] == {"text": "李*"}


def test_mask_sensitive_and_lift() -> None:
    def hiv() -> dict[str, Any]:
        return {"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "75622-1"}]},
                "valueCodeableConcept": {"text": "positive"}, "note": [{"text": "x"}],
                "subject": {"reference": "Patient/1"}}

    r = hiv()
    assert mask_resource(r, POLICY, 4)
    assert set(r) == {"resourceType", "status", "code", "subject", "meta"}
    assert r["code"]["extension"][0]["valueCode"] == "masked"
    r = hiv()
    assert not mask_resource(r, POLICY, 4, lift=lambda res, level: level == 5) and r == hiv()


def test_mask_body_bundle_keeps_unmasked_fragments() -> None:
    org = {"resourceType": "Organization", "name": "x"}
    pat = patient()
    stamp(org, POLICY)
    stamp(pat, POLICY)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": orjson.Fragment(orjson.dumps(org))}, {"resource": orjson.Fragment(orjson.dumps(pat))},
        {"resource": {"resourceType": "Bundle", "entry": [{"resource": orjson.Fragment(orjson.dumps(pat))}]}}]}
    masked = mask_body(bundle, POLICY, 3)
    assert masked is not None and bundle["entry"][1]["resource"].__class__ is orjson.Fragment  # input unchanged
    assert masked["entry"][0] is bundle["entry"][0]
    assert is_redacted(masked["entry"][1]["resource"]) and is_redacted(masked["entry"][2]["resource"]["entry"][0]
                                                                        ["resource"])
    assert mask_body(bundle, POLICY, 4) is None and mask_body(orjson.dumps(pat), POLICY, 5) is None


def test_clearance() -> None:
    assert clearance("district", "c1", {}, {}) == 3
    assert clearance("district", "c1", {"district": 4}, {}) == 4
    assert clearance("district", "c1", {"district": 4}, {"c1": 2}) == 2
    assert clearance("nobody", None, {}, {}) == 1


@pytest.mark.parametrize(("data", "named"), [
    ([], "must be a mapping"),
    ({"default": {"category": "医疗应用", "level": 0}}, "default"),
    ({"elements": [{"path": "name", "level": 3}]}, "elements[0]"),
    ({"elements": [{"path": "Patient.name", "level": 3, "mask": "blur"}]}, "mask must be one of"),
    ({"sensitive": {"groups": {"hiv": {"icd10": "B20"}}}}, "sensitive.groups.hiv.icd10"),
    ({"confidentiality": {1: "N", 2: "N", 3: "Q", 4: "R", 5: "V"}}, "confidentiality.3"),
])
def test_policy_errors_name_the_entry(data: Any, named: str) -> None:
    with pytest.raises(PolicyError, match=named.replace("[", r"\[").replace("]", r"\]")):
        parse_policy(data, "p.yaml")


def test_shipped_policy_and_missing_file(tmp_path: Any) -> None:
    assert POLICY.top == 5 and POLICY.grading("Claim").category == "医疗支付"
    with pytest.raises(PolicyError, match="cannot be read"):
        load_policy(tmp_path / "none.yaml")

"""Desk input (issue 17): unambiguous dirty values are normalised with a warning and the original kept; ambiguous
ones are rejected with a reason; other 身份证件 are stored with their own system and type, never as the 身份证号."""

from __future__ import annotations

from typing import Any

import pytest

from profiles.datasets import formats, spec
from profiles.datasets.convert import Converter, Record
from profiles.validator import Validator
from tests.datasets import generate as g
from tests.datasets.test_convert import errors, validator  # noqa: F401  (fixture)
from tests.datasets.test_qc import TODAY, person

ORIGINAL = "http://hl7.org/fhir/StructureDefinition/originalText"


@pytest.mark.parametrize(("text", "expected"), [
    ("2024/3/5", "2024-03-05"), ("1937.12.14", "1937-12-14"), ("1993年4月28日", "1993-04-28"),
    ("20240305", "2024-03-05"), ("2024-03-05", "2024-03-05"), ("２０２４０３０５", "2024-03-05")])
def test_unambiguous_dates(text: str, expected: str) -> None:
    assert formats.parse("D8", formats.normalize(text)).value == expected


@pytest.mark.parametrize("text", ["03/05/2024", "5.3.2024", "2024/13/5", "24/3/5"])
def test_ambiguous_or_impossible_dates_are_refused(text: str) -> None:
    parsed = formats.parse("D8", formats.normalize(text))
    assert parsed.value is None and parsed.problem


def test_datetime_with_slashes() -> None:
    assert formats.parse("DT15", "2024/3/5 8:30").value == "2024-03-05T08:30:00+08:00"
    assert formats.parse("DT15", "03/05/2024 08:30").problem


def _patient(converter: Converter) -> dict[str, Any]:
    bundle = next(converter.iter_bundles())
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")


def test_dirty_person_record_is_normalised_keeping_the_original(validator: Validator) -> None:  # noqa: F811
    p = g.people(1, seed=21)[0]
    wide = p.id_number[:6].translate(str.maketrans("0123456789", "０１２３４５６７８９")) + " " + p.id_number[6:]
    converter = Converter(spec.load("person"), today=TODAY)
    born = f"{p.born.year}年{p.born.month}月{p.born.day}日"
    outcome = converter.add(Record(1, person(身份证件号码=wide, 出生日期=born, 本人电话号码="１３８ ０００ １２３４",
                                              建档日期="2023/1/5")))
    assert outcome.accepted, outcome.issues
    warned = {(i.element, i.code) for i in outcome.issues}
    assert {("DE02.01.030.00", "format-nonstandard"), ("DE02.01.005.01", "format-nonstandard"),
            ("DE02.01.010.00", "format-nonstandard"), ("YD.RECORD.DATE", "format-nonstandard")} <= warned
    patient = _patient(converter)
    national = next(i for i in patient["identifier"] if i["system"] == "urn:oid:2.16.156.10011.1.3")
    assert national["value"] == p.id_number
    assert national["_value"]["extension"] == [{"url": ORIGINAL, "valueString": wide}]
    assert patient["birthDate"] == p.born.isoformat()
    assert patient["_birthDate"]["extension"] == [{"url": ORIGINAL, "valueString": born}]
    assert patient["telecom"][0]["value"] == "1380001234"
    bundle = next(converter.iter_bundles())
    assert errors(validator, bundle) == []


def test_an_ambiguous_date_rejects_the_record_with_a_reason() -> None:
    converter = Converter(spec.load("person"), today=TODAY)
    outcome = converter.add(Record(1, person(建档日期="03/05/2023")))
    assert not outcome.accepted
    (found,) = [i for i in outcome.issues if i.severity == "error"]
    assert (found.element, found.code) == ("YD.RECORD.DATE", "format") and "ambiguous" in found.en


def test_a_passport_beside_a_health_card_is_its_own_identifier(validator: Validator) -> None:  # noqa: F811
    converter = Converter(spec.load("person"), today=TODAY)
    outcome = converter.add(Record(1, person(身份证件类别代码="03", 身份证件号码="E12345678")))
    assert outcome.accepted, outcome.issues
    patient = _patient(converter)
    systems = {i["system"]: i for i in patient["identifier"]}
    assert "urn:oid:2.16.156.10011.1.3" not in systems
    passport = systems["http://yidang.org/fhir/sid/id-document/03"]
    assert passport["value"] == "E12345678"
    assert {(c["system"], c["code"]) for c in passport["type"]["coding"]} == {
        ("urn:oid:2.16.156.10011.2.3.1.1", "03"), ("http://terminology.hl7.org/CodeSystem/v2-0203", "PPN")}
    assert "urn:oid:2.16.156.10011.1.19" in systems  # the health card keys the person
    assert errors(validator, next(converter.iter_bundles())) == []


def test_a_passport_alone_still_identifies_the_person() -> None:
    converter = Converter(spec.load("person"), today=TODAY)
    outcome = converter.add(Record(1, person(身份证件类别代码="03", 身份证件号码="E12345678", 居民健康卡号="",
                                              **{"DE01.00.009.00": ""})))
    assert outcome.accepted, outcome.issues
    assert outcome.person == "identifier=http%3A%2F%2Fyidang.org%2Ffhir%2Fsid%2Fid-document%2F03%7CE12345678" or \
        "id-document" in (outcome.person or "")


@pytest.mark.parametrize(("text", "comparator", "value"), [("<0.1", "<", 0.1), (">100", ">", 100),
                                                           ("≤5", "<=", 5), ("＜0.5", "<", 0.5)])
def test_lab_value_with_a_comparator(text: str, comparator: str, value: float) -> None:
    rows = [r for r in g.lab_rows(g.people(1, seed=22)) if r["检验项目代码"] == "WBC"]  # no plausible range
    headers = spec.load("lab-report").headers()
    fields = {headers[k]: v for k, v in {**rows[0], "检验定量结果": text}.items()}
    converter = Converter(spec.load("lab-report"), today=TODAY)
    outcome = converter.add(Record(1, fields))
    assert outcome.accepted, outcome.issues
    bundle = next(converter.iter_bundles())
    observation = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation")
    assert observation["valueQuantity"]["comparator"] == comparator
    assert observation["valueQuantity"]["value"] == value

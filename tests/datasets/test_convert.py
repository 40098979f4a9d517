"""The engine end to end without a server: readers, headers, formats, maps, Bundles, profiles, report."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from profiles.bindings import LayeredChecker
from profiles.datasets import formats, readers, report, spec
from profiles.datasets.run import merge_identifiers, run
from profiles.engine import ProfileEngine
from profiles.regional import definitions, regional_registry
from profiles.validator import Validator
from terminology.service import Terminology
from tests.datasets import generate as g

PEOPLE = g.people(4, seed=41)
ROWS = {"person": g.person_rows(4, seed=41, faults=False), "encounter": g.encounter_rows(PEOPLE),
        "diagnosis": g.diagnosis_rows(PEOPLE), "lab-report": g.lab_rows(PEOPLE), "vital-signs": g.vital_rows(PEOPLE),
        "exam-report": g.exam_rows(PEOPLE), "hypertension-followup": g.followup_rows(PEOPLE),
        "diabetes-followup": g.followup_rows(PEOPLE, diabetes=True)}


@pytest.fixture(scope="module")
def validator() -> Validator:
    registry = regional_registry()
    return Validator(engine=ProfileEngine(registry, terminology=LayeredChecker(registry, Terminology())))


def errors(validator: Validator, resource: dict[str, Any]) -> list[str]:
    return [f"{i.expression}: {i.message}" for i in validator.validate(resource) if i.severity in ("error", "fatal")]


@pytest.mark.parametrize("name", sorted(ROWS))
def test_every_bundle_validates_against_the_regional_profiles(validator: Validator, name: str) -> None:
    result = run(spec.load(name), g.to_csv(ROWS[name]), kind="csv")
    assert result.report["records_rejected"] == 0
    assert result.conversion.bundles
    for bundle in result.conversion.bundles:
        for entry in bundle["entry"]:
            profile = entry["resource"].get("meta", {}).get("profile")
            placeholder = entry["request"]["method"] == "POST" and entry["resource"].get("status") == "unknown"
            core_only = ("Specimen", "ImagingStudy", "MedicationStatement", "CarePlan")  # no regional profile
            assert profile or placeholder or entry["resource"]["resourceType"] in core_only
        assert errors(validator, bundle) == []


def test_a_broken_resource_fails_its_profile(validator: Validator) -> None:
    bundle = copy.deepcopy(run(spec.load("person"), g.to_csv(ROWS["person"]), kind="csv").conversion.bundles[0])
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    del patient["birthDate"]
    assert any("birthDate" in e for e in errors(validator, bundle))


@pytest.mark.parametrize(("kind", "data"), [
    ("csv", g.to_csv(ROWS["person"])),
    ("csv", g.to_csv(ROWS["person"], "gb18030")),
    ("json", g.to_json(ROWS["person"])),
    ("xml", g.to_xml(ROWS["person"], spec.load("person").headers())),
])
def test_readers_give_the_same_bundles(kind: str, data: bytes) -> None:
    expected = run(spec.load("person"), g.to_csv(ROWS["person"]), kind="csv").conversion.bundles
    assert readers.sniff(data) == ("csv" if kind == "csv" else kind)
    assert run(spec.load("person"), data, kind=kind).conversion.bundles == expected


def test_gb18030_is_not_utf8() -> None:
    data = g.to_csv(ROWS["person"], "gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert "姓名" in readers.decode(data)


def test_unknown_columns_are_reported() -> None:
    rows = [{**r, "自定义列": "x"} for r in ROWS["person"]]
    result = run(spec.load("person"), g.to_csv(rows), kind="csv")
    assert result.report["unknown_columns"] == ["自定义列"]
    assert {"record": 0, "element": "自定义列", "code": "unknown-column"}.items() <= result.report["issues"][0].items()


def test_malformed_input_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        readers.read(b"<records><record>", "xml")
    with pytest.raises(ValueError):
        readers.read(b'{"a": 1}', "json")


@pytest.mark.parametrize(("notation", "text", "value", "problem"), [
    ("D8", "20240506", "2024-05-06", False), ("D8", "20240230", None, True), ("D8", "2024-05-06", "2024-05-06", False),
    ("DT15", "20240506T093000", "2024-05-06T09:30:00+08:00", False), ("DT15", "20240506T253000", None, True),
    ("N1", "1", "1", False), ("N2", "1", None, True), ("N..3", "120", 120, False), ("N..3", "1200", None, True),
    ("N..4,1", "12.5", 12.5, False), ("N..4,1", "12.55", None, True), ("N..3", "abc", None, True),
    ("A..5", "张三", "张三", False), ("A..2", "欧阳修文", None, True), ("L", "T", True, False), ("L", "Y", None, True),
])
def test_formats(notation: str, text: str, value: object, problem: bool) -> None:
    parsed = formats.parse(notation, text)
    assert (parsed.problem is not None) == problem
    if not problem:
        assert parsed.value == value


def test_rows_of_one_report_fill_one_diagnostic_report() -> None:
    bundles = run(spec.load("lab-report"), g.to_csv(ROWS["lab-report"]), kind="csv").conversion.bundles
    assert len(bundles) == len(PEOPLE)
    kinds = [e["resource"]["resourceType"] for e in bundles[0]["entry"]]
    assert kinds.count("DiagnosticReport") == 1 and kinds.count("Observation") == len(g.LAB_ITEMS)
    assert kinds.count("Specimen") == 1


def test_conversion_is_deterministic_and_conditional() -> None:
    data = g.to_csv(ROWS["encounter"])
    first = run(spec.load("encounter"), data, kind="csv").conversion.bundles
    assert first == run(spec.load("encounter"), data, kind="csv").conversion.bundles
    requests = {e["resource"]["resourceType"]: e["request"] for e in first[0]["entry"]}
    assert requests["Encounter"]["method"] == "PUT" and "service-provider.identifier=" in requests["Encounter"]["url"]
    assert requests["Patient"]["method"] == "POST" and requests["Patient"]["url"] == "Patient"
    assert requests["Patient"]["ifNoneExist"].startswith("identifier=urn:oid:2.16.156.10011.1.3|")


def test_merge_identifiers_keeps_the_stored_ones_first() -> None:
    a = {"system": "s", "value": "1", "assigner": {"identifier": {"value": "A"}}}
    b = {"system": "s", "value": "1", "assigner": {"identifier": {"value": "B"}}}
    merged = merge_identifiers({"identifier": [a]}, {"identifier": [b, a], "name": [{"text": "x"}]})
    assert merged == {"identifier": [a, b], "name": [{"text": "x"}]}
    assert merge_identifiers(merged, {"identifier": [a, b]})["identifier"] == [a, b]


def test_report_rates_and_html() -> None:
    result = run(spec.load("person"), g.to_csv(g.person_rows(6, seed=42)), kind="csv")
    qc = result.report
    assert (qc["records_total"], qc["records_accepted"], qc["records_rejected"]) == (11, 6, 5)
    assert qc["elements"]["DE02.01.039.00"]["completeness"] == round(10 / 11, 4)
    assert qc["elements"]["DE02.01.040.00"]["validity"] < 1
    assert "duplicates" in qc["elements"]["DE02.01.030.00"]
    assert set(qc["sources"]) == {c for c, _ in g.INSTITUTIONS}
    page = report.html(qc)
    assert "<svg" in page and "DE02.01.040.00" in page
    assert not any(marker in page for marker in ("<link", "src=", "href=", "<script"))  # no external assets


def test_every_map_loads_and_names_real_profiles() -> None:
    urls = {r["url"] for r in definitions()}
    for name in spec.names():
        dataset = spec.load(name)
        assert all(r.profile is None or r.profile in urls for r in dataset.resources.values())
        assert all(e.name and e.format for e in dataset.elements)


def test_json_numbers_are_read_as_text() -> None:
    rows = [{**r, "收缩压": int(r["收缩压"]), "体重": float(r["体重"])} for r in g.vital_rows(PEOPLE)]
    result = run(spec.load("vital-signs"), json.dumps(rows, ensure_ascii=False).encode(), kind="json")
    assert result.report["records_rejected"] == 0
    bp = next(e["resource"] for e in result.conversion.bundles[0]["entry"]
              if e["resource"].get("code", {}).get("text") == "血压")
    assert bp["component"][0]["valueQuantity"]["value"] == int(g.vital_rows(PEOPLE)[0]["收缩压"])


def _by_identifier(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Bundle entries keyed by the last part of their first identifier's value (``bp``, ``drug-1`` …)."""
    return {e["resource"]["identifier"][0]["value"].rsplit("/", 1)[-1]: e for e in bundle["entry"]
            if e["resource"].get("identifier") and "/" in e["resource"]["identifier"][0]["value"]}


def test_heart_rate_and_waist_observations() -> None:
    row = {**g.vital_rows(PEOPLE)[0], "心率": "76", "腹围": "86.5"}
    bundle = run(spec.load("vital-signs"), g.to_csv([row]), kind="csv").conversion.bundles[0]
    made = _by_identifier(bundle)
    heart, waist = made["heart-rate"]["resource"], made["waist"]["resource"]
    assert heart["meta"]["profile"] == ["http://yidang.org/fhir/StructureDefinition/cn-heart-rate"]
    assert [(c["system"], c["code"]) for c in heart["code"]["coding"]] == [
        ("http://loinc.org", "8867-4"), ("urn:oid:2.16.156.10011.2.2.1", "DE04.10.206.00")]
    assert heart["valueQuantity"] == {"value": 76, "unit": "次/分", "system": "http://unitsofmeasure.org",
                                      "code": "/min"}
    assert waist["meta"]["profile"] == ["http://yidang.org/fhir/StructureDefinition/cn-waist-circumference"]
    assert waist["code"]["coding"][0]["code"] == "8280-0" and waist["code"]["text"] == "腹围"
    assert waist["valueQuantity"] == {"value": 86.5, "unit": "cm", "system": "http://unitsofmeasure.org", "code": "cm"}
    for observation in (heart, waist):
        assert observation["effectiveDateTime"] == made["bp"]["resource"]["effectiveDateTime"]
        assert observation["identifier"][0]["system"] == "http://yidang.org/fhir/sid/vital-sign"
    without = run(spec.load("vital-signs"), g.to_csv([{**row, "心率": "", "腹围": ""}]), kind="csv").conversion
    assert {"heart-rate", "waist"}.isdisjoint(_by_identifier(without.bundles[0]))


def test_followup_adherence_drugs_and_next_visit() -> None:
    row = {**g.followup_rows(PEOPLE)[0], "随访日期": "20240410", "服药依从性": "2", "药物名称1": "苯磺酸氨氯地平片",
           "用法用量1": "每日1次，每次5mg，口服", "药物名称2": "氢氯噻嗪片", "用法用量2": "每日1次，每次12.5mg，口服",
           "下次随访日期": "20240710"}
    bundle = run(spec.load("hypertension-followup"), g.to_csv([row]), kind="csv").conversion.bundles[0]
    made = _by_identifier(bundle)
    visit = next(e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter")
    doctor = next(e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Practitioner")
    source, number = g.INSTITUTIONS[0][0], row["随访记录编号"]

    adherence = made["adherence"]
    assert adherence["request"]["url"] == ("Observation?identifier=http://yidang.org/fhir/sid/followup|"
                                           f"{source}/{number}/adherence")
    assert adherence["resource"]["code"]["coding"][0]["code"] == "medication-adherence"
    assert adherence["resource"]["valueCodeableConcept"] == {"coding": [
        {"system": "http://yidang.org/fhir/CodeSystem/cn-medication-adherence", "code": "2", "display": "间断"}]}
    assert (adherence["resource"]["encounter"], adherence["resource"]["effectiveDateTime"]) == (
        {"reference": visit}, "2024-04-10")

    for n, (name, dosage) in enumerate([("苯磺酸氨氯地平片", "每日1次，每次5mg，口服"),
                                        ("氢氯噻嗪片", "每日1次，每次12.5mg，口服")], 1):
        statement = made[f"drug-{n}"]["resource"]
        assert statement["resourceType"] == "MedicationStatement" and "meta" not in statement
        assert statement["identifier"] == [{"system": "http://yidang.org/fhir/sid/followup",
                                            "value": f"{source}/{number}/drug-{n}"}]
        assert (statement["status"], statement["medicationCodeableConcept"], statement["dosage"]) == (
            "active", {"text": name}, [{"text": dosage}])
        assert (statement["context"], statement["informationSource"], statement["effectiveDateTime"]) == (
            {"reference": visit}, {"reference": doctor}, "2024-04-10")

    plan = made["next"]["resource"]
    assert (plan["resourceType"], plan["status"], plan["intent"], plan["title"]) == (
        "CarePlan", "active", "plan", "随访计划")
    assert plan["category"][0]["coding"][0]["code"] == "followup-plan" and plan["encounter"] == {"reference": visit}
    assert plan["activity"] == [{"detail": {"kind": "Appointment", "status": "scheduled", "description": "下次随访",
                                            "scheduledPeriod": {"start": "2024-07-10"}}}]


def test_followup_without_drugs_or_next_date_makes_neither() -> None:
    row = {**g.followup_rows(PEOPLE)[0], "服药依从性": "3", "药物名称1": "", "用法用量1": "", "药物名称2": "",
           "用法用量2": "每日1次", "下次随访日期": ""}  # a dosage without a drug name makes nothing
    result = run(spec.load("hypertension-followup"), g.to_csv([row]), kind="csv")
    assert result.report["records_rejected"] == 0
    kinds = [e["resource"]["resourceType"] for e in result.conversion.bundles[0]["entry"]]
    assert "MedicationStatement" not in kinds and "CarePlan" not in kinds
    assert "adherence" in _by_identifier(result.conversion.bundles[0])

"""Each quality-control rule both ways: a record that breaks it gets its code, a clean one does not."""

from __future__ import annotations

from datetime import date

import pytest

from profiles.datasets import qc, spec
from profiles.datasets.convert import Converter, Record
from tests.datasets import generate as g

TODAY = date(2025, 6, 1)
PERSON = g.people(1, seed=21)[0]


def person(**changes: str) -> dict[str, str]:
    row = g.person_row(PERSON, g.INSTITUTIONS[0], 1)
    headers = spec.load("person").headers()
    return {headers[k]: v for k, v in {**row, **changes}.items()}


def codes(dataset: str, *fields: dict[str, str]) -> list[set[tuple[str, str]]]:
    converter = Converter(spec.load(dataset), today=TODAY)
    return [{(i.code, i.severity) for i in converter.add(Record(n, f)).issues} for n, f in enumerate(fields, 1)]


ID = PERSON.id_number
OTHER_SEX = "2" if PERSON.sex == "1" else "1"


@pytest.mark.parametrize(("changes", "expected"), [
    ({"身份证件号码": ID[:17] + ("0" if ID[17] != "0" else "1")}, ("id-invalid", "error")),
    ({"身份证件号码": ID[:6] + "19990230" + ID[14:]}, ("id-invalid", "error")),
    ({"身份证件号码": "12345"}, ("id-invalid", "error")),
    ({"身份证件类别代码": "03", "身份证件号码": "E1234 5678"}, ("format-nonstandard", "warning")),  # a passport
    ({"出生日期": "19000101"}, ("id-birthdate-mismatch", "error")),
    ({"性别代码": OTHER_SEX}, ("id-sex-mismatch", "warning")),
    ({"性别代码": "7"}, ("code-unknown", "error")),
    ({"婚姻状况代码": "24"}, ("code-unknown", "error")),
    ({"民族": "77"}, ("code-unknown", "warning")),
    ({"出生日期": "19900230", "身份证件号码": ""}, ("format", "error")),
    ({"出生日期": "1990-02-03", "身份证件号码": ""}, ("format-nonstandard", "warning")),
    ({"姓名": ""}, ("required", "error")),
    ({"医疗卫生机构代码": ""}, ("required", "error")),
    ({"身份证件号码": "", "居民健康卡号": "", "DE01.00.009.00": ""}, ("no-person-key", "error")),
    ({"出生日期": "20300101", "身份证件号码": ""}, ("birth-future", "error")),
    ({"出生日期": "20240101", "身份证件号码": "", "建档日期": "20230101"}, ("event-before-birth", "error")),
    ({"出生日期": "18800101", "身份证件号码": "", "建档日期": "20230101"}, ("age-implausible", "error")),
    ({"建档日期": "20300101"}, ("event-future", "error")),
    ({"行政区划代码": "110100"}, ("code-unknown", "warning")),  # not a GB/T 2260 division (市辖区)
    ({"行政区划代码": "11010"}, ("format", "error")),
])
def test_rule_fires(changes: dict[str, str], expected: tuple[str, str]) -> None:
    assert expected in codes("person", person(**changes))[0]


def test_clean_record_has_no_issue() -> None:
    assert codes("person", person()) == [set()]


def test_lower_case_x_is_stored_upper_case() -> None:
    number = "11010519491231002X"
    fields = person(身份证件号码=number.lower(), 出生日期="19491231", 性别代码="2")
    converter = Converter(spec.load("person"), today=TODAY)
    outcome = converter.add(Record(1, fields))
    assert ("id-lowercase-x", "warning") in {(i.code, i.severity) for i in outcome.issues}
    assert outcome.accepted and outcome.values["DE02.01.030.00"] == number


def test_fifteen_digit_number_is_upgraded_keeping_the_old_one() -> None:
    old = "110105491231002"
    converter = Converter(spec.load("person"), today=TODAY)
    outcome = converter.add(Record(1, person(身份证件号码=old, 出生日期="19491231", 性别代码="2")))
    assert outcome.accepted, outcome.issues
    entries = next(converter.iter_bundles())["entry"]
    patient = next(e["resource"] for e in entries if e["resource"]["resourceType"] == "Patient")
    ids = {(i.get("use"), i["value"]) for i in patient["identifier"] if i["system"] == "urn:oid:2.16.156.10011.1.3"}
    assert ids == {(None, "11010519491231002X"), ("old", old)}


def test_duplicates() -> None:
    same_id_other_name = person(姓名="另一人")
    no_id = person(身份证件号码="", 居民健康卡号="H1")
    found = codes("person", person(), person(), same_id_other_name, no_id)
    assert found[0] == set()
    assert ("duplicate-id", "warning") in found[1]
    assert ("duplicate-id-different-name", "warning") in found[2]
    assert ("likely-duplicate", "warning") in found[3]


def test_clinical_rows_of_one_person_are_not_duplicates() -> None:
    rows = g.lab_rows(g.people(1, seed=22))
    headers = spec.load("lab-report").headers()
    found = codes("lab-report", *({headers[k]: v for k, v in row.items()} for row in rows))
    assert found == [set()] * len(rows)


@pytest.mark.parametrize(("changes", "code"), [
    ({"门(急)诊号": ""}, "required-one-of"),
    ({"就诊日期时间": "20240230T093000"}, "format"),
    ({"就诊日期时间": "20240301 0930"}, "format"),
    ({"患者类型代码": "5"}, "code-unknown"),
])
def test_encounter_rules(changes: dict[str, str], code: str) -> None:
    headers = spec.load("encounter").headers()
    row = {**g.encounter_rows(g.people(1, seed=23))[0], **changes}
    assert code in {c for c, _ in codes("encounter", {headers[k]: v for k, v in row.items()})[0]}
    clean = g.encounter_rows(g.people(1, seed=23))[0]
    assert codes("encounter", {headers[k]: v for k, v in clean.items()}) == [set()]


def test_period_reversed() -> None:
    headers = spec.load("encounter").headers()
    row = g.encounter_rows(g.people(3, seed=24))[2]
    row["出院日期时间"] = "20000101T000000"
    assert ("period-reversed", "error") in codes("encounter", {headers[k]: v for k, v in row.items()})[0]


@pytest.mark.parametrize(("changes", "code"), [
    ({"收缩压": "80", "舒张压": "90"}, "value-order"),
    ({"身高": "350.0"}, "out-of-range"),
    ({"体重": "0.1"}, "out-of-range"),
    ({"血糖检测值": "abc"}, "format"),
    ({"测量记录编号": ""}, "required"),
])
def test_vital_sign_rules(changes: dict[str, str], code: str) -> None:
    headers = spec.load("vital-signs").headers()
    clean = g.vital_rows(g.people(1, seed=25))[0]
    assert codes("vital-signs", {headers[k]: v for k, v in clean.items()}) == [set()]
    row = {**clean, **changes}
    assert (code, "error") in codes("vital-signs", {headers[k]: v for k, v in row.items()})[0]


def test_source_comes_from_the_option_when_no_column_gives_it() -> None:
    fields = person()
    del fields["YD.SOURCE"]
    outcome = Converter(spec.load("person"), source="450755021", today=TODAY).add(Record(1, fields))
    assert outcome.accepted and outcome.source == "450755021"
    column = Converter(spec.load("person"), source="450755021", today=TODAY).add(Record(1, person()))
    assert column.source == g.INSTITUTIONS[0][0]  # a column wins over the option


@pytest.mark.parametrize(("stored", "incoming", "conflict"), [
    ({"id": "p1", "name": [{"text": "王芳"}]}, {"name": [{"text": "王芳"}]}, None),
    ({"id": "p1", "name": [{"text": "王 芳"}]}, {"name": [{"text": "王芳"}]}, None),
    ({"id": "p1", "name": [{"family": "王", "given": ["芳"]}]}, {"name": [{"text": "王芳"}]}, None),
    ({"id": "p1", "name": [{"text": "王芳"}]}, {"name": [{"text": "王方"}]}, "Patient/p1 王芳"),
    ({"id": "p1"}, {"name": [{"text": "王方"}]}, None),
    ({"id": "p1", "name": [{"text": "王芳"}]}, {}, None),
])
def test_stored_name_conflict(stored: dict, incoming: dict, conflict: str | None) -> None:
    assert qc.stored_name_conflict(stored, incoming) == conflict


PATIENT = {"name": [{"text": "王芳"}], "gender": "female", "birthDate": "1980-05-01",
           "telecom": [{"system": "phone", "value": "13800000000"}]}


@pytest.mark.parametrize(("patient", "criteria"), [
    (PATIENT, "name%3Aexact=%E7%8E%8B%E8%8A%B3&gender=female&birthdate=1980-05-01&phone=13800000000"),
    ({**PATIENT, "telecom": []}, None),
    ({**PATIENT, "gender": None}, None),
    ({k: v for k, v in PATIENT.items() if k != "birthDate"}, None),
])
def test_demographic_criteria(patient: dict, criteria: str | None) -> None:
    assert qc.demographic_criteria(patient) == criteria


@pytest.mark.parametrize(("own", "similar", "found"), [
    (None, [], None),
    (None, [{"id": "a", "name": [{"text": "王芳"}]}], "Patient/a 王芳"),
    ({"id": "a"}, [{"id": "a"}], None),
    ({"id": "a"}, [{"id": "a"}, {"id": "b", "name": [{"text": "王芳"}]}], "Patient/b 王芳"),
])
def test_likely_duplicate(own: dict | None, similar: list[dict], found: str | None) -> None:
    assert qc.likely_duplicate(own, similar) == found


def _vital(**changes: str) -> dict[str, str]:
    headers = spec.load("vital-signs").headers()
    return {headers[k]: v for k, v in {**g.vital_rows(g.people(1, seed=25))[0], **changes}.items()}


@pytest.mark.parametrize(("changes", "expected"), [
    ({"心率": "20"}, set()), ({"心率": "300"}, set()),
    ({"心率": "19"}, {("DE04.10.206.00", "out-of-range", "error")}),
    ({"心率": "301"}, {("DE04.10.206.00", "out-of-range", "error")}),
    ({"心率": "72.5"}, {("DE04.10.206.00", "format", "error")}),  # N..3: whole beats per minute
    ({"腹围": "30.0"}, set()), ({"腹围": "250"}, set()),
    ({"腹围": "29.9"}, {("DE04.10.052.00", "out-of-range", "error")}),
    ({"腹围": "250.1"}, {("DE04.10.052.00", "out-of-range", "error")}),
    ({"心率": "", "腹围": ""}, set()),  # optional: their Observations are just not made
])
def test_heart_rate_and_waist_ranges(changes: dict[str, str], expected: set[tuple[str, str, str]]) -> None:
    outcome = Converter(spec.load("vital-signs"), today=TODAY).add(Record(1, _vital(**changes)))
    assert {(i.element, i.code, i.severity) for i in outcome.issues} == expected
    assert outcome.accepted == (not expected)


def _followup(**changes: str) -> dict[str, str]:
    headers = spec.load("hypertension-followup").headers()
    row = {**g.followup_rows(g.people(1, seed=26))[0], "随访日期": "20240410", **changes}
    return {headers[k]: v for k, v in row.items()}


@pytest.mark.parametrize(("changes", "expected"), [
    ({"下次随访日期": "20240710"}, set()),
    ({"下次随访日期": "20240411"}, set()),
    ({"下次随访日期": ""}, set()),  # no next visit planned: no CarePlan, no rule
    ({"下次随访日期": "20240410"}, {("value-order", "error")}),  # `greater` is strict: the same day is refused
    ({"下次随访日期": "20240110"}, {("value-order", "error")}),
    ({"下次随访日期": "2024-07-10"}, {("format-nonstandard", "warning")}),
    ({"下次随访日期": "20240231"}, {("format", "error")}),
    ({"服药依从性": "3", "药物名称1": "", "用法用量1": "", "药物名称2": "", "用法用量2": ""}, set()),
    ({"服药依从性": "4"}, {("code-unknown", "error")}),
    ({"服药依从性": ""}, set()),
    ({"药物名称1": "硝苯地平控释片" * 15}, {("format", "error")}),  # AN..100
    ({"药物名称2": "", "用法用量2": "每日1次"}, {("orphan-value", "warning")}),  # a dosage without its drug
    ({"药物名称1": "", "用法用量1": "", "药物名称2": "", "用法用量2": ""}, set()),
])
def test_followup_next_date_and_adherence(changes: dict[str, str], expected: set[tuple[str, str]]) -> None:
    assert codes("hypertension-followup", _followup(**changes)) == [expected]


def test_followup_rules_come_from_the_fragment_for_both_data_sets() -> None:
    for name in ("hypertension-followup", "diabetes-followup"):
        assert ("YD.NEXT.FOLLOWUP.DATE", "YD.FOLLOWUP.DATE") in spec.load(name).greater

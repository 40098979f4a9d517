"""The pure parts of mutual recognition: the status rules (each status and its rule, result time,
categories, the best of several items) and the CSV readers (bad rows with reasons, a bad header)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from server.errors import BadRequest
from server.recognition.csvrows import read_catalog, read_qualifications
from server.recognition.model import HR_TAG, STATUS_EXT, Item, Qualification
from server.recognition.status import annotate, category, decide, result_time

LOINC = "http://loinc.org"
GLUCOSE = Item(LOINC, "2345-7", "血糖", "laboratory", 30, "province")
HBA1C = Item(LOINC, "4548-4", "糖化血红蛋白", "laboratory", 90, "city")
CATALOGUE = {GLUCOSE.key: GLUCOSE, HBA1C.key: HBA1C}
QUALIFIED = [Qualification("H1", "o1", LOINC, "2345-7", date(2025, 1, 1), date(2025, 12, 31)),
             Qualification("H1", "o1", LOINC, "4548-4", date(2025, 1, 1), date(2025, 12, 31))]
AS_OF = datetime(2025, 6, 30, tzinfo=UTC)


def dr(code: str | None, *, issued: str | None = "2025-06-20T08:00:00+08:00", cat: str | None = "LAB",
       **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "DiagnosticReport", "id": "r", "status": "final",
                           "code": {"coding": [{"system": LOINC, "code": code}]} if code else {"text": "x"}, **extra}
    if issued:
        out["issued"] = issued
    if cat:
        out["category"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": cat}]}]
    return out


@pytest.mark.parametrize(("report", "observations", "expected", "words"), [
    (dr("2345-7"), [], "recognized", "within 30 days"),
    (dr("2345-7", issued="2025-05-01"), [], "expired", "outside its 30-day window"),
    (dr("2345-7", issued="2024-12-31"), [], "lab-not-qualified", "2024-12-31"),
    (dr("9999-9"), [], "not-in-catalogue", "not in the catalogue"),
    (dr(None, cat=None), [], "not-applicable", "not a laboratory or imaging"),
    (dr(None, cat="RAD"), [], "not-in-catalogue", "imaging"),
    (dr("24331-1"), [{"code": {"coding": [{"system": LOINC, "code": "4548-4"}]}}], "recognized", "4548-4"),
    (dr("2345-7", issued=None, effectiveDateTime="2025-06-25"), [], "recognized", "2025-06-25"),
    (dr("2345-7", issued=None), [], "expired", "neither issued nor effective"),
])
def test_status(report: dict[str, Any], observations: list[dict[str, Any]], expected: str, words: str) -> None:
    status = decide(report, observations, CATALOGUE, "H1", QUALIFIED, AS_OF)
    assert status.code == expected and words in status.rule, status.rule


def test_best_of_several_items_and_own_code_first() -> None:
    obs = [{"code": {"coding": [{"system": LOINC, "code": "2345-7"}]}},
           {"code": {"coding": [{"system": LOINC, "code": "4548-4"}]}}]
    status = decide(dr("panel", issued="2025-05-15"), obs, CATALOGUE, "H1", QUALIFIED, AS_OF)
    assert status.code == "recognized" and status.item == HBA1C  # glucose expired, HbA1c (90 days) not
    own = decide(dr("2345-7", issued="2025-05-15"), obs, CATALOGUE, "H1", QUALIFIED, AS_OF)
    assert own.code == "expired"  # the report's own item decides when it has one


def test_result_time_and_category() -> None:
    issued = result_time({"issued": "2025-01-02T03:04:05Z", "effectiveDateTime": "2024-01-01"})
    period = result_time({"effectivePeriod": {"start": "2025-01-01", "end": "2025-01-03"}})
    assert issued is not None and issued[1].startswith("2025")
    assert period is not None and period[1] == "2025-01-03"
    assert result_time({}) is None
    assert category({"imagingStudy": [{"reference": "ImagingStudy/1"}]}) == "imaging"
    assert category({}, [{"category": [{"coding": [{"code": "laboratory"}]}]}]) == "laboratory"


def test_annotate_marks_only_recognised() -> None:
    report = dr("2345-7")
    status = decide(report, [], CATALOGUE, "H1", QUALIFIED, AS_OF)
    marked = annotate(report, status)
    assert HR_TAG in marked["meta"]["tag"] and "meta" not in report  # a copy
    ext = next(e for e in marked["extension"] if e["url"] == STATUS_EXT)
    assert ext["valueCode"] == "recognized" and ext["extension"][0]["url"] == "rule"
    again = annotate(marked, decide(report, [], CATALOGUE, "H2", [], AS_OF))
    assert HR_TAG not in again["meta"].get("tag", []) and len(again["extension"]) == 1


def test_catalog_csv() -> None:
    text = ("\ufeffitem_code,item_system,item_name,category,validity_days,scope,extra\n"
            "2345-7,http://loinc.org,血糖,检验,30,省,x\n"
            "4548-4,http://loinc.org,,laboratory,30,city\n"
            "4548-4,http://loinc.org,HbA1c,laboratory,0,city\n"
            "\n"
            "CT,http://x,CT,检查,180,医联体\n")
    read = read_catalog(text.encode())
    assert read.read == 4 and [line for line, _ in read.rows] == [2, 6]
    assert read.rows[0][1] == GLUCOSE
    assert read.rows[1][1].scope == "alliance" and read.rows[1][1].category == "imaging"
    assert [(r.row, r.reason.split(" ")[0]) for r in read.rejected] == [(3, "empty"), (4, "validity_days")]
    gb = read_catalog("item_system,item_code,item_name,category,validity_days,scope\nx,1,血糖,检验,3,市\n"
                      .encode("gb18030"))
    assert gb.rows[0][1].name == "血糖"


@pytest.mark.parametrize("body", [b"", b"item_system,item_code\nx,y\n"])
def test_csv_without_the_columns_is_refused(body: bytes) -> None:
    with pytest.raises(BadRequest):
        read_catalog(body)


def test_qualifications_csv() -> None:
    read = read_qualifications(b"institution,item_system,item_code,valid_from,valid_to\n"
                               b"H1,s,c,2025-01-01,2025-12-31\n"
                               b"H1,s,c,2025-12-31,2025-01-01\n"
                               b"H1,s,c,2025/01/01,2025-12-31\n"
                               b"H1,s,c,2025-01-01,2026-12-31\n")
    assert len(read.rows) == 1
    assert [r.row for r in read.rejected] == [3, 4, 5]
    assert "before" in read.rejected[0].reason and "YYYY-MM-DD" in read.rejected[1].reason
    assert "line 2" in read.rejected[2].reason

"""Lab units as UCUM, conversion to the analyte's unit or rejection, local codes mapped to LOINC (issue 17)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from profiles.datasets import labmap, spec, units
from profiles.datasets.convert import Converter, Record, regional_terminology
from tests.datasets import generate as g
from tests.datasets.test_qc import TODAY


@pytest.mark.parametrize(("text", "code"), [
    ("mmol/L", "mmol/L"), ("μmol/L", "umol/L"), ("µmol/l", "umol/L"), ("g/L", "g/L"), ("U/L", "U/L"),
    ("×10^9/L", "10*9/L"), ("10^12/L", "10*12/L"), ("x10*9/L", "10*9/L"), ("%", "%"), ("mg/dL", "mg/dL"),
    ("ｍｍｏｌ／Ｌ", "mmol/L"), ("IU/L", "[IU]/L")])
def test_ucum(text: str, code: str) -> None:
    assert units.ucum(text) == code


def test_check() -> None:
    assert units.check(Decimal("96"), "mg/dL", "2345-7") == units.Checked(Decimal("5.33"), "mmol/L",
                                                                          "96 mg/dL")
    assert units.check(Decimal("96"), "mmol/L", "14771-0").problem  # a mg/dL value labelled mmol/L
    assert units.check(Decimal("5"), "g/L", "14771-0").problem      # not a glucose unit
    assert units.check(Decimal("5"), "furlong", "14771-0").problem
    assert units.check(Decimal("5"), "furlong", None) == units.Checked(Decimal("5"), None)


def _observations(converter: Converter) -> list[dict[str, Any]]:
    return [e["resource"] for b in converter.iter_bundles() for e in b["entry"]
            if e["resource"]["resourceType"] == "Observation"]


def _lab(changes: dict[str, str], source: str = g.INSTITUTIONS[0][0]) -> Converter:
    headers = spec.load("lab-report").headers()
    converter = Converter(spec.load("lab-report"), today=TODAY)
    for n, row in enumerate(g.lab_rows(g.people(1, seed=176)), 1):
        if row["检验项目代码"] == "GLU":
            row = {**row, **changes}
        converter.add(Record(n, {headers[k]: v for k, v in {**row, "医疗卫生机构代码": source}.items()}))
    return converter


def test_glucose_in_mg_dl_is_converted_keeping_the_original() -> None:
    converter = _lab({"检验定量结果": "96", "定量结果计量单位": "mg/dL"})
    glucose = next(o for o in _observations(converter) if o["code"]["text"] == "空腹血糖")
    assert glucose["valueQuantity"] == {"value": 5.33, "unit": "mmol/L", "system": units.UCUM, "code": "mmol/L"}
    assert "96 mg/dL" in glucose["note"][0]["text"]
    wbc = next(o for o in _observations(converter) if o["code"]["text"] == "白细胞计数")
    assert (wbc["valueQuantity"]["system"], wbc["valueQuantity"]["code"]) == (units.UCUM, "10*9/L")


def test_a_wrong_unit_is_rejected_with_a_reason() -> None:
    converter = Converter(spec.load("lab-report"), today=TODAY)
    headers = spec.load("lab-report").headers()
    row = next(r for r in g.lab_rows(g.people(1, seed=176)) if r["检验项目代码"] == "GLU")
    outcome = converter.add(Record(1, {headers[k]: v for k, v in {**row, "检验定量结果": "96"}.items()}))
    assert not outcome.accepted
    assert [(i.element, i.code) for i in outcome.issues if i.severity == "error"] == [
        ("DE04.30.016.00", "unit-mismatch")]


def test_local_codes_map_to_loinc_per_institution() -> None:
    source = "MAPTEST01"
    regional_terminology().add(labmap.conceptmap(source, [("GLU", "14771-0", "空腹血糖"), ("HGB", "718-7", None)]))
    converter = _lab({"LOINC编码": ""}, source)
    glucose = next(o for o in _observations(converter) if o["code"]["text"] == "空腹血糖")
    assert {(c["system"], c["code"]) for c in glucose["code"]["coding"]} == {
        (labmap.ITEM_SYSTEM + source, "GLU"), (labmap.LOINC, "14771-0")}


def test_lab_map_table() -> None:
    maps = labmap.from_table("机构代码,检验项目代码,LOINC编码,检验项目名称\nA1,GLU,14771-0,空腹血糖\nA2,0101,14771-0,\n"
                             .encode("gb18030"))
    assert [(m["url"], [e["code"] for e in m["group"][0]["element"]]) for m in maps] == [
        (labmap.MAP_URL + "A1", ["GLU"]), (labmap.MAP_URL + "A2", ["0101"])]

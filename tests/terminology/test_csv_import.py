"""CSV code tables -> CodeSystem + all-codes ValueSet (terminology.csv_import)."""

from __future__ import annotations

from pathlib import Path

import pytest

from terminology.csv_import import read_csv
from terminology.errors import InvalidCodeTable
from terminology.service import Terminology
from tests.terminology.parameters_util import param

URL = "http://hospital.example.cn/CodeSystem/lab"
TABLE = """code,display,parent,display_en,unit
CHEM,生化,,Chemistry,
GLU,葡萄糖,CHEM,Glucose,mmol/L
TC,总胆固醇,CHEM,Total cholesterol,mmol/L
HEM,血常规,,Haematology,
WBC,白细胞计数,HEM,White blood cell count,10^9/L
"""


def test_table_becomes_code_system_with_hierarchy(term: Terminology) -> None:
    cs, vs = read_csv(TABLE, url=URL, name="LabItems", title="检验项目")
    assert cs["url"] == URL and cs["count"] == 5 and cs["hierarchyMeaning"] == "is-a"
    assert vs["compose"] == {"include": [{"system": URL}]} and vs["url"] == URL + "/vs"
    assert cs["property"] == [{"code": "unit", "type": "string"}]
    term.add(cs)
    term.add(vs)
    assert term.descendants(URL, "CHEM") == {"GLU", "TC"}
    assert param(term.lookup(URL, "GLU"), "display") == "葡萄糖"
    assert term.check(vs["url"], URL, "WBC", "White blood cell count").display_valid is True
    assert [c["code"] for c in term.expand(vs["url"], filter="mmol")["expansion"].get("contains", [])] == []
    assert [c["code"] for c in term.expand(vs["url"], filter="glucose")["expansion"]["contains"]] == ["GLU"]
    assert term.expand(valueset={"resourceType": "ValueSet", "compose": {"include": [
        {"system": URL, "filter": [{"property": "unit", "op": "=", "value": "mmol/L"}]}]}})["expansion"]["total"] == 2


def test_gb18030_file_with_urn_system(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    path.write_bytes("code,display\n01,居民身份证\n".encode("gb18030"))
    cs, vs = read_csv(path, url="urn:oid:1.2.3", name="Ids", valueset_url="http://example.cn/ValueSet/ids")
    assert cs["concept"] == [{"code": "01", "display": "居民身份证"}]
    assert vs["url"] == "http://example.cn/ValueSet/ids"


def test_utf8_bom_bytes() -> None:
    cs, _ = read_csv("\ufeffcode,display\nA,甲\n".encode(), url=URL, name="T")
    assert cs["concept"][0]["code"] == "A"


@pytest.mark.parametrize(("text", "fragment"), [
    ("name,display\nA,甲\n", "code"),
    ("code,display\nA,\n", "no display"),
    ("code,display\nA,甲\nA,乙\n", "Duplicate"),
    ("code,display,parent\nA,甲,Z\n", "parent"),
    ("code,display,parent\nA,甲,B\nB,乙,A\n", "cycle"),
    ("code,display\n,甲\n", "empty"),
])
def test_bad_tables(text: str, fragment: str) -> None:
    with pytest.raises(InvalidCodeTable, match=fragment):
        read_csv(text, url=URL, name="T")


def test_urn_system_needs_value_set_url() -> None:
    with pytest.raises(InvalidCodeTable):
        read_csv("code,display\nA,甲\n", url="urn:oid:1.2.3", name="T")

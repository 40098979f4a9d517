"""The Chinese national tables in terminology/data/cn: structure, provenance marks and the ConceptMaps.

Facts come from /shared/cn/README.md §1 and §4; tables the fact sheet marks [M] live in
data/cn/unconfirmed/ with status draft and say so in their description.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from terminology import cn
from terminology.package import CN_DIR
from terminology.service import Terminology

FILES = sorted(CN_DIR.rglob("*.json"))
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def load(path: Path) -> dict[str, Any]:
    return orjson.loads(path.read_bytes())


def walk(concepts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for concept in concepts for c in (concept, *walk(concept.get("concept", [])))]


CODE_SYSTEMS = [(p, load(p)) for p in FILES if p.name.startswith("CodeSystem-")]


def test_every_file_is_named_after_its_resource() -> None:
    assert len(FILES) >= 26
    for path in FILES:
        resource = load(path)
        assert path.name == f"{resource['resourceType']}-{resource['id']}.json"
        assert resource["url"].startswith(("urn:oid:2.16.156.10011.", cn.BASE))


@pytest.mark.parametrize(("path", "cs"), CODE_SYSTEMS, ids=[p.stem for p, _ in CODE_SYSTEMS])
def test_code_system_shape(path: Path, cs: dict[str, Any]) -> None:
    concepts = walk(cs["concept"])
    assert cs["count"] == len(concepts)
    assert len({c["code"] for c in concepts}) == len(concepts)
    place_names = cs["url"] == cn.ADMINISTRATIVE_DIVISION  # proper names: no English designation
    for concept in concepts:
        assert CHINESE.search(concept["display"]), concept
        assert place_names or any(d["language"] == "en" for d in concept.get("designation", [])), concept
    if cs["url"] != cn.FOLLOWUP_EVALUATION:  # the one table without a known OID
        assert cs["url"].startswith("urn:oid:") and cs["identifier"][0]["value"] == cs["url"]
    unconfirmed = path.parent.name == "unconfirmed"
    assert ("UNCONFIRMED" in cs["description"]) is unconfirmed
    if unconfirmed:
        assert cs["status"] == "draft"


@pytest.mark.parametrize(("system", "codes"), [
    (cn.SEX, {"0", "1", "2", "9"}),
    (cn.MARITAL_STATUS, {"10", "20", "21", "22", "23", "30", "40", "90"}),
    (cn.ETHNIC_GROUP, {f"{n:02d}" for n in range(1, 57)} | {"97", "98"}),
    (cn.ID_DOCUMENT_TYPE, {"01", "02", "03", "04", "05", "06", "07", "99"}),
    (cn.PATIENT_TYPE, {"1", "2", "3", "9"}),
    (cn.FOLLOWUP_EVALUATION, {"1", "2", "3", "4"}),
    (cn.FOLLOWUP_METHOD, {"1", "2", "3", "4", "5", "9"}),
    (cn.ABO_BLOOD_TYPE, {"1", "2", "3", "4", "5"}),
    (cn.RH_BLOOD_TYPE, {"1", "2", "3"}),
    (cn.EXAM_RESULT, {"1", "2", "3"}),
])
def test_code_lists(term: Terminology, system: str, codes: set[str]) -> None:
    cs = term.codesystem(system)
    assert cs is not None and set(cs.concepts) == codes


@pytest.mark.parametrize(("code", "valid", "display", "ancestor"), [
    ("110105", True, "朝阳区", "110000"),  # a district of a municipality sits under the province
    ("440305", True, "南山区", "440300"),  # a district under its prefecture-level city
    ("441900", True, "东莞市", "440000"),  # a prefecture-level city without districts
    ("220581", True, "梅河口市", "220500"),
    ("110100", False, None, None),  # 市辖区 rows are not divisions
    ("999999", False, None, None),
])
def test_administrative_divisions(term: Terminology, code: str, valid: bool, display: str | None,
                                  ancestor: str | None) -> None:
    checked = term.check(cn.VS_ADMINISTRATIVE_DIVISION, cn.ADMINISTRATIVE_DIVISION, code)
    assert (checked.result, checked.display if valid else None) == (valid, display)
    if ancestor is not None:
        assert ancestor in (term.ancestors(cn.ADMINISTRATIVE_DIVISION, code) or set())


@pytest.mark.parametrize("category", ["I10", "I11", "I12", "I13", "I15", "E10", "E11", "E12", "E13", "E14", "I60",
                                      "I61", "I62", "I63", "I64", "I65", "I66", "I67", "I68", "I69", "J44", "J45",
                                      "N18", "C15", "C16", "C18", "C19", "C20", "C22", "C25", "C34", "C50", "C53",
                                      "C61", "C73"])
def test_icd10_subset_categories(term: Terminology, category: str) -> None:
    cs = term.codesystem(cn.ICD10)
    assert cs is not None and cs.content == "fragment" and cs.version == "GB/T 14396-2016"
    concept = cs.get(category)
    assert concept is not None and concept.parents and not concept.abstract
    assert all(child.startswith(category + ".") for child in concept.children)
    block = cs.get(concept.parents[0])
    assert block is not None and block.abstract and block.parents  # block under a chapter


def test_every_concept_map_target_exists(term: Terminology) -> None:
    maps = [load(p) for p in FILES if p.name.startswith("ConceptMap-")]
    assert len(maps) == 6
    for cm in maps:
        assert term.resource("ValueSet", cm["sourceCanonical"]) is not None
        for group in cm["group"]:
            source = term.codesystem(group["source"])
            assert source is not None
            for element in group["element"]:
                assert source.get(element["code"]) is not None
                for target in element["target"]:
                    if "code" in target:
                        check = term.check_code(group["target"], target["code"], target["display"])
                        assert check.result is True and check.display_valid is True, (cm["id"], target)

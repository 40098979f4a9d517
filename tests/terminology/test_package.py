"""The shipped package: lazy loading, index contents, and the build from R4 bundles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from terminology.build_package import BUNDLES, EXPANSIONS, build
from terminology.package import Package

ROOT = Path(__file__).resolve().parents[2]


def test_importing_terminology_reads_no_data() -> None:
    code = ("import terminology, terminology.service, terminology.package as p; "
            "assert p.default_package.cache_info().currsize == 0; "
            "t = terminology.default_terminology(); assert p.default_package.cache_info().currsize == 1; "
            "assert t._package._cache == {}")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_shipped_package_holds_r4_and_chinese_resources(package: Package) -> None:
    assert len(package.urls("CodeSystem")) > 1000
    assert len(package.urls("ValueSet")) > 1300
    assert package.resource("CodeSystem", "http://terminology.hl7.org/CodeSystem/v3-ActCode")["id"] == "v3-ActCode"
    assert package.resource("ValueSet", "http://hl7.org/fhir/ValueSet/marital-status|4.0.1")["id"] == "marital-status"
    assert package.resource("CodeSystem", "urn:oid:2.16.156.10011.2.3.3.4")["id"] == "cn-sex"
    assert package.resource("CodeSystem", "http://example.org/none") is None
    assert package.expansion("http://hl7.org/fhir/ValueSet/condition-code")["expansion"]["contains"]
    assert any(m.url.endswith("cn-sex-to-administrative-gender") for m in package.maps())
    # supplements are packaged but are not code systems a Coding can name
    assert package.resource("CodeSystem", "http://hl7.org/fhir/CodeSystem/example-supplement") is None


def _bundle(*resources: dict[str, Any]) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]})


def test_build_from_bundles(tmp_path: Path) -> None:
    cs = {"resourceType": "CodeSystem", "id": "c", "url": "http://x/cs", "content": "complete",
          "concept": [{"code": "a"}]}
    vs = {"resourceType": "ValueSet", "id": "v", "url": "http://x/vs", "compose": {"include": [{"system": "http://x/cs"}]}}
    supplement = {"resourceType": "CodeSystem", "id": "s", "url": "http://x/sup", "content": "supplement"}
    cm = {"resourceType": "ConceptMap", "id": "m", "url": "http://x/cm", "sourceUri": "http://x/vs",
          "group": [{"source": "http://x/cs", "target": "http://y", "element": []}]}
    (tmp_path / BUNDLES[0]).write_bytes(_bundle(cs, vs, supplement))
    (tmp_path / BUNDLES[1]).write_bytes(_bundle(cs))  # a duplicate is packaged once
    (tmp_path / BUNDLES[2]).write_bytes(_bundle())
    (tmp_path / BUNDLES[3]).write_bytes(_bundle(cm))
    published = {"contains": [{"system": "http://x/cs", "code": "a"}]}
    (tmp_path / EXPANSIONS).write_bytes(_bundle({**vs, "expansion": published}))
    out = tmp_path / "t.zip"
    assert build(tmp_path, out) == {"CodeSystem": 2, "ValueSet": 1, "ConceptMap": 1, "expansions": 1}
    package = Package(out, cn_dir=None)
    assert package.resource("CodeSystem", "http://x/cs") == cs
    assert package.resource("CodeSystem", "http://x/sup") is None
    assert package.expansion("http://x/vs") == {"url": "http://x/vs", "version": None, "expansion": published}
    [summary] = package.maps()
    assert (summary.sources, summary.targets, summary.source_scope) == (("http://x/cs",), ("http://y",), "http://x/vs")

"""An unmapped code degrades (issue 17): a valid resource with the original coding kept, a fallback where
FHIR requires a value, and a QC warning naming the element, the value and its value domain."""

from __future__ import annotations

from typing import Any

from profiles.datasets import spec
from profiles.datasets.run import run
from profiles.validator import Validator
from tests.datasets import generate as g
from tests.datasets.test_convert import errors, validator  # noqa: F401  (fixture)


def _followups(method: str) -> list[dict[str, str]]:
    return [{**row, "随访方式": method} for row in g.followup_rows(g.people(1, seed=171))]


def _visits(result: Any) -> list[dict[str, Any]]:
    return [e["resource"] for b in result.conversion.bundles for e in b["entry"]
            if e["resource"]["resourceType"] == "Encounter"]


def test_followup_method_without_translation_gets_the_fallback_class_and_keeps_the_original(
        validator: Validator) -> None:  # noqa: F811
    result = run(spec.load("hypertension-followup"), g.to_csv(_followups("9")), kind="csv")
    assert result.report["records_rejected"] == 0
    for visit in _visits(result):
        assert visit["class"] == {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB",
                                  "display": "ambulatory"}
        assert visit["type"][0]["coding"][0] == {"system": "urn:oid:2.16.156.10011.2.3.1.183", "code": "9",
                                                 "display": "其他"}
    for bundle in result.conversion.bundles:
        assert errors(validator, bundle) == []
    found = [i for i in result.report["issues"] if i["code"] == "code-unmapped"]
    assert [(i["record"], i["element"], i["severity"]) for i in found] == [
        (1, "DE06.00.108.00", "warning"), (2, "DE06.00.108.00", "warning")]
    message = found[0]["message"]["en"]
    assert "urn:oid:2.16.156.10011.2.3.1.183#9" in message and "cn-followup-method" in message and "AMB" in message


def test_a_mapped_code_has_no_warning() -> None:
    result = run(spec.load("hypertension-followup"), g.to_csv(_followups("2")), kind="csv")
    assert not [i for i in result.report["issues"] if i["code"] == "code-unmapped"]
    assert {v["class"]["code"] for v in _visits(result)} == {"HH"}


def test_no_translation_ever_writes_a_null_code() -> None:
    """Every translated element of every map: a value the map leaves unmatched never gives a null code."""
    from profiles.datasets.convert import Converter

    for name in spec.names():
        dataset = spec.load(name)
        converter = Converter(dataset)
        for element in dataset.elements:
            for write in element.writes:
                if write.kind.startswith("translate"):
                    out = converter._value(write, element, "nonexistent-code", {}, {})
                    assert out is None or out == write.fallback, (name, element.id)

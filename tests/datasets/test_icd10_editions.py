"""National clinical-edition ICD-10 (国家临床版 2.0) diagnoses: QC and the cn-condition profile agree (issue 17)."""

from __future__ import annotations

from typing import Any

import pytest

from profiles.datasets import icd10, spec
from profiles.datasets.run import run
from profiles.validator import Validator
from tests.datasets import generate as g
from tests.datasets.test_convert import errors, validator  # noqa: F401  (fixture)

CODES = ["I10.x00x002", "E11.900", "I10", "E11.9", "I63.900+"]


def _rows(codes: list[str]) -> list[dict[str, str]]:
    people = g.people(len(codes), seed=172)
    return [{**row, "诊断代码": code} for row, code in zip(g.diagnosis_rows(people), codes, strict=True)]


def _conditions(result: Any) -> list[dict[str, Any]]:
    return [e["resource"] for b in result.conversion.bundles for e in b["entry"]
            if e["resource"]["resourceType"] == "Condition"]


@pytest.mark.parametrize(("code", "expected"), [
    ("I10.x00x002", "I10"), ("E11.900", "E11.9"), ("I10.x00", "I10"), ("I63.900x001+", "I63.9+"), ("I10", "I10")])
def test_category(code: str, expected: str) -> None:
    assert icd10.category(code) == expected


@pytest.mark.parametrize("code", ["I 10", "110", "I10.", "I10.x00x0021", "i10", "I10.x00y002"])
def test_malformed(code: str) -> None:
    assert icd10.problem(code) is not None


def test_clinical_edition_codes_pass_qc_and_the_profile(validator: Validator) -> None:  # noqa: F811
    result = run(spec.load("diagnosis"), g.to_csv(_rows(CODES)), kind="csv")
    assert result.report["records_rejected"] == 0, result.report["issues"]
    assert not [i for i in result.report["issues"] if i["element"] == "DE05.01.024.00"]
    for bundle in result.conversion.bundles:
        assert errors(validator, bundle) == []
    codings = {tuple((c["system"], c["code"]) for c in cond["code"]["coding"]) for cond in _conditions(result)}
    assert ((icd10.STANDARD, "I10"), (icd10.CLINICAL, "I10.x00x002")) in codings
    assert ((icd10.STANDARD, "E11.9"), (icd10.CLINICAL, "E11.900")) in codings
    assert ((icd10.STANDARD, "I10"),) in codings
    clinical = next(c for cond in _conditions(result) for c in cond["code"]["coding"] if c["code"] == "E11.900")
    assert clinical["version"] == icd10.CLINICAL_VERSION


def test_malformed_codes_are_still_reported() -> None:
    result = run(spec.load("diagnosis"), g.to_csv(_rows(["I10.x00x002", "I 10", "110"])), kind="csv")
    assert (result.report["records_accepted"], result.report["records_rejected"]) == (1, 2)
    found = [(i["record"], i["code"], i["severity"]) for i in result.report["issues"]
             if i["element"] == "DE05.01.024.00"]
    assert found == [(2, "format", "error"), (3, "format", "error")]


def test_a_condition_with_only_the_clinical_coding_is_judged_by_its_slice(validator: Validator) -> None:  # noqa: F811
    """The regional profile's clinical-edition slice checks the code's shape under its own system."""
    condition = {"resourceType": "Condition", "meta": {"profile": [spec.PROFILE_BASE + "cn-condition"]},
                 "code": {"coding": [{"system": icd10.STANDARD, "version": "GB/T 14396-2016", "code": "I10"},
                                     {"system": icd10.CLINICAL, "version": "国家临床版2.0", "code": "I10.x00x002"}],
                          "text": "高血压3级"},
                 "subject": {"reference": "Patient/x"}, "recordedDate": "2024-05-01"}
    assert errors(validator, condition) == []
    condition["code"]["coding"][1]["code"] = "I10 x00"
    assert any("cn-icd-3" in e or "I10 x00" in e for e in errors(validator, condition))

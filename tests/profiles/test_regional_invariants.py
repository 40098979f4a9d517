"""The regional invariants' native twins (profiles/regional_invariants.py) agree with FHIRPath.

Each case is evaluated twice: by the native function the validator uses, and by fhirpathpy on the
expression text from the profile. Both must give the same verdict, and every registered text must
still be the one the profiles declare (otherwise the native twin would silently stop being used).
"""

from __future__ import annotations

from typing import Any

import pytest

from profiles import invariants
from profiles.definitions import core
from profiles.elements import Invariant
from profiles.regional import definitions
from profiles.regional_invariants import NATIVE

ID = "urn:oid:2.16.156.10011.1.3"
GOOD = "11010519491231002X"  # female, 1949-12-31
MALE = "110105194912310011"  # 17th digit odd
SEX = "http://yidang.org/fhir/StructureDefinition/cn-sex-original"
REGION = "http://yidang.org/fhir/StructureDefinition/cn-region-code"


def _declared() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    resources = [*definitions(), core().structure_definition("Observation")]
    for resource in resources:
        for part in ("snapshot", "differential"):
            for element in (resource.get(part) or {}).get("element", []):
                for constraint in element.get("constraint", []):
                    found.add((constraint["key"], constraint.get("expression", "")))
    return found


def test_every_native_twin_is_for_a_declared_expression() -> None:
    declared = _declared()
    assert [key for key in NATIVE if key not in declared] == []


def _patient(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **fields}


def _rid(value: str, use: str | None = None) -> dict[str, Any]:
    return {"system": ID, "value": value, **({"use": use} if use else {})}


def _sex(code: str) -> dict[str, Any]:
    return {"extension": [{"url": SEX, "valueCoding": {"system": "urn:oid:2.16.156.10011.2.3.3.4", "code": code}}]}


CASES: list[tuple[str, str, Any, bool]] = [
    # key, FHIR type of the focus, focus, expected verdict
    ("cn-id-1", "Identifier", _rid(GOOD), True),
    ("cn-id-1", "Identifier", _rid("110105194912310021"), False),  # check digit
    ("cn-id-1", "Identifier", _rid("11010519490231002X"), False),  # 31 Feb
    ("cn-id-1", "Identifier", _rid("110105200002290021"), True),  # leap day
    ("cn-id-1", "Identifier", _rid("110105190002290025"), False),  # 1900 is not a leap year
    ("cn-id-1", "Identifier", _rid("99010519491231002X"), False),  # no such province
    ("cn-id-1", "Identifier", _rid("11010519491231002x"), False),  # lower-case x is not stored
    ("cn-id-1", "Identifier", _rid("110105210012310021"), False),  # born in the future
    ("cn-id-1", "Identifier", _rid("110105491231002", "old"), True),  # 15-digit kept as old
    ("cn-id-1", "Identifier", {"system": ID}, True),
    ("cn-pat-1", "Patient", _patient(birthDate="1949-12-31", identifier=[_rid(GOOD)]), True),
    ("cn-pat-1", "Patient", _patient(birthDate="1949-12", identifier=[_rid(GOOD)]), True),
    ("cn-pat-1", "Patient", _patient(birthDate="1950-12-31", identifier=[_rid(GOOD)]), False),
    ("cn-pat-1", "Patient", _patient(birthDate="1950-12-31", identifier=[_rid(GOOD, "old")]), True),
    ("cn-pat-1", "Patient", _patient(identifier=[_rid(GOOD)]), True),
    ("cn-pat-1", "Patient", _patient(birthDate="1950-12-31", identifier=[{"system": "x", "value": GOOD}]), True),
    ("cn-pat-2", "Patient", _patient(gender="female", _gender=_sex("2")), True),
    ("cn-pat-2", "Patient", _patient(gender="male", _gender=_sex("2")), False),
    ("cn-pat-2", "Patient", _patient(gender="unknown", _gender=_sex("9")), True),
    ("cn-pat-2", "Patient", _patient(gender="male", _gender=_sex("0")), False),
    ("cn-pat-2", "Patient", _patient(gender="other", _gender=_sex("5")), True),
    ("cn-pat-2", "Patient", _patient(gender="male"), True),
    ("cn-pat-3", "Patient", _patient(gender="female", identifier=[_rid(GOOD)]), True),
    ("cn-pat-3", "Patient", _patient(gender="male", identifier=[_rid(GOOD)]), False),
    ("cn-pat-3", "Patient", _patient(gender="male", identifier=[_rid(MALE)]), True),
    ("cn-pat-3", "Patient", _patient(gender="female", identifier=[_rid(MALE)]), False),
    ("cn-pat-3", "Patient", _patient(gender="unknown", identifier=[_rid(MALE)]), True),
    ("cn-pat-3", "Patient", _patient(identifier=[_rid(MALE)]), True),
    ("cn-reg-1", "Extension", {"url": REGION, "valueCoding": {"code": "110105"}}, True),
    ("cn-reg-1", "Extension", {"url": REGION, "valueCoding": {"code": "990105"}}, False),
    ("cn-reg-1", "Extension", {"url": REGION, "valueCoding": {"code": "11010"}}, False),
    ("cn-lab-1", "CodeableConcept", {"coding": [{"system": "urn:oid:1.2.3", "code": "GLU"}]}, True),
    ("cn-lab-1", "CodeableConcept", {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}, False),
    ("cn-lab-1", "CodeableConcept", {"coding": [{"code": "GLU"}]}, False),
    ("cn-lab-1", "CodeableConcept", {"text": "葡萄糖"}, False),
    ("cn-lab-2", "Observation", {"resourceType": "Observation", "valueString": "阴性"}, True),
    ("cn-lab-2", "Observation", {"resourceType": "Observation", "dataAbsentReason": {"text": "x"}}, True),
    ("cn-lab-2", "Observation", {"resourceType": "Observation", "status": "final"}, False),
    ("cn-lab-3", "Observation", {"resourceType": "Observation", "valueQuantity": {"value": 5, "unit": "mmol/L"}},
     True),
    ("cn-lab-3", "Observation", {"resourceType": "Observation", "valueQuantity": {"value": 5}}, False),
    ("cn-lab-3", "Observation", {"resourceType": "Observation", "valueString": "阴性"}, True),
    ("obs-3", "Range", {"low": {"value": 1}}, True),
    ("obs-3", "Range", {"text": "阴性"}, True),
    ("obs-3", "Range", {"high": {"value": 1}}, True),
    ("obs-3", "Range", {"appliesTo": [{"text": "adult"}]}, False),
]


@pytest.mark.parametrize(("key", "type_path", "focus", "expected"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_native_twin_agrees_with_fhirpath(key: str, type_path: str, focus: Any, expected: bool,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (expression,) = [e for k, e in NATIVE if k == key]
    invariant = Invariant(key=key, severity="error", human="", expression=expression, source="")
    resource = focus if "resourceType" in focus else _patient()
    env = invariants.Env(resource=resource, root=resource)
    evaluator = invariants.Invariants()
    native = evaluator.check(invariant, focus, type_path, env)
    monkeypatch.setattr(invariants, "NATIVE", {})
    fhirpath = evaluator.check(invariant, focus, type_path, env)
    assert (native, fhirpath) == (expected, expected)

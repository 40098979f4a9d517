"""The regional profiles (profiles/regional/): definitions, examples, counter-examples and the GB 11643 check.

Every example must conform to the profile it claims with no error or warning; every
counter-example must fail with the error ``examples/expectations.json`` names (FHIRPath location
and invariant key or issue code) and with no error outside that location, so that each fails for
its one stated reason. Validation runs through :class:`profiles.validator.Validator` with the
regional profiles loaded and the terminology service as binding checker, as the server does.
Profiling: http://hl7.org/fhir/R4/profiling.html; invariants:
http://hl7.org/fhir/R4/conformance-rules.html#constraints.
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from profiles import resident_id
from profiles.bindings import LayeredChecker
from profiles.engine import ProfileEngine
from profiles.issues import ValidationIssue
from profiles.regional import (
    BASE,
    DIRECTORY,
    EXAMPLES,
    Example,
    definitions,
    examples,
    load_regional,
    profile_urls,
    regional_registry,
    with_snapshot,
)
from profiles.registry import ProfileRegistry
from profiles.validator import Validator
from terminology.service import Terminology

ALL = examples()
VALID = [e for e in ALL if e.valid]
INVALID = [e for e in ALL if not e.valid]
PATIENT = BASE + "cn-patient"


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    return regional_registry()


@pytest.fixture(scope="module")
def validator(registry: ProfileRegistry) -> Validator:
    engine = ProfileEngine(registry, terminology=LayeredChecker(registry, Terminology()))
    return Validator(engine=engine)


def errors(issues: list[ValidationIssue]) -> list[ValidationIssue]:
    return [i for i in issues if i.severity in ("error", "fatal")]


def shown(issues: list[ValidationIssue]) -> str:
    return "\n".join(f"{i.severity} {i.code} {i.expression}: {i.message[:200]}" for i in issues)


def unclaimed(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource without meta.profile, to be validated against an explicit profile."""
    stripped = copy.deepcopy(resource)
    stripped.pop("meta", None)
    return stripped


def is_expected(issue: ValidationIssue, example: Example) -> bool:
    return issue.expression == example.expression and (
        issue.code == example.key or issue.message.startswith(example.key + ":"))


# -- definitions -------------------------------------------------------------------------------

@pytest.mark.parametrize("resource", definitions(), ids=lambda r: r["id"])
def test_definition_identity(resource: dict[str, Any]) -> None:
    """File name, id and canonical url agree; everything sits under the one canonical base."""
    kind = resource["resourceType"]
    assert (DIRECTORY / f"{kind}-{resource['id']}.json").is_file()
    assert resource["url"] == f"http://yidang.org/fhir/{kind}/{resource['id']}"
    if kind == "StructureDefinition":
        assert resource["url"] == BASE + resource["id"]
        assert resource["derivation"] == "constraint"
        assert "snapshot" not in resource, "snapshots are generated, not checked in"


@pytest.mark.parametrize("url", profile_urls())
def test_snapshot_generates_without_problems(registry: ProfileRegistry, url: str) -> None:
    elements = registry.snapshot(url)
    assert elements, registry.snapshot_problem(url)
    assert registry.snapshot_warnings(url) == []
    full = with_snapshot(registry, url)
    assert full["snapshot"]["element"] == elements
    assert "snapshot" not in registry.structure_definition(url)  # type: ignore[operator]


def test_load_regional_adds_every_resource() -> None:
    registry = ProfileRegistry()
    before = registry.generation
    urls = load_regional(registry)
    assert len(urls) == len(definitions()) and registry.generation > before
    assert all(registry.get(url) is not None for url in urls)
    with pytest.raises(KeyError):
        with_snapshot(registry, BASE + "no-such-profile")


def test_every_profile_has_examples_and_counter_examples() -> None:
    resource_profiles = {r["url"] for r in definitions()
                         if r["resourceType"] == "StructureDefinition" and r["kind"] == "resource"}
    assert resource_profiles == {e.profile for e in VALID} == {e.profile for e in INVALID}
    names = {p.name for p in EXAMPLES.glob("*-invalid-*.json")}
    assert names == {e.name for e in INVALID}
    assert all(e.name.startswith(e.profile.rsplit("/", 1)[1] + "-") for e in ALL)


# -- examples ----------------------------------------------------------------------------------

@pytest.mark.parametrize("example", VALID, ids=lambda e: e.name)
def test_example_conforms(validator: Validator, example: Example) -> None:
    claimed = validator.validate(example.resource)
    assert not [i for i in claimed if i.severity in ("error", "fatal", "warning")], shown(claimed)
    explicit = validator.validate(unclaimed(example.resource), profiles=[example.profile])
    assert not errors(explicit), shown(explicit)


@pytest.mark.parametrize("example", INVALID, ids=lambda e: e.name)
def test_counter_example_fails_for_its_reason(validator: Validator, example: Example) -> None:
    for issues in (validator.validate(example.resource),
                   validator.validate(unclaimed(example.resource), profiles=[example.profile])):
        found = errors(issues)
        assert any(is_expected(i, example) for i in found), f"{example.reason}\n{shown(issues)}"
        stray = [i for i in found if not i.expression.startswith(example.expression)]
        assert not stray, f"errors besides '{example.reason}':\n{shown(stray)}"


def test_counter_examples_are_well_formed_resources() -> None:
    """Each counter-example is structurally valid R4, so what makes it fail is the profile's rule."""
    for example in INVALID:
        issues = errors(Validator().validate(unclaimed(example.resource)))
        assert not issues, f"{example.name}\n{shown(issues)}"


def test_id_number_sex_digit_disagreeing_with_gender_is_a_warning(validator: Validator) -> None:
    patient = copy.deepcopy(next(e.resource for e in VALID if e.name == "cn-patient-valid-1.json"))
    patient["gender"] = "female"
    del patient["_gender"]
    issues = validator.validate(patient)
    assert not errors(issues), shown(issues)
    assert [(i.severity, i.expression) for i in issues if i.message.startswith("cn-pat-3:")] == [("warning", "Patient")]


# -- GB 11643 公民身份号码 -------------------------------------------------------------------------

ID_NUMBERS = [
    # (number, valid, what is wrong)
    ("440304199001011233", True, ""),
    ("510107198511200028", True, ""),
    ("11010519491231002X", True, ""),  # check character X (10)
    ("440304200002291236", True, ""),  # 29 February of a leap year
    ("650102201010100057", True, ""),
    ("810000199505050014", True, ""),  # 香港 residence permit region
    ("440304199001011234", False, "check character"),
    ("510107198511200027", False, "check character"),
    ("11010519491231002x", False, "upper-case"),
    ("440304199002301232", False, "calendar date"),  # 30 February
    ("44030419000229123X", False, "calendar date"),  # 1900 is not a leap year
    ("440304199004311231", False, "calendar date"),  # 31 April (structure allows 31)
    ("440304209901011235", False, "future"),
    ("990304199001011233", False, "province"),
    ("44030419900101123", False, "18 characters"),
    ("4403041990010112333", False, "18 characters"),
    ("44030419901301123X", False, "birth date YYYYMMDD"),  # month 13 fails the structure
    ("ABCDEFGHIJKLMNOPQR", False, "province code"),
]


@pytest.mark.parametrize(("number", "valid", "why"), ID_NUMBERS)
def test_resident_id_function(number: str, valid: bool, why: str) -> None:
    problem = resident_id.problem(number, today=date(2025, 1, 1))
    assert (problem is None) == valid, problem
    assert resident_id.is_valid(number, today=date(2025, 1, 1)) == valid
    if not valid:
        assert why in str(problem)


@pytest.mark.parametrize(("number", "valid", "why"), ID_NUMBERS)
def test_resident_id_invariant_agrees(validator: Validator, number: str, valid: bool, why: str) -> None:
    """cn-id-1, evaluated by the engine through fhirpathpy, judges every number like the Python function."""
    patient = {"resourceType": "Patient", "meta": {"profile": [PATIENT]},
               "identifier": [{"system": resident_id.SYSTEM, "value": number}],
               "name": [{"text": "测试"}], "gender": "unknown", "birthDate": "1800"}
    flagged = [i for i in validator.validate(patient) if i.message.startswith("cn-id-1:")]
    assert [(i.severity, i.expression) for i in flagged] == ([] if valid else [("error", "Patient.identifier[0]")])


def test_id_invariant_is_the_same_wherever_it_is_used() -> None:
    found = {r["id"]: c["expression"] for r in definitions() if r["resourceType"] == "StructureDefinition"
             for e in r["differential"]["element"] for c in e.get("constraint", ()) if c["key"] == "cn-id-1"}
    assert set(found) == {"cn-patient", "cn-practitioner"}
    assert len(set(found.values())) == 1


def test_old_id_number_is_exempt_from_the_invariant(validator: Validator) -> None:
    patient = {"resourceType": "Patient", "meta": {"profile": [PATIENT]},
               "identifier": [{"use": "old", "system": resident_id.SYSTEM, "value": "440304900101123"}],
               "name": [{"text": "测试"}], "gender": "male", "birthDate": "1990-01-01"}
    assert not errors(validator.validate(patient))


@pytest.mark.parametrize(("first17", "check"), [
    ("44030419900101123", "3"), ("51010719851120002", "8"), ("11010519491231002", "X"), ("44030420000229123", "6"),
])
def test_check_character(first17: str, check: str) -> None:
    assert resident_id.check_character(first17) == check


@pytest.mark.parametrize("bad", ["4403041990010112", "4403041990010112X", "440304199001011233",
                                 "４４０３０４１９９００１０１１２３"])  # full-width digits
def test_check_character_needs_17_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        resident_id.check_character(bad)


@pytest.mark.parametrize(("raw", "stored"), [
    ("11010519491231002x", "11010519491231002X"),
    (" 440304199001011233 ", "440304199001011233"),
    ("11010519491231002X", "11010519491231002X"),
    ("1101051949123100x", "1101051949123100x"),  # not 18 characters: left for the check to reject
])
def test_normalize(raw: str, stored: str) -> None:
    assert resident_id.normalize(raw) == stored


def test_normalized_lower_case_x_is_valid() -> None:
    assert not resident_id.is_valid("11010519491231002x")
    assert resident_id.is_valid(resident_id.normalize("11010519491231002x"))


@pytest.mark.parametrize(("number", "sex"), [("440304199001011233", "1"), ("510107198511200028", "2"),
                                             ("11010519491231002X", "2")])
def test_sex_code(number: str, sex: str) -> None:
    assert resident_id.sex_code(number) == sex


def test_birth_date() -> None:
    assert resident_id.birth_date("440304199001011233") == date(1990, 1, 1)
    assert resident_id.birth_date("440304199002301232") is None


@pytest.mark.parametrize(("old", "new"), [("440304900101123", "440304199001011233"),
                                          ("110105491231002", "11010519491231002X")])
def test_upgrade_first_generation_number(old: str, new: str) -> None:
    assert resident_id.upgrade(old) == new
    assert resident_id.is_valid(new)


@pytest.mark.parametrize("bad", ["44030490010112", "44030490010112A", "4403049001011233"])
def test_upgrade_needs_15_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        resident_id.upgrade(bad)

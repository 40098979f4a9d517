"""The validator's public surface and its stage pipeline (http://hl7.org/fhir/R4/validation.html)."""

from __future__ import annotations

from typing import Any

import pytest

import profiles.validator as validator_module
from profiles.issues import ValidationIssue
from profiles.model import core_model
from profiles.validator import ResourceSite, Validator, default_validator

BUNDLE: dict[str, Any] = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {"resource": {"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Nope"}, "request": {"method": "POST", "url": "Nope"}},
        {"resource": {"resourceType": "Parameters", "parameter": [
            {"name": "p", "resource": {"resourceType": "Basic", "code": {"text": "x"}}}]},
         "request": {"method": "POST", "url": "Parameters"}},
    ],
}


def test_public_surface() -> None:
    assert sorted(validator_module.__all__) == ["ResourceSite", "Stage", "ValidationIssue", "Validator",
                                                "default_validator"]


def test_default_validator_is_cached() -> None:
    assert default_validator() is default_validator()
    assert default_validator().model is core_model()


def test_issue_is_frozen_and_knows_errors() -> None:
    issue = ValidationIssue("error", "structure", "m", "Patient.x")
    with pytest.raises(AttributeError):
        issue.severity = "warning"  # type: ignore[misc]
    assert issue.is_error
    assert ValidationIssue("fatal", "invalid", "m", "").is_error
    assert not ValidationIssue("warning", "value", "m", "Patient").is_error


def test_stages_see_every_resource_with_its_place() -> None:
    seen: list[tuple[str, str, bool]] = []

    def record(site: ResourceSite) -> list[ValidationIssue]:
        seen.append((site.type, site.expression, site.contained))
        return []

    default_validator().with_stages(record).validate(BUNDLE)
    assert seen == [
        ("Bundle", "Bundle", False),
        ("Patient", "Bundle.entry[0].resource", False),
        ("Organization", "Bundle.entry[0].resource.contained[0]", True),
        ("Parameters", "Bundle.entry[2].resource", False),
        ("Basic", "Bundle.entry[2].resource.parameter[0].resource", False),
    ]


def test_stage_issues_follow_structural_ones_in_stage_order() -> None:
    def first(site: ResourceSite) -> list[ValidationIssue]:
        return [ValidationIssue("warning", "business-rule", "first", site.expression)]

    def second(site: ResourceSite) -> list[ValidationIssue]:
        return [ValidationIssue("information", "informational", "second", site.expression)]

    issues = default_validator().with_stages(first).with_stages(second).validate(
        {"resourceType": "Patient", "foo": 1})
    assert [(i.severity, i.message[:6], i.expression) for i in issues] == [
        ("error", "unknow", "Patient.foo"),
        ("warning", "first", "Patient"),
        ("information", "second", "Patient"),
    ]


def test_with_stages_leaves_the_original_alone() -> None:
    base = Validator()
    extended = base.with_stages(lambda site: [])
    assert base.stages == ()
    assert len(extended.stages) == 1
    assert extended.model is base.model


def test_stages_do_not_run_on_unknown_types() -> None:
    calls: list[str] = []
    Validator(stages=[lambda site: calls.append(site.type) or []]).validate({"resourceType": "Nope"})
    assert calls == []


def test_validate_does_not_mutate_its_input() -> None:
    import copy

    before = copy.deepcopy(BUNDLE)
    default_validator().validate(BUNDLE)
    assert before == BUNDLE


def test_too_deep_nesting_is_reported_not_raised() -> None:
    extension: dict[str, Any] = {"url": "http://x", "valueString": "x"}
    for _ in range(5_000):
        extension = {"url": "http://x", "extension": [extension]}
    issues = default_validator().validate({"resourceType": "Patient", "extension": [extension]})
    assert [(i.severity, i.code) for i in issues] == [("fatal", "structure")]


def test_every_resource_type_and_reachable_node_compiles() -> None:
    """Tables compile lazily; make sure no core type can fail at request time."""
    from profiles.structure import COMPLEX, Structure, Table

    structure = Structure(core_model())
    seen: set[object] = set()

    def visit(table: Table) -> None:
        if table.node in seen:
            return
        seen.add(table.node)
        for slot in table.slots.values():
            if slot.kind == COMPLEX:
                assert slot.node is not None
                visit(structure.table(slot.node))

    for type_name in sorted(core_model().definitions.resource_types):
        table = structure.resource_table(type_name)
        assert table is not None, type_name
        assert table.is_resource
        visit(table)
    assert len(seen) > 600

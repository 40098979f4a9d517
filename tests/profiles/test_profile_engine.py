"""The profile engine's machinery: invariants, caches, configuration, binding checkers.

http://hl7.org/fhir/R4/conformance-rules.html#constraints (invariants),
http://hl7.org/fhirpath/N1/#comparison (date precision), http://hl7.org/fhir/R4/terminologies.html#strength.
"""

from __future__ import annotations

from typing import Any

import pytest

from profiles.bindings import CachedChecker, CodeCheck, InlineChecker, LayeredChecker
from profiles.elements import Invariant
from profiles.engine import ProfileEngine
from profiles.invariants import NATIVE, Env, Invariants, Skipped, date_less_or_equal
from profiles.registry import ProfileRegistry

URL = "http://example.org/fhir/StructureDefinition/named"
NAMED: dict[str, Any] = {
    "resourceType": "StructureDefinition", "url": URL, "name": "Named", "status": "draft", "kind": "resource",
    "abstract": False, "type": "Patient", "derivation": "constraint",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
    "differential": {"element": [{"id": "Patient.name", "path": "Patient.name", "min": 1}]}}


@pytest.mark.parametrize(("start", "end", "expected"), [
    ("2020-01-01", "2020-01-02", True),
    ("2020-01-02", "2020-01-01", False),
    ("2020", "2021-05", True),
    ("2023-06-21", "2023-06-21T06:20:00Z", None),  # equal at the common precision: empty
    ("2023-06-20", "2023-06-21T06:20:00Z", True),
    ("2020-01-01T10:00:00+08:00", "2020-01-01T03:00:00Z", True),  # time zones
    ("2020-01-01T10:00:00+08:00", "2020-01-01T01:00:00Z", False),
])
def test_date_comparison_follows_fhirpath_precision_rules(start: str, end: str, expected: bool | None) -> None:
    assert date_less_or_equal(start, end) is expected


def _core_invariant(key: str) -> Invariant:
    for (native_key, expression) in NATIVE:
        if native_key == key:
            return Invariant(key, "error", "", expression, "")
    raise KeyError(key)


NATIVE_CASES: list[tuple[str, str, Any, dict[str, Any]]] = [
    ("per-1", "Period", {"start": "2020-01-01", "end": "2021-01-01"}, {}),
    ("per-1", "Period", {"start": "2021-01-01", "end": "2020-01-01"}, {}),
    ("qty-3", "Quantity", {"code": "kg"}, {}),
    ("qty-3", "Quantity", {"code": "kg", "system": "http://unitsofmeasure.org"}, {}),
    ("att-1", "Attachment", {"data": "YQ=="}, {}),
    ("ext-1", "Extension", {"url": "x", "valueString": "a", "extension": [{"url": "y", "valueString": "b"}]}, {}),
    ("ext-1", "Extension", {"url": "x", "valueString": "a"}, {}),
    ("dom-6", "Patient", {"resourceType": "Patient"}, {}),
    ("dom-4", "Patient", {"resourceType": "Patient", "contained": [{"resourceType": "Organization",
                                                                   "meta": {"versionId": "1"}}]}, {}),
    ("obs-6", "Observation", {"resourceType": "Observation", "valueString": "x", "dataAbsentReason": {"text": "y"}},
     {}),
    ("obs-7", "Observation", {"resourceType": "Observation", "code": {"coding": [{"code": "a"}]}, "valueString": "x",
                              "component": [{"code": {"coding": [{"code": "a"}]}}]}, {}),
    ("obs-7", "Observation", {"resourceType": "Observation", "code": {"coding": [{"code": "a"}]}, "valueString": "x",
                              "component": [{"code": {"coding": [{"code": "b"}]}}]}, {}),
    ("ref-1", "Reference", {"reference": "#a"}, {"contained": [{"resourceType": "Patient", "id": "a"}]}),
    ("ref-1", "Reference", {"reference": "#b"}, {"contained": [{"resourceType": "Patient", "id": "a"}]}),
]


@pytest.mark.parametrize(("key", "type_path", "value", "root"), NATIVE_CASES)
def test_native_invariants_agree_with_fhirpath(key: str, type_path: str, value: Any, root: dict[str, Any]) -> None:
    """The native fast paths give what fhirpathpy gives for the same core expression."""
    invariant = _core_invariant(key)
    renamed = Invariant(key + "-fhirpath", "error", "", invariant.expression, "")
    resource = value if "resourceType" in value else {"resourceType": "Patient", **root}
    env = Env(resource, {"resourceType": "Patient", **root})
    invariants = Invariants()
    assert invariants.check(invariant, value, type_path, env) == invariants.check(renamed, value, type_path, env)


def test_expressions_compile_once_and_unsupported_ones_are_skipped() -> None:
    invariants = Invariants()
    assert invariants.compiled("name.exists()") is invariants.compiled("name.exists()")
    skipped = invariants.check(Invariant("x-1", "error", "", "conformsTo('http://x')", ""), {}, "Patient",
                               Env({}, {}))
    assert isinstance(skipped, Skipped) and "conformsTo()" in skipped.reason
    broken = invariants.check(Invariant("x-2", "error", "", "name.where(", ""), {}, "Patient", Env({}, {}))
    assert isinstance(broken, Skipped)


def test_system_type_names_in_type_tests() -> None:
    invariant = Invariant("que-7", "error", "", "operator = 'exists' implies (answer is Boolean)", "")
    check = Invariants().check
    env = Env({}, {})
    assert check(invariant, {"operator": "exists", "answerBoolean": True}, "Questionnaire.item.enableWhen", env)
    assert not check(invariant, {"operator": "exists", "answerString": "x"}, "Questionnaire.item.enableWhen", env)


def test_resolve_and_has_value_are_available_to_fhirpath() -> None:
    target = {"resourceType": "Practitioner", "id": "pr"}
    env = Env({}, {}, lambda reference: target if reference == "#pr" else None)
    check = Invariants().check
    invariant = Invariant("t-1", "error", "", "member.resolve().ofType(Practitioner).exists()", "")
    assert check(invariant, {"member": {"reference": "#pr"}}, "CareTeam.participant", env) is True
    assert check(Invariant("t-2", "error", "", "start.hasValue()", ""), {"start": "2020"}, "Period", env) is True


def test_core_invariants_can_be_switched_off_for_unprofiled_resources() -> None:
    period = {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
              "period": {"start": "2021-01-01", "end": "2020-01-01"}}
    registry = ProfileRegistry()
    registry.add({**NAMED, "differential": {"element": []}})
    on = ProfileEngine(registry, best_practice=None)
    off = ProfileEngine(registry, core_invariants=False, best_practice=None)
    assert [i.code for i in on.validate(period)] == ["invariant"]
    assert off.validate(period) == []
    profiled = {"resourceType": "Patient", "meta": {"profile": [URL]}, "contained": [{"resourceType": "Patient",
                                                                                       "id": "x"}]}
    assert [i.code for i in off.validate(profiled)] == ["invariant"]  # a claimed profile's dom-3 still runs


def test_best_practice_severity_is_configurable() -> None:
    patient = {"resourceType": "Patient"}
    assert [i.severity for i in ProfileEngine().validate(patient)] == ["warning"]
    assert [i.severity for i in ProfileEngine(best_practice="information").validate(patient)] == ["information"]
    assert ProfileEngine(best_practice=None).validate(patient) == []


def test_registry_changes_reach_the_engine() -> None:
    registry = ProfileRegistry()
    engine = ProfileEngine(registry, best_practice=None)
    patient = {"resourceType": "Patient", "meta": {"profile": [URL]}}
    assert [i.code for i in engine.validate(patient)] == ["not-found"]
    registry.add(NAMED)
    assert [i.expression for i in engine.validate(patient)] == ["Patient.name"]
    registry.add({**NAMED, "differential": {"element": [{"id": "Patient.gender", "path": "Patient.gender",
                                                           "min": 1}]}})
    assert [i.expression for i in engine.validate(patient)] == ["Patient.gender"]
    registry.remove(URL)
    assert [i.code for i in engine.validate(patient)] == ["not-found"]


class CountingChecker:
    def __init__(self) -> None:
        self.calls = 0

    def check(self, valueset_url: str, system: str | None, code: str, display: str | None = None) -> CodeCheck:
        self.calls += 1
        return CodeCheck(code == "final", "")


def test_binding_answers_are_cached() -> None:
    counting = CountingChecker()
    cached = CachedChecker(counting)
    for _ in range(3):
        assert cached.check("http://vs", None, "final").result is True
    assert counting.calls == 1
    engine = ProfileEngine(terminology=counting, best_practice=None)
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    for _ in range(3):
        assert engine.validate(observation) == []
    assert counting.calls == 2  # once by the test above, once for Observation.status


VALUE_SET = {"resourceType": "ValueSet", "url": "http://example.org/vs/a", "status": "active", "compose": {
    "include": [{"system": "http://example.org/cs/a", "concept": [{"code": "x"}]},
                {"system": "http://example.org/cs/b"}, {"valueSet": ["http://example.org/vs/c"]}],
    "exclude": [{"system": "http://example.org/cs/b", "concept": [{"code": "b2"}]}]}}
CODE_SYSTEM = {"resourceType": "CodeSystem", "url": "http://example.org/cs/b", "status": "active",
               "content": "complete", "concept": [{"code": "b1", "concept": [{"code": "b1a"}]}, {"code": "b2"}]}
NESTED = {"resourceType": "ValueSet", "url": "http://example.org/vs/c", "status": "active",
          "expansion": {"contains": [{"system": "http://example.org/cs/c", "code": "c1"}]}}
FILTERED = {"resourceType": "ValueSet", "url": "http://example.org/vs/f", "status": "active", "compose": {
    "include": [{"system": "http://loinc.org", "filter": [{"property": "x", "op": "=", "value": "y"}]}]}}


@pytest.mark.parametrize(("url", "system", "code", "expected"), [
    ("http://example.org/vs/a", "http://example.org/cs/a", "x", True),
    ("http://example.org/vs/a", "http://example.org/cs/b", "b1a", True),
    ("http://example.org/vs/a", "http://example.org/cs/b", "b2", False),
    ("http://example.org/vs/a", "http://example.org/cs/c", "c1", True),
    ("http://example.org/vs/a", None, "x", True),
    ("http://example.org/vs/a", "http://example.org/cs/a", "y", False),
    ("http://example.org/vs/f", "http://loinc.org", "1-1", None),
    ("http://example.org/vs/unknown", "http://loinc.org", "1-1", None),
])
def test_inline_checker(url: str, system: str | None, code: str, expected: bool | None) -> None:
    registry = ProfileRegistry()
    registry.add_all([VALUE_SET, CODE_SYSTEM, NESTED, FILTERED])
    assert InlineChecker(registry).check(url, system, code).result is expected


def test_layered_checker_prefers_registry_value_sets() -> None:
    registry = ProfileRegistry()
    registry.add(VALUE_SET)
    service = CountingChecker()
    layered = LayeredChecker(registry, service)
    assert layered.check("http://example.org/vs/a", "http://example.org/cs/a", "x").result is True
    assert service.calls == 0
    assert layered.check("http://hl7.org/fhir/ValueSet/observation-status", None, "final").result is True
    assert service.calls == 1

"""The SearchParameter registry: http://hl7.org/fhir/R4/searchparameter-registry.html (per-base
expressions, common parameters, composites' components) and run-time SearchParameters."""

from __future__ import annotations

import pytest

from server.errors import Unprocessable
from server.search.index import Indexer
from server.search.registry import SearchRegistry
from tests.search.evaluate import World, search_ids


@pytest.mark.parametrize(("type_", "code", "kind", "expression"), [
    ("Observation", "patient", "reference", "Observation.subject.where(resolve() is Patient)"),
    ("CarePlan", "patient", "reference", "CarePlan.subject.where(resolve() is Patient)"),
    ("RiskAssessment", "date", "date", "(RiskAssessment.occurrence as dateTime)"),
    ("Patient", "_tag", "token", "Resource.meta.tag"),
    ("Patient", "_lastUpdated", "date", "Resource.meta.lastUpdated"),
    ("Observation", "combo-code-value-quantity", "composite", "Observation | Observation.component"),
    ("ActivityDefinition", "depends-on", "reference",
     "ActivityDefinition.relatedArtifact.where(type='depends-on').resource | ActivityDefinition.library"),
    ("Patient", "_text", "string", None),
])
def test_expressions_are_split_per_base(registry: SearchRegistry, type_: str, code: str, kind: str,
                                        expression: str | None) -> None:
    param = registry.get(type_, code)
    assert param is not None and param.type == kind and param.expression == expression


def test_lookup(registry: SearchRegistry) -> None:
    assert registry.get("Patient", "nope") is None
    assert registry.get("Bundle", "_text") is None  # Bundle is not a DomainResource
    patient = registry.for_type("Patient")
    assert {"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source", "_text", "_content", "name",
            "birthdate"} <= set(patient)
    near = registry.get("Location", "near")
    assert near is not None and not registry.is_supported(near)
    assert not registry.is_supported(patient["_text"]) and registry.is_supported(patient["name"])


def test_composite_components(registry: SearchRegistry) -> None:
    param = registry.get("Observation", "code-value-quantity")
    assert param is not None
    assert [(c.param.code, c.param.type, c.expression) for c in param.components] == [
        ("code", "token", "code"), ("value-quantity", "quantity", "value.as(Quantity)")]
    assert param.components[0].param.base == "Observation"


CUSTOM = {
    "resourceType": "SearchParameter", "url": "http://yidang.cn/fhir/SearchParameter/patient-ethnicity",
    "name": "ethnicity", "status": "active", "code": "ethnicity", "base": ["Patient"], "type": "token",
    "expression": "Patient.extension('http://yidang.cn/fhir/StructureDefinition/ethnicity').value",
}


def test_runtime_parameter_becomes_active_and_removable(indexer: Indexer) -> None:
    registry = SearchRegistry()
    local = Indexer(registry)
    world = World(local)
    before = registry.version
    added = registry.add(CUSTOM)
    assert registry.version > before and [d.base for d in added] == ["Patient"]
    world.add({"resourceType": "Patient", "id": "p1", "extension": [
        {"url": "http://yidang.cn/fhir/StructureDefinition/ethnicity",
         "valueCoding": {"system": "http://yidang.cn/ethnicity", "code": "01", "display": "汉族"}}]})
    world.add({"resourceType": "Patient", "id": "p2"})
    assert search_ids(world, ("Patient",), "ethnicity=01") == ["p1"]
    assert search_ids(world, ("Patient",), "ethnicity:text=汉") == ["p1"]
    registry.remove(CUSTOM["url"])
    assert registry.get("Patient", "ethnicity") is None
    assert all(e.param != "ethnicity" for e in local.entries(world.rows[("Patient", "p1")].resource))
    registry.remove("http://hl7.org/fhir/SearchParameter/Patient-name")  # core parameters stay
    assert registry.get("Patient", "name") is not None


@pytest.mark.parametrize("broken", [
    {**CUSTOM, "type": "fuzzy"},
    {**CUSTOM, "code": None},
    {**CUSTOM, "expression": "Patient.name.("},
    {**CUSTOM, "type": "composite", "component": [{"definition": "http://nope", "expression": "code"}]},
    {**CUSTOM, "resourceType": "Patient"},
])
def test_invalid_runtime_parameters(broken: dict[str, object]) -> None:
    with pytest.raises(Unprocessable):
        SearchRegistry().add(broken)

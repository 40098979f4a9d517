"""Snapshot generation from a differential (http://hl7.org/fhir/R4/profiling.html#snapshot).

Each case is a differential on a core base and what the generated snapshot must contain.
"""

from __future__ import annotations

from typing import Any

import pytest

from profiles.registry import ProfileRegistry
from profiles.snapshot import SnapshotError, assign_ids, generate_snapshot

BASE = "http://hl7.org/fhir/StructureDefinition/"


def profile(type_name: str, *elements: dict[str, Any], base: str | None = None) -> dict[str, Any]:
    return {"resourceType": "StructureDefinition", "url": f"http://example.org/sd/{type_name}-{len(elements)}",
            "name": "Test", "status": "draft", "kind": "resource", "abstract": False, "type": type_name,
            "derivation": "constraint", "baseDefinition": base or BASE + type_name,
            "differential": {"element": list(elements)}}


def snapshot(sd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    registry = ProfileRegistry()
    elements = generate_snapshot(sd, registry.snapshot)
    return {e["id"]: e for e in elements}


def test_cardinality_and_fixed_values_are_merged_onto_the_base() -> None:
    by_id = snapshot(profile("Patient", {"id": "Patient.name", "path": "Patient.name", "min": 1, "max": "2"},
                             {"id": "Patient.gender", "path": "Patient.gender", "fixedCode": "female"}))
    assert (by_id["Patient.name"]["min"], by_id["Patient.name"]["max"]) == (1, "2")
    assert by_id["Patient.name"]["base"] == {"path": "Patient.name", "min": 0, "max": "*"}
    assert by_id["Patient.gender"]["fixedCode"] == "female"
    assert "Patient.birthDate" in by_id  # untouched base elements stay


def test_constraints_are_added_to_the_base_ones() -> None:
    constraint = {"key": "x-1", "severity": "error", "human": "h", "expression": "family.exists()"}
    by_id = snapshot(profile("Patient", {"id": "Patient.name", "path": "Patient.name", "constraint": [constraint]}))
    keys = [c["key"] for c in by_id["Patient.name"]["constraint"]]
    assert "ele-1" in keys and "x-1" in keys


@pytest.mark.parametrize("path", ["Observation.valueQuantity", "Observation.value[x]"])
def test_a_concrete_choice_name_restricts_the_choice(path: str) -> None:
    element: dict[str, Any] = {"path": path, "maxValueQuantity": {"value": 5}}
    if path.endswith("[x]"):
        element["type"] = [{"code": "Quantity"}]
    by_id = snapshot(profile("Observation", element))
    value = by_id["Observation.value[x]"]
    assert [t["code"] for t in value["type"]] == ["Quantity"]
    assert value["maxValueQuantity"] == {"value": 5}


def test_paths_below_a_complex_type_expand_the_type() -> None:
    by_id = snapshot(profile("Patient", {"id": "Patient.identifier.system", "path": "Patient.identifier.system",
                                         "min": 1}))
    assert by_id["Patient.identifier.system"]["min"] == 1
    assert by_id["Patient.identifier.value"]["path"] == "Patient.identifier.value"
    assert by_id["Patient.identifier.assigner"]["base"]["path"] == "Identifier.assigner"


def test_nested_expansion_through_an_implied_choice_type() -> None:
    by_id = snapshot(profile("Observation", {"path": "Observation.valueQuantity.code", "fixedCode": "kg"}))
    assert by_id["Observation.value[x].code"]["fixedCode"] == "kg"
    assert [t["code"] for t in by_id["Observation.value[x]"]["type"]] == ["Quantity"]


def test_slices_copy_the_sliced_element_and_get_their_own_children() -> None:
    by_id = snapshot(profile(
        "Patient",
        {"id": "Patient.identifier", "path": "Patient.identifier",
         "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
        {"id": "Patient.identifier:nhs", "path": "Patient.identifier", "sliceName": "nhs", "min": 1, "max": "1"},
        {"id": "Patient.identifier:nhs.system", "path": "Patient.identifier.system", "fixedUri": "urn:nhs"},
        {"id": "Patient.identifier:other", "path": "Patient.identifier", "sliceName": "other"},
    ))
    ids = list(by_id)
    assert ids.index("Patient.identifier") < ids.index("Patient.identifier:nhs") < ids.index("Patient.identifier:other")
    nhs = by_id["Patient.identifier:nhs"]
    assert (nhs["sliceName"], nhs["min"], nhs["max"]) == ("nhs", 1, "1")
    assert "slicing" not in nhs
    assert by_id["Patient.identifier:nhs.system"]["fixedUri"] == "urn:nhs"
    assert by_id["Patient.identifier:other"]["min"] == 0


def test_re_slices_are_slices_of_a_slice() -> None:
    by_id = snapshot(profile(
        "Patient",
        {"id": "Patient.identifier", "path": "Patient.identifier",
         "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
        {"id": "Patient.identifier:a", "path": "Patient.identifier", "sliceName": "a",
         "slicing": {"discriminator": [{"type": "value", "path": "use"}], "rules": "open"}},
        {"id": "Patient.identifier:a/b", "path": "Patient.identifier", "sliceName": "a/b", "min": 1},
    ))
    assert by_id["Patient.identifier:a/b"]["sliceName"] == "a/b"
    assert by_id["Patient.identifier:a"]["slicing"]["discriminator"][0]["path"] == "use"


def test_content_reference_expands_the_referenced_element() -> None:
    by_id = snapshot(profile("Questionnaire", {"id": "Questionnaire.item.item.linkId",
                                               "path": "Questionnaire.item.item.linkId", "maxLength": 10}))
    assert by_id["Questionnaire.item.item.linkId"]["maxLength"] == 10
    assert by_id["Questionnaire.item.item.type"]["path"] == "Questionnaire.item.item.type"


def test_extension_profiles_build_on_extension() -> None:
    sd = profile("Extension",
                 {"id": "Extension.url", "path": "Extension.url", "fixedUri": "http://example.org/ext"},
                 {"id": "Extension.value[x]", "path": "Extension.value[x]", "type": [{"code": "string"}], "min": 1})
    sd["kind"] = "complex-type"
    by_id = snapshot(sd)
    assert by_id["Extension.url"]["fixedUri"] == "http://example.org/ext"
    assert by_id["Extension.value[x]"]["min"] == 1


def test_ids_are_derived_from_paths_and_slice_context() -> None:
    elements = assign_ids([{"path": "Extension.extension", "sliceName": "a"}, {"path": "Extension.extension.url"},
                           {"path": "Extension.url"}])
    assert [e["id"] for e in elements] == ["Extension.extension:a", "Extension.extension:a.url", "Extension.url"]


def test_unmatched_elements_are_reported_and_skipped_or_raised() -> None:
    sd = profile("Patient", {"path": "Patient.dateOfBirth", "min": 1}, {"path": "Patient.name", "min": 1})
    registry = ProfileRegistry()
    problems: list[str] = []
    by_id = {e["id"]: e for e in generate_snapshot(sd, registry.snapshot, problems=problems)}
    assert by_id["Patient.name"]["min"] == 1
    assert problems and "Patient.dateOfBirth" in problems[0]
    with pytest.raises(SnapshotError):
        generate_snapshot(sd, registry.snapshot)


def test_an_unknown_base_cannot_be_built_on() -> None:
    with pytest.raises(SnapshotError, match="unknown"):
        generate_snapshot(profile("Patient", base="http://example.org/nope"), ProfileRegistry().snapshot)


def test_a_type_that_disagrees_with_the_base_is_refused() -> None:
    with pytest.raises(SnapshotError, match="type"):
        generate_snapshot(profile("Patient", base=BASE + "Observation"), ProfileRegistry().snapshot)

"""The compiled FHIRPath extractors: every R4 core expression compiles, the results carry FHIR
types, and on the shared samples they agree with fhirpathpy (the reference interpreter) for
every parameter that has values (http://hl7.org/fhir/R4/searchparameter-registry.html)."""

from __future__ import annotations

import copy
import gzip
import json
from decimal import Decimal
from typing import Any

import fhirpathpy
import pytest
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from server.search.extract import compile_expression, reference_type
from server.search.fhirpath import FhirPathSyntax, parse, split_union
from server.search.registry import SearchRegistry
from tests.paths import SAMPLES


def test_every_core_expression_compiles(registry: SearchRegistry) -> None:
    defs = [d for d in registry.all() if d.expression]
    assert len({d.url for d in registry.all()}) == 1375
    fallback = [(d.base, d.code) for d in defs if not compile_expression(d.expression, d.base).compiled]
    assert fallback == []
    components = {(c.expression, d.base) for d in registry.all() for c in d.components}
    assert all(parse(expr) for expr, _ in components)


OBS = {
    "resourceType": "Observation", "id": "o", "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "1"}]},
    "subject": {"reference": "Patient/1"}, "performer": [{"reference": "#pr"}, {"reference": "http://x/Group/2"}],
    "contained": [{"resourceType": "Practitioner", "id": "pr"}],
    "valueQuantity": {"value": 5, "unit": "mg"}, "effectivePeriod": {"start": "2020"},
    "component": [{"code": {"text": "a"}, "valueQuantity": {"value": 1}},
                  {"code": {"text": "b"}, "valueString": "s"}],
}


@pytest.mark.parametrize(("expression", "expected"), [
    ("Observation.subject", [({"reference": "Patient/1"}, "Reference")]),
    ("Observation.value", [({"value": 5, "unit": "mg"}, "Quantity")]),
    ("(Observation.value as Quantity)", [({"value": 5, "unit": "mg"}, "Quantity")]),
    ("Observation.value.as(string)", []),
    ("Observation.effective", [({"start": "2020"}, "Period")]),
    ("Observation.component.value.ofType(string)", [("s", "string")]),
    ("Observation.component.value as Quantity", [({"value": 1}, "Quantity")]),
    ("Observation.component[1].code.text", [("b", "string")]),
    ("Observation.component.code.text.first()", [("a", "string")]),
    ("Observation.performer.where(resolve() is Practitioner)", [({"reference": "#pr"}, "Reference")]),
    ("Observation.performer.where(resolve() is Group)", [({"reference": "http://x/Group/2"}, "Reference")]),
    ("Observation.component.where(code.text = 'b').value", [("s", "string")]),
    ("Observation.component.where(value.exists() and code.text != 'a').code.text", [("b", "string")]),
    ("Observation.code.coding.where(system='http://loinc.org').code", [("1", "code")]),
    ("Resource.id", [("o", "string")]),
    ("Patient.name", []),
    ("Observation.status | Observation.id", [("final", "code"), ("o", "string")]),
    ("Observation.contained.id", [("pr", "string")]),
    ("Observation.value is Quantity", [(True, "boolean")]),
])
def test_compiled_results(expression: str, expected: list[tuple[Any, str]]) -> None:
    extractor = compile_expression(expression, "Observation")
    assert extractor.compiled
    assert extractor(OBS) == expected


def test_relative_and_resource_variable() -> None:
    extractor = compile_expression("%resource.status | code.text", "Observation.component")
    item = (OBS["component"][0], "BackboneElement", "Observation.component")
    assert [v for v, _, _ in extractor.nodes_from(item, OBS)] == ["final", "a"]


def test_fallback_to_fhirpathpy_types_by_shape() -> None:
    extractor = compile_expression("Patient.name.select(family) | Patient.link.other.where(resolve() is Patient)",
                                   "Patient")
    assert not extractor.compiled
    patient = {"resourceType": "Patient", "name": [{"family": "X"}],
               "link": [{"other": {"reference": "Patient/2"}, "type": "seealso"},
                        {"other": {"reference": "RelatedPerson/3"}, "type": "seealso"}]}
    assert extractor(patient) == [("X", "string"), ({"reference": "Patient/2"}, "Reference")]


@pytest.mark.parametrize(("value", "found"), [
    ({"reference": "Patient/1"}, "Patient"), ({"reference": "http://x/fhir/Patient/1/_history/2"}, "Patient"),
    ({"reference": "urn:uuid:1"}, None), ({"reference": "urn:uuid:1", "type": "Group"}, "Group"),
    ({"reference": "Nope/1"}, None), ({"identifier": {"value": "1"}}, None), ("Questionnaire/q|1.0", "Questionnaire"),
])
def test_reference_type(value: Any, found: str | None) -> None:
    assert reference_type(value, {}) == found


@pytest.mark.parametrize(("text", "parts"), [
    ("A.b | B.c.where(x = 'a|b') | (C.d as X)", ["A.b", "B.c.where(x = 'a|b')", "(C.d as X)"]),
    ("A", ["A"]),
])
def test_split_union(text: str, parts: list[str]) -> None:
    assert split_union(text) == parts


@pytest.mark.parametrize("text", ["A.(", "A.b[", "A..b", "'open", "A.b @"])
def test_syntax_errors(text: str) -> None:
    with pytest.raises(FhirPathSyntax):
        parse(text)


def _samples() -> list[dict[str, Any]]:
    out = [json.loads(p.read_text()) for p in sorted((SAMPLES / "r4-examples").glob("*.json"))]
    for p in sorted((SAMPLES / "synthea").glob("*.json.gz"))[:3]:
        out += [e["resource"] for e in json.loads(gzip.decompress(p.read_bytes()))["entry"]]
    return out


def _norm(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=lambda d: float(d) if isinstance(d, Decimal) else str(d))


@pytest.mark.slow
def test_agrees_with_fhirpathpy_on_samples(registry: SearchRegistry) -> None:
    """Same values as fhirpathpy for every (resource, parameter) with values. fhirpathpy raises on
    ``as`` over several items (``Observation.component.value as Quantity``); those pairs are
    counted, not compared. Duplicates are ignored: entries are de-duplicated anyway."""
    root: dict[str, Any] = {}

    def resolve(inputs: list[Any]) -> list[Any]:
        return [ResourceNode.create_node({"resourceType": rt}, rt) for v in inputs if (rt := reference_type(v, root))]

    options = {"userInvocationTable": {"resolve": {"fn": resolve, "arity": {0: []}}}}
    compiled: dict[str, Any] = {}
    agree, disagree, fhirpathpy_errors = 0, [], 0
    for resource in _samples():
        rt = resource["resourceType"]
        root.clear()
        root.update(resource)
        for code, param in registry.for_type(rt).items():
            if not param.expression:
                continue
            mine = {_norm(v) for v, _ in compile_expression(param.expression, rt)(resource)}
            expression = param.expression.replace("Resource.", rt + ".")
            if expression not in compiled:
                compiled[expression] = fhirpathpy.compile(expression, model=models["r4"], options=options)
            try:
                theirs = {_norm(v) for v in compiled[expression](copy.deepcopy(resource), {})}
            except Exception:  # fhirpathpy raises bare exceptions for 'as' on collections
                fhirpathpy_errors += 1
                continue
            if mine or theirs:
                if mine == theirs:
                    agree += 1
                else:
                    disagree.append((rt, resource.get("id"), code, sorted(mine)[:2], sorted(theirs)[:2]))
    assert disagree == []
    assert agree > 15000
    assert fhirpathpy_errors < 0.02 * agree

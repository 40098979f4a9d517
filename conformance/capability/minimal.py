"""Minimal valid instances of any R4 resource type, derived from the core StructureDefinitions.

The ``capability`` suite creates one resource of every type a server declares. Rather than keep
a hand-written table of 146 resources, each instance is built from its type's snapshot: every
element with ``min >= 1`` (at the root, and inside what is added) gets the simplest value of its
type, and a ``code`` bound to a ``required`` ValueSet gets the first code that ValueSet lists
(http://hl7.org/fhir/R4/terminologies.html#required). :data:`OVERRIDES` corrects the few types
whose invariants need more than their cardinalities say (checked by the tests: every instance
validates with the full validator).
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from profiles.definitions import core
from profiles.model import Element, Node, core_model
from terminology.package import default_package

PRIMITIVES: dict[str, Any] = {
    "boolean": True, "integer": 1, "positiveInt": 1, "unsignedInt": 1, "decimal": 1.0,
    "string": "conformance", "markdown": "conformance", "uri": "http://example.org/conformance",
    "url": "http://example.org/conformance", "canonical": "http://example.org/conformance",
    "oid": "urn:oid:1.2.3", "uuid": "urn:uuid:3b7c5f2e-0d4c-4a3b-9a7e-2f6b8c1d0e9a", "id": "conformance",
    "code": "conformance", "date": "2020-01-01", "dateTime": "2020-01-01T00:00:00Z",
    "instant": "2020-01-01T00:00:00Z", "time": "12:00:00", "base64Binary": "AAAA",
    "xhtml": '<div xmlns="http://www.w3.org/1999/xhtml">conformance</div>',
}
COMPLEX: dict[str, Any] = {
    "CodeableConcept": {"text": "conformance"},
    "Coding": {"system": "http://example.org/conformance", "code": "conformance"},
    "Reference": {"display": "conformance"},
    "Identifier": {"system": "http://example.org/conformance", "value": "conformance"},
    "Period": {"start": "2020-01-01"},
    "Quantity": {"value": 1},
    "Money": {"value": 1, "currency": "CNY"},
    "Attachment": {"contentType": "text/plain", "data": "AAAA"},
    "HumanName": {"text": "conformance"},
    "ContactPoint": {"system": "phone", "value": "1"},
    "Address": {"text": "conformance"},
    "Narrative": {"status": "generated", "div": PRIMITIVES["xhtml"]},
}
_ACTOR = {"actor": {"display": "conformance"}}
OVERRIDES: dict[str, dict[str, Any]] = {
    "AllergyIntolerance": {"clinicalStatus": {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]}},
    "Appointment": {"participant": [{**_ACTOR, "status": "accepted"}]},
    "AppointmentResponse": _ACTOR,
    "Bundle": {"type": "collection"},
    "CapabilityStatement": {"kind": "requirements", "fhirVersion": "4.0.1", "format": ["json"],
                            "description": "conformance", "rest": [{"mode": "server"}]},
    "Consent": {"policyRule": {"text": "conformance"}},
    "EventDefinition": {"trigger": [{"type": "named-event", "name": "conformance"}]},
    "ImmunizationRecommendation": {"recommendation": [{"vaccineCode": [{"text": "conformance"}],
                                                       "forecastStatus": {"text": "conformance"}}]},
    "InsurancePlan": {"name": "conformance"},
    "Linkage": {"item": [{"type": "source", "resource": {"display": "a"}},
                         {"type": "alternate", "resource": {"display": "b"}}]},
    "Organization": {"name": "conformance"},
    "Parameters": {"parameter": [{"name": "conformance", "valueString": "conformance"}]},
    "StructureDefinition": {"kind": "logical", "abstract": False, "type": "http://example.org/conformance/Model",
                            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Element",
                            "derivation": "specialization",
                            "differential": {"element": [{"id": "Model", "path": "Model"}]}},
    "TerminologyCapabilities": {"kind": "requirements", "description": "conformance"},
}
"""Types whose derived instance would break an invariant (or that have a natural simplest form)."""
DEPTH = 4


def _required_code(element: Element) -> tuple[str, str] | None:
    binding = element.definition.get("binding") or {}
    if binding.get("strength") != "required" or not binding.get("valueSet"):
        return None
    return first_code(binding["valueSet"].split("|", 1)[0])


@cache
def first_code(valueset_url: str) -> tuple[str, str] | None:
    """(system, code) of the first code a core ValueSet lists or includes (enumerated, or a whole CodeSystem)."""
    package = default_package()
    valueset = package.resource("ValueSet", valueset_url)
    if valueset is None:
        return None
    for include in (valueset.get("compose") or {}).get("include", []):
        system_url = str(include.get("system", ""))
        if include.get("concept"):
            return system_url, str(include["concept"][0]["code"])
        system = package.resource("CodeSystem", system_url) if system_url else None
        if system and system.get("concept") and not include.get("filter"):
            return system_url, str(system["concept"][0]["code"])
        for nested in include.get("valueSet", []):
            if (found := first_code(nested.split("|", 1)[0])) is not None:
                return found
    return None


def _value(element: Element, depth: int) -> Any:
    if element.type in ("code", "Coding", "CodeableConcept") and (found := _required_code(element)) is not None:
        system, code = found
        if element.type == "code":
            return code
        coding = {"system": system, "code": code}
        return coding if element.type == "Coding" else {"coding": [coding]}
    if element.type in PRIMITIVES:
        return PRIMITIVES[element.type]
    if element.type in COMPLEX and element.child_node is not None and element.child_node.path == element.type:
        return copy.deepcopy(COMPLEX[element.type])
    if element.child_node is None or depth <= 0:
        return None
    return _fill(element.child_node, {}, depth - 1)


def _fill(node: Node, into: dict[str, Any], depth: int) -> dict[str, Any]:
    seen: set[str] = set()
    for name, element in core_model().children(node).items():
        if element.min < 1 or name in into or element.path in seen:
            continue  # a required choice ([x]) is filled once, with its first type
        value = _value(element, depth)
        if value is None:
            continue
        seen.add(element.path)
        into[name] = [value] if element.is_array else value
    return into


@cache
def _minimal(type_name: str) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": type_name, **copy.deepcopy(OVERRIDES.get(type_name, {}))}
    return _fill(core_model().root(type_name), resource, DEPTH)


def minimal_resource(type_name: str) -> dict[str, Any]:
    """A fresh minimal instance of ``type_name`` (``KeyError`` for a type R4 does not define)."""
    if not core().is_resource_type(type_name):
        raise KeyError(f"{type_name} is not an R4 resource type")
    return copy.deepcopy(_minimal(type_name))

"""Rules about how resources fit together: references, contained resources, Bundles, QuestionnaireResponses.

http://hl7.org/fhir/R4/references.html (contained, #id, dom-3), http://hl7.org/fhir/R4/bundle.html
(fullUrl, references between entries, bdl-*), http://hl7.org/fhir/R4/documents.html,
http://hl7.org/fhir/R4/messaging.html, http://hl7.org/fhir/R4/questionnaireresponse.html.
"""

from __future__ import annotations

from typing import Any

import pytest

from profiles.engine import ProfileEngine
from profiles.registry import ProfileRegistry
from profiles.validator import Validator

Found = set[tuple[str, str, str]]


def issues(resource: dict[str, Any], registry: ProfileRegistry | None = None, **options: Any) -> Found:
    engine = ProfileEngine(registry or ProfileRegistry(), best_practice=None, **options)
    return {(i.severity, i.code, i.expression) for i in engine.validate(resource) if i.severity != "information"}


def obs(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, **fields}


def entry(full_url: str, resource: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"fullUrl": full_url, "resource": resource, **fields}


PATIENT = {"resourceType": "Patient", "id": "p1"}
REFERENCE_CASES: list[tuple[str, dict[str, Any], Found]] = [
    ("contained and referenced", obs(contained=[{"resourceType": "Patient", "id": "p"}],
                                     subject={"reference": "#p"}), set()),
    ("#id with no such contained resource", obs(subject={"reference": "#nope"}),
     {("error", "invariant", "Observation.subject")}),
    ("contained but never referenced (dom-3)", obs(contained=[{"resourceType": "Patient", "id": "p"}]),
     {("error", "invariant", "Observation")}),
    ("contained referring back to its container", obs(contained=[
        {"resourceType": "Provenance", "id": "pv", "recorded": "2020-01-01T00:00:00Z", "agent": [
            {"who": {"display": "x"}}], "target": [{"reference": "#"}]}]), set()),
    ("wrong target type", obs(subject={"reference": "Medication/1"}),
     {("error", "structure", "Observation.subject.reference")}),
    ("target type from Reference.type", obs(subject={"type": "Medication", "identifier": {"value": "1"}}), set()),
    ("absolute reference of an allowed type", obs(subject={"reference": "http://x.org/fhir/Patient/1"}), set()),
]


@pytest.mark.parametrize(("name", "resource", "expected"), REFERENCE_CASES, ids=[c[0] for c in REFERENCE_CASES])
def test_references(name: str, resource: dict[str, Any], expected: Found) -> None:
    assert issues(resource) == expected


def bundle(bundle_type: str, *entries: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": bundle_type, "entry": list(entries), **fields}


DOCUMENT = {"identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"},
            "timestamp": "2020-01-01T00:00:00Z"}
COMPOSITION = {"resourceType": "Composition", "status": "final", "type": {"text": "t"}, "date": "2020-01-01",
               "author": [{"reference": "Patient/p1"}], "title": "t", "subject": {"reference": "Patient/p1"}}
BUNDLE_CASES: list[tuple[str, dict[str, Any], Found]] = [
    ("relative reference resolved through fullUrl", bundle(
        "collection", entry("http://x.org/fhir/Observation/o", obs(id="o", subject={"reference": "Patient/p1"})),
        entry("http://x.org/fhir/Patient/p1", PATIENT)), set()),
    ("urn reference resolved", bundle(
        "transaction", entry("urn:uuid:0f0a8d45-35cc-4a38-9b4a-63ff21d8f1b6", PATIENT,
                             request={"method": "POST", "url": "Patient"}),
        entry("urn:uuid:1f0a8d45-35cc-4a38-9b4a-63ff21d8f1b6",
              obs(subject={"reference": "urn:uuid:0f0a8d45-35cc-4a38-9b4a-63ff21d8f1b6"}),
              request={"method": "POST", "url": "Observation"})), set()),
    ("urn reference to nothing in a transaction", bundle(
        "transaction", entry("urn:uuid:1f0a8d45-35cc-4a38-9b4a-63ff21d8f1b6",
                             obs(subject={"reference": "urn:uuid:0f0a8d45-35cc-4a38-9b4a-63ff21d8f1b6"}),
                             request={"method": "POST", "url": "Observation"})),
     {("error", "not-found", "Bundle.entry[0].resource.subject.reference")}),
    ("urn reference to nothing in a collection", bundle(
        "collection", entry("urn:uuid:1f0a8d45-35cc-4a38-9b4a-63ff21d8f1b6",
                            obs(subject={"reference": "urn:uuid:0f0a8d45-35cc-4a38-9b4a-63ff21d8f1b6"}))),
     {("warning", "not-found", "Bundle.entry[0].resource.subject.reference")}),
    ("urn target of the wrong type", bundle(
        "collection", entry("urn:uuid:0f0a8d45-35cc-4a38-9b4a-63ff21d8f1b6", {"resourceType": "Medication"}),
        entry("urn:uuid:1f0a8d45-35cc-4a38-9b4a-63ff21d8f1b6",
              obs(subject={"reference": "urn:uuid:0f0a8d45-35cc-4a38-9b4a-63ff21d8f1b6"}))),
     {("error", "structure", "Bundle.entry[1].resource.subject.reference")}),
    ("relative fullUrl", bundle("collection", entry("Patient/p1", PATIENT)),
     {("error", "value", "Bundle.entry[0].fullUrl")}),
    ("fullUrl disagrees with the resource id", bundle("collection", entry("http://x.org/fhir/Patient/p2", PATIENT)),
     {("error", "business-rule", "Bundle.entry[0].fullUrl")}),
    ("versions of one entry, version-specific references", bundle(
        "collection",
        entry("http://x.org/fhir/Patient/p1", {**PATIENT, "meta": {"versionId": "1"}}),
        entry("http://x.org/fhir/Patient/p1", {**PATIENT, "meta": {"versionId": "2"}}),
        entry("http://x.org/fhir/Observation/o", obs(id="o", subject={"reference": "Patient/p1/_history/2"}))), set()),
    ("ambiguous and missing versions", bundle(
        "collection",
        entry("http://x.org/fhir/Patient/p1", {**PATIENT, "meta": {"versionId": "1"}}),
        entry("http://x.org/fhir/Patient/p1", {**PATIENT, "meta": {"versionId": "2"}}),
        entry("http://x.org/fhir/Observation/o", obs(id="o", subject={"reference": "Patient/p1"},
                                                     focus=[{"reference": "Patient/p1/_history/3"}]))),
     {("error", "structure", "Bundle.entry[2].resource.subject.reference"),
      ("error", "not-found", "Bundle.entry[2].resource.focus[0].reference")}),
    ("duplicate fullUrl (bdl-7)", bundle("collection", entry("http://x.org/fhir/Patient/p1", PATIENT),
                                         entry("http://x.org/fhir/Patient/p1", PATIENT)),
     {("error", "invariant", "Bundle")}),
    ("document starting with a Composition", bundle(
        "document", entry("http://x.org/fhir/Composition/c", {**COMPOSITION, "id": "c"}),
        entry("http://x.org/fhir/Patient/p1", PATIENT), **DOCUMENT), set()),
    ("document without a Composition first (bdl-11)", bundle(
        "document", entry("http://x.org/fhir/Patient/p1", PATIENT), **DOCUMENT), {("error", "invariant", "Bundle")}),
    ("document reference outside the document", bundle(
        "document", entry("http://x.org/fhir/Composition/c", {**COMPOSITION, "id": "c"}), **DOCUMENT),
     {("warning", "not-found", "Bundle.entry[0].resource.author[0].reference"),
      ("warning", "not-found", "Bundle.entry[0].resource.subject.reference")}),
    ("message without a MessageHeader first (bdl-12)",
     bundle("message", entry("http://x.org/fhir/Patient/p1", PATIENT)),
     {("error", "invariant", "Bundle")}),
    ("request in a collection (bdl-3)", bundle("collection", entry("http://x.org/fhir/Patient/p1", PATIENT,
                                                                   request={"method": "POST", "url": "Patient"})),
     {("error", "invariant", "Bundle")}),
]


@pytest.mark.parametrize(("name", "resource", "expected"), BUNDLE_CASES, ids=[c[0] for c in BUNDLE_CASES])
def test_bundles(name: str, resource: dict[str, Any], expected: Found) -> None:
    assert issues(resource) == expected


def test_document_and_message_structure_hold_without_core_invariants() -> None:
    found = issues(bundle("message", entry("http://x.org/fhir/Patient/p1", PATIENT)), core_invariants=False)
    assert found == {("error", "business-rule", "Bundle.entry[0]")}


QUESTIONNAIRE: dict[str, Any] = {
    "resourceType": "Questionnaire", "url": "http://example.org/q/follow-up", "status": "active", "item": [
        {"linkId": "bp", "type": "group", "required": True, "item": [
            {"linkId": "sbp", "type": "integer", "required": True,
             "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueInteger": 50},
                           {"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueInteger": 300}]}]},
        {"linkId": "smoker", "type": "boolean"},
        {"linkId": "cigarettes", "type": "integer", "enableWhen": [
            {"question": "smoker", "operator": "=", "answerBoolean": True}]},
        {"linkId": "control", "type": "choice", "answerOption": [
            {"valueCoding": {"system": "urn:cv05.10.012", "code": "1"}},
            {"valueCoding": {"system": "urn:cv05.10.012", "code": "2"}}]},
        {"linkId": "note", "type": "string", "maxLength": 5},
        {"linkId": "intro", "type": "display"},
    ]}


def response(*items: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    return {"resourceType": "QuestionnaireResponse", "status": status,
            "questionnaire": "http://example.org/q/follow-up|1", "item": list(items)}


BP = {"linkId": "bp", "item": [{"linkId": "sbp", "answer": [{"valueInteger": 120}]}]}
QR_CASES: list[tuple[str, dict[str, Any], Found]] = [
    ("complete and valid", response(BP, {"linkId": "smoker", "answer": [{"valueBoolean": True}]},
                                    {"linkId": "cigarettes", "answer": [{"valueInteger": 10}]},
                                    {"linkId": "control", "answer": [{"valueCoding": {"system": "urn:cv05.10.012",
                                                                                      "code": "2"}}]}), set()),
    ("unknown linkId", response(BP, {"linkId": "nope", "answer": [{"valueString": "x"}]}),
     {("error", "structure", "QuestionnaireResponse.item[1].linkId")}),
    ("required group missing", response(), {("error", "required", "QuestionnaireResponse.item")}),
    ("required group missing but in progress", response(status="in-progress"), set()),
    ("wrong answer type", response({"linkId": "bp", "item": [{"linkId": "sbp", "answer": [{"valueString": "120"}]}]}),
     {("error", "structure", "QuestionnaireResponse.item[0].item[0].answer[0]")}),
    ("below minValue", response({"linkId": "bp", "item": [{"linkId": "sbp", "answer": [{"valueInteger": 20}]}]}),
     {("error", "value", "QuestionnaireResponse.item[0].item[0].answer[0]")}),
    ("repeated answers to a single item", response(BP, {"linkId": "smoker", "answer": [
        {"valueBoolean": True}, {"valueBoolean": False}]}),
     {("error", "structure", "QuestionnaireResponse.item[1].answer")}),
    ("answer of a disabled item", response(BP, {"linkId": "smoker", "answer": [{"valueBoolean": False}]},
                                           {"linkId": "cigarettes", "answer": [{"valueInteger": 10}]}),
     {("error", "business-rule", "QuestionnaireResponse.item[2]")}),
    ("not an answer option", response(BP, {"linkId": "control", "answer": [
        {"valueCoding": {"system": "urn:cv05.10.012", "code": "9"}}]}),
     {("error", "code-invalid", "QuestionnaireResponse.item[1].answer[0]")}),
    ("too long", response(BP, {"linkId": "note", "answer": [{"valueString": "abcdefg"}]}),
     {("error", "value", "QuestionnaireResponse.item[1].answer[0]")}),
    ("display item answered", response(BP, {"linkId": "intro", "answer": [{"valueString": "x"}]}),
     {("error", "structure", "QuestionnaireResponse.item[1].answer")}),
]


@pytest.mark.parametrize(("name", "resource", "expected"), QR_CASES, ids=[c[0] for c in QR_CASES])
def test_questionnaire_responses(name: str, resource: dict[str, Any], expected: Found) -> None:
    registry = ProfileRegistry()
    registry.add(QUESTIONNAIRE)
    assert issues(resource, registry) == expected


def test_questionnaire_from_a_resolver_and_when_missing() -> None:
    seen: list[str] = []

    def resolver(url: str) -> dict[str, Any] | None:
        seen.append(url)
        return None

    found = ProfileEngine(questionnaires=resolver).validate(response(BP))
    assert seen == ["http://example.org/q/follow-up|1"]
    assert [(i.severity, i.code) for i in found if i.code == "not-found"] == [("warning", "not-found")]


def test_validator_runs_structure_then_engine() -> None:
    validator = Validator(engine=ProfileEngine(best_practice=None))
    found = validator.validate(obs(subject={"reference": "#nope"}, foo=1))
    assert [(i.code, i.expression) for i in found] == [("structure", "Observation.foo"),
                                                       ("invariant", "Observation.subject")]

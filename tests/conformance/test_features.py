"""Every runner feature against Yidang in-process, on both stores, from a TestScript written in
FHIR XML with XML and JSON fixture files beside it (http://hl7.org/fhir/R4/testscript.html):
contained and file fixtures, autocreate/autodelete, each kind of variable, the operation codes,
request headers, Touchstone placeholders, and each kind of assert."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from conformance.runner import RunOptions, ScriptResult, load_script, run_script
from profiles.fhirxml import to_xml
from server.stores.base import Store
from tests.conftest import BASE, make_client

CODES = "http://terminology.hl7.org/CodeSystem/testscript-operation-codes"


def op(code: str, **extra: Any) -> dict[str, Any]:
    return {"operation": {"type": {"system": CODES, "code": code}, "encodeRequestUrl": True, **extra}}


def check(**spec: Any) -> dict[str, Any]:
    return {"assert": {"warningOnly": False, **spec}}


def case(name: str, *actions: dict[str, Any]) -> dict[str, Any]:
    return {"id": name, "name": name, "action": list(actions)}


PATIENT_XML_FIXTURE = {
    "resourceType": "Patient", "id": "feature-patient",
    "identifier": [{"system": "urn:test:d9", "value": "${D9}"}],
    "name": [{"family": "Fam${C8}", "given": ["Given"]}], "gender": "female", "birthDate": "${CURRENTDATE}",
}
SCRIPT: dict[str, Any] = {
    "resourceType": "TestScript", "id": "features", "url": "http://example.org/TestScript/features",
    "name": "RunnerFeatures", "status": "active",
    "contained": [
        {"resourceType": "Organization", "id": "org", "name": "Auto-created organisation"},
        {"resourceType": "Bundle", "id": "tx", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:${UUID}", "resource": {"resourceType": "Organization", "name": "Tx ${C8}"},
             "request": {"method": "POST", "url": "Organization"}},
            {"resource": {"resourceType": "Endpoint", "status": "active",
                          "connectionType": {"code": "hl7-fhir-rest"}, "payloadType": [{"text": "x"}],
                          "address": "http://example.org/fhir",
                          "managingOrganization": {"reference": "urn:uuid:${UUID}"}},
             "request": {"method": "POST", "url": "Endpoint"}}]},
        {"resourceType": "Bundle", "id": "batch", "type": "batch", "entry": [
            {"request": {"method": "GET", "url": "metadata"}},
            {"request": {"method": "GET", "url": "Patient/does-not-exist-${D9}"}}]},
        {"resourceType": "Patient", "id": "minimum", "gender": "female", "name": [{"given": ["Given"]}]},
    ],
    "fixture": [
        {"id": "org", "autocreate": True, "autodelete": True, "resource": {"reference": "#org"}},
        {"id": "patient", "autocreate": False, "autodelete": False, "resource": {"reference": "patient-fixture.xml"}},
        {"id": "patch", "autocreate": False, "autodelete": False, "resource": {"reference": "patch-fixture.json"}},
        {"id": "tx", "autocreate": False, "autodelete": False, "resource": {"reference": "#tx"}},
        {"id": "batch", "autocreate": False, "autodelete": False, "resource": {"reference": "#batch"}},
        {"id": "minimum", "autocreate": False, "autodelete": False, "resource": {"reference": "#minimum"}},
    ],
    "profile": [{"id": "patient-profile", "reference": "http://hl7.org/fhir/StructureDefinition/Patient"},
                {"id": "bundle-profile", "reference": "http://hl7.org/fhir/StructureDefinition/Bundle"}],
    "variable": [
        {"name": "identifierValue", "path": "$.identifier[0].value", "sourceId": "patient"},
        {"name": "familyName", "expression": "Patient.name.family", "sourceId": "patient"},
        {"name": "createdId", "expression": "Patient.id", "sourceId": "created"},
        {"name": "createdLocation", "headerField": "Location", "sourceId": "created"},
        {"name": "updatedTag", "headerField": "ETag", "sourceId": "updated"},
        {"name": "orgName", "path": "fhir:Organization/fhir:name/@value", "sourceId": "org"},
        {"name": "expectedGender", "defaultValue": "female"},
        {"name": "tag", "defaultValue": "overridden-by-the-test"},
    ],
    "setup": {"action": [
        op("create", resource="Patient", sourceId="patient", contentType="xml", accept="xml", responseId="created"),
        check(response="created"), check(contentType="xml"), check(headerField="Location", operator="notEmpty"),
        check(requestMethod="post"), check(direction="request", headerField="Content-Type", operator="contains",
                                           value="xml"),
    ]},
    "test": [
        case("read-by-target",
             op("read", targetId="patient", responseId="read"),
             check(response="okay"), check(resource="Patient"), check(validateProfileId="patient-profile"),
             check(headerField="ETag", value='W/"1"'),
             check(expression="Patient.gender", value="${expectedGender}"),
             check(path="fhir:Patient/fhir:name/fhir:family/@value", value="${familyName}"),
             check(compareToSourceId="patient", compareToSourcePath="fhir:Patient/fhir:identifier/fhir:value/@value",
                   path="fhir:Patient/fhir:identifier/fhir:value/@value", operator="equals"),
             check(compareToSourceId="patient", compareToSourceExpression="Patient.birthDate"),
             check(minimumId="minimum"),
             check(sourceId="created", expression="Patient.id = '${createdId}'"),
             check(requestURL="${createdId}", operator="contains")),
        case("read-by-location-url",
             op("read", url="${createdLocation}", accept="xml"),
             check(response="okay"), check(contentType="xml"), check(expression="Patient.meta.versionId = '1'")),
        case("update-patch-vread-history",
             op("update", resource="Patient", params="/${createdId}", sourceId="patient", responseId="updated",
                requestHeader=[{"field": "Prefer", "value": "return=representation"}]),
             check(response="okay"), check(headerField="ETag", value="${updatedTag}"),
             op("patch", resource="Patient", params="/${createdId}", sourceId="patch"),
             check(response="okay"), check(expression="Patient.active = true"),
             op("vread", targetId="patient"),
             check(response="okay"), check(expression="Patient.meta.versionId", value="1"),
             op("history", targetId="patient"),
             check(response="okay"), check(validateProfileId="bundle-profile"),
             check(path="fhir:Bundle/fhir:type/@value", value="history"),
             check(expression="Bundle.entry.count()", operator="greaterThan", value="1")),
        case("update-create",
             op("updateCreate", resource="Patient", params="/feature-${C8}", sourceId="patient"),
             check(responseCode="201,200", operator="in"),
             check(expression="Patient.id", value="feature-${C8}")),
        case("search-with-placeholders",
             op("search", resource="Patient", params="?identifier=urn:test:d9|${identifierValue}&_count=5"),
             check(response="okay"), check(resource="Bundle"), check(navigationLinks=True),
             check(expression="Bundle.entry.count()", value="2"),
             check(path="$.entry[0].resource.name[0].family", value="${familyName}"),
             check(requestURL="urn%3Atest%3Ad9%7C", operator="notContains")),
        case("autocreated-fixture",
             op("read", targetId="org"), check(response="okay"),
             check(path="fhir:Organization/fhir:name/@value", value="${orgName}")),
        case("transaction-and-batch",
             op("transaction", sourceId="tx"), check(response="okay"),
             check(expression="Bundle.type", value="transaction-response"),
             check(expression="Bundle.entry.response.status.all(startsWith('201'))"),
             op("batch", sourceId="batch"), check(response="okay"),
             check(expression="Bundle.entry[1].response.status.startsWith('404')")),
        case("capabilities-and-operations",
             op("capabilities"), check(response="okay"), check(resource="CapabilityStatement"),
             check(expression="CapabilityStatement.format", value="xml", operator="notEquals"),
             op("validate", resource="Patient", sourceId="patient", method="post"),
             check(response="okay"), check(resource="OperationOutcome"),
             op("validate", url="Patient/$validate", sourceId="minimum", contentType="xml"),
             check(response="okay"), check(expression="OperationOutcome.issue.where(severity='error').empty()")),
        case("user-variables", op("read", resource="Patient", params="/${tag}"), check(response="notFound")),
        case("conditional-delete",
             op("deleteCondMultiple", resource="Patient", params="?identifier=urn:test:d9|${identifierValue}"),
             check(responseCode="200,204", operator="in"),
             op("read", targetId="patient"), check(response="gone")),
    ],
    "teardown": {"action": [op("delete", resource="Patient", params="/feature-${C8}")]},
}
PATCH = [{"op": "add", "path": "/active", "value": True}]


@pytest.fixture(scope="module")
async def yidang(store: Store) -> httpx.AsyncClient:
    async with make_client(store) as client:
        yield client


@pytest.fixture(scope="module")
def script_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scripts")
    (folder / "features.xml").write_text(to_xml(SCRIPT, pretty=True), encoding="utf-8")
    (folder / "patient-fixture.xml").write_text(to_xml(PATIENT_XML_FIXTURE), encoding="utf-8")
    (folder / "patch-fixture.json").write_text('[{"op": "add", "path": "/active", "value": true}]', encoding="utf-8")
    return folder / "features.xml"


@pytest.fixture(scope="module")
async def result(yidang: httpx.AsyncClient, script_path: Path) -> ScriptResult:
    options = RunOptions(base_url=BASE, variables={"tag": "no-such-patient"})
    return await run_script(load_script(script_path), yidang, options)


def _failures(result: ScriptResult) -> list[tuple[str, str, str]]:
    actions = result.setup + [a for t in result.tests for a in t.actions] + result.teardown
    return [(a.detail, a.label, a.message) for a in actions if a.outcome != "pass"]


def test_script_in_xml_passes(result: ScriptResult) -> None:
    assert result.error is None
    assert _failures(result) == []
    assert [t.outcome for t in result.tests] == ["pass"] * len(SCRIPT["test"])
    assert result.score == 100.0


def test_autodelete_removed_the_autocreated_fixture(result: ScriptResult) -> None:
    labels = [a.label for a in result.setup] + [a.label for a in result.teardown]
    assert labels[0] == "autocreate org" and labels[-1] == "autodelete org"
    assert result.teardown[-1].exchange is not None and result.teardown[-1].exchange.status in (200, 204)


def test_placeholders_were_filled_in_once_per_run(result: ScriptResult) -> None:
    sent = result.setup[1].exchange
    assert sent is not None and b"${" not in sent.request_body
    search = next(t for t in result.tests if t.id == "search-with-placeholders").actions[0].exchange
    assert search is not None and "%24%7B" not in search.url and "${" not in search.url

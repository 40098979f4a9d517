"""The runner against a deliberately non-conformant FHIR server: every defect it has must show
as a failed test, and the one well-behaved interaction as a pass. A suite that cannot fail is a
defect (issue 6); each row below names a defect and the assertion that must catch it."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conformance.reports.junit import junit_xml
from conformance.runner import LoadedScript, RunOptions, ScriptResult, run_script

BASE = "http://broken.test/fhir"
PATIENT = {"resourceType": "Patient", "id": "fx", "name": [{"family": "Right"}], "birthDate": "1970-01-01"}


def _json(body: dict[str, Any], status: int = 200, media: str = "application/fhir+json",
          headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=media, headers=headers)


async def metadata(request: Request) -> Response:
    return _json({"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
                  "fhirVersion": "4.0.1", "format": ["json"]}, media="text/plain")  # wrong Content-Type


async def create(request: Request) -> Response:
    body = orjson.loads(await request.body())
    return _json({**body, "id": "x1"}, status=200)  # 200 instead of 201, no Location


async def read(request: Request) -> Response:
    if request.path_params["id"] == "missing":
        return _json({"resourceType": "OperationOutcome", "issue": []})  # 200 for an unknown id
    # no ETag / Last-Modified, the wrong name, an invalid birthDate, JSON even when XML is asked
    return _json({"resourceType": "Patient", "id": "x1", "name": [{"family": "Wrong"}],
                  "birthDate": "1970-13-45"})


async def update(request: Request) -> Response:
    return _json({"resourceType": "Observation", "id": request.path_params["id"]})  # the wrong type back


async def delete(request: Request) -> Response:
    return _json({"resourceType": "OperationOutcome", "issue": []}, status=500)


async def search(request: Request) -> Response:
    return _json({"resourceType": "Bundle", "type": "collection", "total": 3,  # no links, wrong type, bad total
                  "entry": [{"resource": {"resourceType": "Patient", "id": "x1"}}]})


async def history(request: Request) -> Response:
    return _json({"resourceType": "Bundle", "type": "searchset", "entry": []})


async def transaction(request: Request) -> Response:
    return _json({"resourceType": "Bundle", "type": "transaction-response", "entry": [{"response": {"status": "201"}}]})


BROKEN = Starlette(routes=[
    Route("/fhir/metadata", metadata),
    Route("/fhir/", transaction, methods=["POST"]),
    Route("/fhir/Patient", create, methods=["POST"]),
    Route("/fhir/Patient", search, methods=["GET"]),
    Route("/fhir/Patient/{id}/_history", history),
    Route("/fhir/Patient/{id}", read, methods=["GET"]),
    Route("/fhir/Patient/{id}", update, methods=["PUT"]),
    Route("/fhir/Patient/{id}", delete, methods=["DELETE"]),
])


def op(code: str, **extra: Any) -> dict[str, Any]:
    return {"operation": {"type": {"system": "http://terminology.hl7.org/CodeSystem/testscript-operation-codes",
                                   "code": code}, "resource": "Patient", **extra}}


def check(**spec: Any) -> dict[str, Any]:
    return {"assert": {"warningOnly": False, **spec}}


# test id, actions, expected outcome, words the first non-passing message must contain
CASES: list[tuple[str, list[dict[str, Any]], str, str]] = [
    ("metadata-content-type", [op("capabilities"), check(response="okay"), check(contentType="json")],
     "fail", "Content-Type"),
    ("create-status", [op("create", sourceId="patient"), check(response="created")], "fail", "'201'"),
    ("create-location", [op("create", sourceId="patient"), check(headerField="Location", operator="notEmpty")],
     "fail", "Location"),
    ("read-etag", [op("read", params="/x1"), check(headerField="ETag", operator="notEmpty")], "fail", "ETag"),
    ("read-content", [op("read", params="/x1"), check(compareToSourceId="patient",
                                                      compareToSourceExpression="Patient.name.first().family")],
     "fail", "'Wrong'"),
    ("read-unknown", [op("read", params="/missing"), check(response="notFound")], "fail", "'404'"),
    ("read-xml", [op("read", params="/x1", accept="xml"), check(contentType="xml")], "fail", "xml"),
    ("read-valid", [op("read", params="/x1"), check(validateProfileId="patient-profile")], "fail", "birthDate"),
    ("read-minimum", [op("read", params="/x1"), check(minimumId="patient")], "fail", "name"),
    ("search-type", [op("search", params="?name=x"),
                     check(path="fhir:Bundle/fhir:type/@value", value="searchset")], "fail", "'collection'"),
    ("search-links", [op("search", params="?name=x"), check(navigationLinks=True)], "fail", "self link"),
    ("search-total", [op("search", params="?name=x"), check(expression="Bundle.total = Bundle.entry.count()")],
     "fail", "true"),
    ("update-type", [op("update", params="/x1", sourceId="patient"), check(resource="Patient")],
     "fail", "'Observation'"),
    ("delete-status", [op("delete", params="/x1"), check(responseCode="200,204", operator="in")], "fail", "'500'"),
    ("history-type", [op("history", params="/x1/_history"), check(expression="Bundle.type = 'history'")],
     "fail", "true"),
    ("transaction-entries", [op("transaction", sourceId="tx"), check(expression="Bundle.entry.count() = 2")],
     "fail", "true"),
    ("stops-after-failure", [op("capabilities"), check(responseCode="201"), check(response="okay")],
     "fail", "'201'"),
    ("warning-only", [op("capabilities"), check(response="okay"),
                      check(headerField="ETag", operator="notEmpty", warningOnly=True)], "warning", "ETag"),
    ("bad-expression", [op("capabilities"), check(expression="Bundle.foo()")], "error", "FHIRPath"),
    ("control", [op("capabilities"), check(response="okay"), check(resource="CapabilityStatement"),
                 check(expression="CapabilityStatement.fhirVersion = '4.0.1'")], "pass", ""),
]


def broken_script() -> LoadedScript:
    tx = {"resourceType": "Bundle", "id": "tx", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}]}
    return LoadedScript({
        "resourceType": "TestScript", "id": "broken", "name": "Broken", "status": "active",
        "url": "http://example.org/TestScript/broken",
        "contained": [{**PATIENT, "id": "patient"}, tx],
        "fixture": [{"id": "patient", "autocreate": False, "autodelete": False, "resource": {"reference": "#patient"}},
                    {"id": "tx", "autocreate": False, "autodelete": False, "resource": {"reference": "#tx"}}],
        "profile": [{"id": "patient-profile", "reference": "http://hl7.org/fhir/StructureDefinition/Patient"}],
        "test": [{"id": case, "name": case, "action": actions} for case, actions, _, _ in CASES],
    }, None)


@pytest.fixture(scope="module")
async def result() -> ScriptResult:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=BROKEN)) as client:
        return await run_script(broken_script(), client, RunOptions(base_url=BASE))


@pytest.mark.parametrize(("case", "outcome", "words"), [(c, o, w) for c, _, o, w in CASES], ids=[c[0] for c in CASES])
def test_each_defect_is_reported(result: ScriptResult, case: str, outcome: str, words: str) -> None:
    test = next(t for t in result.tests if t.id == case)
    assert test.outcome == outcome, [(a.outcome, a.message) for a in test.actions]
    if outcome != "pass":
        first = next(a for a in test.actions if a.outcome == outcome)
        assert words in first.message, first.message


def test_actions_after_a_failure_are_skipped(result: ScriptResult) -> None:
    test = next(t for t in result.tests if t.id == "stops-after-failure")
    assert [a.outcome for a in test.actions] == ["pass", "fail", "skip"]


def test_the_script_and_its_junit_report_fail(result: ScriptResult) -> None:
    assert not result.passed and result.outcome == "error"
    report = junit_xml([result]).decode()
    failures = sum(1 for _, _, o, _ in CASES if o == "fail")
    assert f'failures="{failures}"' in report and 'errors="1"' in report

"""The server's own extensions are defined: ``$validate`` of what the server writes reports no unknown extension.

Every ``http://yidang.org/fhir/StructureDefinition/…`` extension the server or the data-set converter writes has a
StructureDefinition in ``profiles/regional/``. Each resource here carries the extensions exactly as the writing
code builds them (its URL constants and, where they are pure, its building functions) and goes through
``POST [type]/$validate`` on both stores; ``$validate`` treats an unresolvable extension as an error
(server/app.py), so a missing definition would fail. Broken shapes (wrong value type, a missing part, a code
outside the list, the wrong context) are errors naming the extension.
http://hl7.org/fhir/R4/extensibility.html, http://hl7.org/fhir/R4/defining-extensions.html
"""

from __future__ import annotations

import copy
from datetime import date
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest

from profiles.datasets import spec
from profiles.datasets.convert import Converter, Record
from profiles.regional import BASE, profile_urls
from server.audit.chain import CHAIN_URL, GENESIS, seal
from server.recognition import decisions
from server.recognition.model import (
    CATEGORY_EXT,
    INSTITUTION_EXT,
    ITEM_EXT,
    PERIOD_EXT,
    SCOPE_EXT,
    STATUS_EXT,
    STATUSES,
    VALIDITY_EXT,
    Item,
    Qualification,
)
from server.recognition.status import Status, annotate
from server.transfer import record as transfer
from tests.datasets.test_qc import TODAY, person

PATIENT = {"resourceType": "Patient", "name": [{"text": "张三"}]}
EPISODE = {"resourceType": "EpisodeOfCare", "status": "active", "patient": {"reference": "Patient/p1"},
           "managingOrganization": {"reference": "Organization/old"}, "period": {"start": "2024-01-01"}}
REPORT = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "血常规"},
          "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]}],
          "subject": {"reference": "Patient/p1"}, "issued": "2025-03-01T08:00:00+08:00"}


def record_date_patient() -> dict[str, Any]:
    """A Patient with 建档日期 as the person data set's map writes it (through the converter)."""
    converter = Converter(spec.load("person"), today=TODAY)
    outcome = converter.add(Record(1, person(建档日期="2023-01-05")))
    assert outcome.accepted, outcome.issues
    bundle = next(converter.iter_bundles())
    converted = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    written = [e for e in converted["extension"] if e["url"] == BASE + "cn-record-date"]
    assert [(e["url"], e["valueDate"]) for e in written] == [(BASE + "cn-record-date", "2023-01-05")]
    return {**PATIENT, "extension": written}


def closed_episode() -> dict[str, Any]:
    return transfer._closed(copy.deepcopy(EPISODE), "2025-02-01", "迁居外区")


def opened_episode() -> dict[str, Any]:
    return transfer._opened(copy.deepcopy(EPISODE), "ep-old", "org-new", "2025-02-01",
                            [{"reference": "Practitioner/doc-1"}])


def transfer_provenance(source: str | None, task: str | None) -> dict[str, Any]:
    principal = SimpleNamespace(role="district", subject="district-a", institution="455835013")
    svc = SimpleNamespace(grant=SimpleNamespace(principal=principal), clock=lambda: 1_740_000_000_000_000)
    written = [SimpleNamespace(type="Patient", id="p1", version=2)]
    req = transfer.Request(patient="p1", reason="迁居外区", task=task)
    return transfer.provenance(cast(Any, svc), cast(Any, written), [("Patient", "p1", 1)], req, source, "org-new",
                               "2025-02-01")


def audit_event() -> dict[str, Any]:
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
        "action": "R", "recorded": "2025-03-01T08:00:00Z", "outcome": "0",
        "agent": [{"who": {"display": "clinician"}, "requestor": True}],
        "source": {"observer": {"display": "Yidang"}},
    }
    seal(event, 1, GENESIS)
    return event


ITEM = Item("http://platform.example.cn/recognition-item", "HGB", "血红蛋白", "laboratory", 30, "province")
QUALIFICATION = Qualification("91440300MA5EXAMPLE", "org-1", ITEM.system, ITEM.code, date(2025, 1, 1),
                              date(2025, 12, 31))


def decision(reason: dict[str, Any] | None) -> dict[str, Any]:
    made = decisions.Decision("r1", "repeated" if reason else "recognized", reason, "455835013", "dr-wang", "user",
                              "450755021")
    return decisions.to_resource(made, "org-1", 1_740_000_000_000_000)


OWN: dict[str, tuple[str, ...]] = {
    # name of a built resource -> the extension urls it must carry
    "patient-record-date": (BASE + "cn-record-date",),
    "episode-closed": (transfer.END_REASON,),
    "episode-opened": (transfer.TRANSFERRED_FROM,),
    "provenance-full": (transfer.TRANSFER,),
    "provenance-no-source-no-task": (transfer.TRANSFER,),
    "audit-event": (CHAIN_URL,),
    "catalogue-item": (CATEGORY_EXT, VALIDITY_EXT, SCOPE_EXT),
    "qualification": (INSTITUTION_EXT, ITEM_EXT, PERIOD_EXT),
    "decision-recognized": (decisions.DECISION_EXT, decisions.DECIDED_EXT, decisions.DECIDED_BY_EXT,
                            decisions.RESULT_INSTITUTION_EXT),
    "decision-repeated": (decisions.DECISION_EXT, decisions.REASON_EXT, decisions.DECIDED_EXT,
                          decisions.DECIDED_BY_EXT, decisions.RESULT_INSTITUTION_EXT),
}


def build(name: str) -> dict[str, Any]:
    builders = {
        "patient-record-date": record_date_patient,
        "episode-closed": closed_episode,
        "episode-opened": opened_episode,
        "provenance-full": lambda: transfer_provenance("org-old", "task-1"),
        "provenance-no-source-no-task": lambda: transfer_provenance(None, None),
        "audit-event": audit_event,
        "catalogue-item": ITEM.to_resource,
        "qualification": QUALIFICATION.to_resource,
        "decision-recognized": lambda: decision(None),
        "decision-repeated": lambda: decision({"text": "结果超过有效期", "coding": [
            {"system": "http://platform.example.cn/recognition-reason", "code": "expired"}]}),
    }
    resource = builders[name]()
    resource.pop("meta", None)
    resource.pop("id", None)
    return resource


def errors(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    assert outcome["resourceType"] == "OperationOutcome", outcome
    return [i for i in outcome.get("issue", ()) if i["severity"] in ("error", "fatal")]


def unknown(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in outcome.get("issue", ()) if "unknown extension" in str(i.get("diagnostics", ""))]


async def validate(client: httpx.AsyncClient, resource: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(f"/{resource['resourceType']}/$validate", json=resource)
    assert r.status_code == 200, r.text
    return cast(dict[str, Any], r.json())


def test_every_written_extension_has_a_definition() -> None:
    """The urls the writing code uses are all shipped regional StructureDefinitions of extensions."""
    defined = set(profile_urls())
    written = {url for urls in OWN.values() for url in urls} | {STATUS_EXT}
    assert written <= defined, written - defined
    assert all(url.startswith(BASE) for url in written)


@pytest.mark.parametrize("name", sorted(OWN))
def test_built_resource_carries_its_extensions(name: str) -> None:
    resource = build(name)
    assert [e["url"] for e in resource["extension"]] == list(OWN[name])


@pytest.mark.parametrize("name", sorted(OWN))
async def test_own_extensions_validate(client: httpx.AsyncClient, name: str) -> None:
    outcome = await validate(client, build(name))
    assert unknown(outcome) == []
    assert errors(outcome) == []


@pytest.mark.parametrize("code", STATUSES)
async def test_recognition_status_is_known(client: httpx.AsyncClient, code: str) -> None:
    """The look-up's status extension is defined (valueCode plus a nested ``rule``): no unknown-extension error.

    The one error left is the core invariant ext-1 (an extension has a value or extensions, never both),
    which the shape written by server/recognition/status.py breaks; no StructureDefinition can lift a core
    invariant, so only a change of that shape (the code as a sub-extension) would clear it.
    """
    annotated = annotate(REPORT, Status(code, "示例依据"))
    assert annotated["extension"] == [{"url": STATUS_EXT, "valueCode": code,
                                       "extension": [{"url": "rule", "valueString": "示例依据"}]}]
    annotated.pop("meta", None)
    outcome = await validate(client, annotated)
    assert unknown(outcome) == []
    found = errors(outcome)
    assert found and all("ext-1" in str(i.get("diagnostics", "")) for i in found), found


# -- broken shapes are errors about the extension --------------------------------------------------------------

def _with(resource: dict[str, Any], url: str, **change: Any) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    ext = next(e for e in out["extension"] if e["url"] == url)
    for key in [k for k in ext if k.startswith("value")]:
        del ext[key]
    ext.update(change)
    return out


BROKEN = {
    "record-date-as-string": lambda: _with(build("patient-record-date"), BASE + "cn-record-date",
                                           valueString="2023-01-05"),
    "category-unknown": lambda: _with(build("catalogue-item"), CATEGORY_EXT, valueCode="pathology"),
    "scope-unknown": lambda: _with(build("catalogue-item"), SCOPE_EXT, valueCode="county"),
    "validity-zero": lambda: _with(build("catalogue-item"), VALIDITY_EXT, valueInteger=0),
    "decision-unknown": lambda: _with(build("decision-recognized"), decisions.DECISION_EXT, valueCode="maybe"),
    "period-open-ended": lambda: _with(build("qualification"), PERIOD_EXT, valuePeriod={"start": "2025-01-01"}),
    "transfer-without-to": lambda: _with(build("provenance-full"), transfer.TRANSFER, extension=[
        {"url": "from", "valueReference": {"reference": "Organization/org-old"}}]),
    "transfer-unknown-part": lambda: _with(build("provenance-full"), transfer.TRANSFER, extension=[
        {"url": "to", "valueReference": {"reference": "Organization/org-new"}},
        {"url": "via", "valueString": "x"}]),
    "chain-without-hash": lambda: _with(build("audit-event"), CHAIN_URL, extension=[
        {"url": "sequence", "valueInteger": 1}, {"url": "previous", "valueString": GENESIS}]),
    "chain-bad-hash": lambda: _with(build("audit-event"), CHAIN_URL, extension=[
        {"url": "sequence", "valueInteger": 1}, {"url": "previous", "valueString": GENESIS},
        {"url": "hash", "valueString": "not-a-hash"}]),
    "end-reason-on-patient": lambda: {**PATIENT, "extension": [
        {"url": transfer.END_REASON, "valueCodeableConcept": {"text": "迁出"}}]},
}


@pytest.mark.parametrize("name", sorted(BROKEN))
async def test_broken_shape_is_an_error(client: httpx.AsyncClient, name: str) -> None:
    outcome = await validate(client, BROKEN[name]())
    found = errors(outcome)
    assert found, outcome
    assert unknown(outcome) == []
    assert all("extension" in " ".join(i.get("expression", ())) for i in found), found

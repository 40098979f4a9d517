"""Required bindings on every write, on both stores (http://hl7.org/fhir/R4/terminologies.html#required).

Under the default ("structure") validation a code outside the enumerated value set of a required
binding is refused with 422 and nothing is stored, wherever the element is (choice types, backbone
elements, contained resources, Bundle entries, transactions); ``$validate`` and ``yidang validate``
report the same issue. Bindings that cannot be checked by a list (mimetypes, extensible ones) are
not errors on write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from server.cli import app
from tests.conftest import unique

SYSTEM = "http://example.org/fhir/required-bindings"
GENDER_VS = "http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1"


def patient(key: str, **fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": key}], **fields}


def observation(key: str, **fields: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "identifier": [{"system": SYSTEM, "value": key}], "status": "final",
            "code": {"text": "x"}, **fields}


def code_invalid(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in body["issue"] if i["severity"] == "error" and i["code"] == "code-invalid"]


async def stored(client: httpx.AsyncClient, type_: str, key: str) -> int:
    r = await client.get(f"/{type_}", params={"identifier": f"{SYSTEM}|{key}", "_total": "accurate"})
    assert r.status_code == 200, r.text
    return len(r.json().get("entry", []))


async def test_unknown_gender_is_refused_with_the_path(client: httpx.AsyncClient) -> None:
    key = unique("robot")
    r = await client.post("/Patient", json=patient(key, gender="robot"))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    (issue,) = code_invalid(body)
    assert issue["expression"] == ["Patient.gender"]
    assert GENDER_VS in issue["diagnostics"] and "'robot'" in issue["diagnostics"]
    assert await stored(client, "Patient", key) == 0


async def test_unknown_observation_status_is_refused(client: httpx.AsyncClient) -> None:
    key = unique("bogus")
    r = await client.post("/Observation", json=observation(key, status="bogus"))
    assert r.status_code == 422, r.text
    assert [i["expression"] for i in code_invalid(r.json())] == [["Observation.status"]]
    assert await stored(client, "Observation", key) == 0


@pytest.mark.parametrize(("resource", "where"), [
    (patient("p", contact=[{"gender": "robot"}]), "Patient.contact[0].gender"),
    (patient("p", name=[{"family": "A", "use": "robotic"}]), "Patient.name[0].use"),
    (patient("p", telecom=[{"system": "phone", "value": "1"}, {"system": "beeper", "value": "2"}]),
     "Patient.telecom[1].system"),
    (patient("p", text={"status": "made-up", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'}),
     "Patient.text.status"),
    (observation("o", valueQuantity={"value": 1, "comparator": "~"}), "Observation.valueQuantity.comparator"),
    (patient("p", extension=[{"url": "http://example.org/ext", "valueHumanName": {"use": "robotic"}}]),
     "Patient.extension[0].valueHumanName.use"),
    (patient("p", contained=[{"resourceType": "Observation", "id": "o", "status": "bogus", "code": {"text": "x"}}],
             generalPractitioner=[{"reference": "#o"}]), "Patient.contained[0].status"),
    ({"resourceType": "Condition", "subject": {"reference": "Patient/x"},
      "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                     "code": "sleeping"}]}}, "Condition.clinicalStatus"),
    ({"resourceType": "Condition", "subject": {"reference": "Patient/x"}, "clinicalStatus": {"text": "active"}},
     "Condition.clinicalStatus"),
    ({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient",
                                                                              "gender": "robot"}}]},
     "Bundle.entry[0].resource.gender"),
    ({"resourceType": "Bundle", "type": "pile"}, "Bundle.type"),
], ids=["backbone", "datatype", "array item", "narrative", "choice type", "extension value", "contained",
        "codeable concept", "text only", "bundle entry", "bundle type"])
async def test_bindings_everywhere_in_the_resource(client: httpx.AsyncClient, resource: dict[str, Any],
                                                   where: str) -> None:
    type_ = resource["resourceType"]
    r = await client.post(f"/{type_}", json=resource)
    assert r.status_code == 422, r.text
    assert [i["expression"] for i in code_invalid(r.json())] == [[where]]
    checked = await client.post(f"/{type_}/$validate", json=resource)
    assert checked.status_code == 200
    assert code_invalid(checked.json()) == code_invalid(r.json())


async def test_transaction_with_one_bad_code_stores_nothing(client: httpx.AsyncClient) -> None:
    good, bad = unique("tx-good"), unique("tx-bad")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:8f0a6a8e-7a33-4a5e-9a0e-2b5f6f1d0c01", "resource": patient(good, gender="female"),
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": observation(bad, status="bogus",
                                 subject={"reference": "urn:uuid:8f0a6a8e-7a33-4a5e-9a0e-2b5f6f1d0c01"}),
         "request": {"method": "POST", "url": "Observation"}},
    ]}
    r = await client.post("/", json=bundle)
    assert r.status_code == 422, r.text
    issues = code_invalid(r.json())
    assert issues and all("Observation.status" in " ".join(i.get("expression", [])) for i in issues)
    assert await stored(client, "Patient", good) == 0
    assert await stored(client, "Observation", bad) == 0


async def test_update_with_a_bad_code_keeps_the_stored_version(client: httpx.AsyncClient) -> None:
    key = unique("upd")
    created = await client.post("/Patient", json=patient(key, gender="male"))
    assert created.status_code == 201, created.text
    id_ = created.json()["id"]
    r = await client.put(f"/Patient/{id_}", json={**patient(key, gender="robot"), "id": id_})
    assert r.status_code == 422, r.text
    current = await client.get(f"/Patient/{id_}")
    assert current.json()["gender"] == "male" and current.json()["meta"]["versionId"] == "1"


async def test_valid_codes_and_uncheckable_bindings_pass(client: httpx.AsyncClient) -> None:
    key = unique("ok")
    resource = patient(
        key, gender="unknown", name=[{"use": "official", "family": "A"}],
        telecom=[{"system": "phone", "use": "mobile", "value": "1"}], address=[{"use": "home", "city": "X"}],
        text={"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
        language="xx-made-up",  # preferred binding: not checked on write
        photo=[{"contentType": "application/x-made-up", "data": "AAAA"}],  # mimetypes: cannot be listed
        generalPractitioner=[{"reference": "Practitioner/p", "type": "NotAType"}],  # extensible
    )
    r = await client.post("/Patient", json=resource)
    assert r.status_code == 201, r.text
    obs = await client.post("/Observation", json=observation(
        unique("ok-obs"), status="amended", valueQuantity={"value": 1, "unit": "furlong", "code": "fur",
                                                           "system": "http://example.org/units", "comparator": ">="}))
    assert obs.status_code == 201, obs.text
    condition = {"resourceType": "Condition", "subject": {"reference": "Patient/x"}, "clinicalStatus": {
        "coding": [{"system": "http://example.org/local", "code": "x"},
                   {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]}}
    assert (await client.post("/Condition", json=condition)).status_code == 201


async def test_cli_validate_reports_what_the_server_reports(client: httpx.AsyncClient, tmp_path: Path) -> None:
    resource = patient(unique("cli"), gender="robot", contact=[{"gender": "x", "name": {"family": "B"}}])
    path = tmp_path / "robot.json"
    path.write_bytes(orjson.dumps(resource))
    result = CliRunner().invoke(app, ["validate", str(path), "--json"])
    assert result.exit_code == 1, result.output
    (report,) = json.loads(result.output)
    from_cli = [(i["code"], [i["expression"]], i["message"]) for i in report["issues"]
                if i["severity"] == "error"]
    checked = await client.post("/Patient/$validate", json=resource)
    from_validate = [(i["code"], i["expression"], i["diagnostics"]) for i in checked.json()["issue"]
                     if i["severity"] == "error"]
    written = await client.post("/Patient", json=resource)
    assert written.status_code == 422
    from_write = [(i["code"], i["expression"], i["diagnostics"]) for i in written.json()["issue"]
                  if i["severity"] == "error"]
    assert from_cli == from_validate == from_write
    assert [e for _, e, _ in from_cli] == [["Patient.gender"], ["Patient.contact[0].gender"]]


async def test_malformed_coding_under_a_binding_is_a_client_error(client: httpx.AsyncClient) -> None:
    """A coding whose system is not a string reached the terminology checkers as a dict key (TypeError, 500)."""
    condition = {"resourceType": "Condition", "subject": {"reference": "Patient/x"}, "clinicalStatus": {
        "coding": [{"system": ["http://terminology.hl7.org/CodeSystem/condition-clinical"], "code": "active"}]}}
    checked = await client.post("/Condition/$validate", json=condition)
    assert checked.status_code == 200, checked.text
    assert any(i["expression"] == ["Condition.clinicalStatus.coding[0].system"]
               for i in checked.json()["issue"] if i["severity"] == "error")
    written = await client.post("/Condition", json=condition)
    assert written.status_code == 422, written.text

"""``$validate`` on both stores (http://hl7.org/fhir/R4/resource-operation-validate.html)."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ({"resourceType": "Patient", "gender": "male"}, True),
        ({"resourceType": "Patient", "birthDate": "1990-02-30"}, False),
        ({"resourceType": "Patient", "nickname": "x"}, False),
        ({"resourceType": "Observation", "code": {"text": "x"}}, False),  # status is required
    ],
)
async def test_type_level_validate(client: httpx.AsyncClient, body: dict, ok: bool) -> None:
    r = await client.post(f"/{body['resourceType']}/$validate", json=body)
    assert r.status_code == 200
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    errors = [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]
    assert (not errors) == ok, outcome
    if not ok:
        assert all(i.get("expression") for i in errors)


async def test_validate_with_parameters_and_instance(client: httpx.AsyncClient) -> None:
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": {"resourceType": "Patient", "active": "yes"}},
        {"name": "mode", "valueCode": "create"},
    ]}
    r = await client.post("/Patient/$validate", json=params)
    assert r.status_code == 200
    assert any(i["severity"] == "error" for i in r.json()["issue"])
    created = (await client.post("/Patient", json={"resourceType": "Patient"})).json()
    r = await client.post(f"/Patient/{created['id']}/$validate")
    assert r.status_code == 200
    assert not [i for i in r.json()["issue"] if i["severity"] in ("error", "fatal")]


async def test_validate_errors(client: httpx.AsyncClient) -> None:
    assert (await client.post("/Patient/$validate", json={"resourceType": "Patient"},
                              params={"mode": "sideways"})).status_code == 400
    assert (await client.post("/Patient/does-not-exist/$validate")).status_code == 404
    assert (await client.post("/Patient/$nonexistent", json={"resourceType": "Patient"})).status_code == 404
    assert (await client.post("/$validate", json={"resourceType": "Patient"})).status_code == 400
    mismatch = await client.post("/Patient/$validate", json={"resourceType": "Observation", "status": "final",
                                                              "code": {"text": "x"}})
    assert any(i["severity"] == "error" for i in mismatch.json()["issue"])


async def test_capability_statement_lists_validate(client: httpx.AsyncClient) -> None:
    cs = (await client.get("/metadata")).json()
    patient = next(r for r in cs["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"} in \
        patient["operation"]

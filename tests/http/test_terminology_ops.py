"""Terminology operations over HTTP on both stores
(http://hl7.org/fhir/R4/terminology-service.html)."""

from __future__ import annotations

import httpx
import pytest

SEX = "urn:oid:2.16.156.10011.2.3.3.4"
GENDER = "http://hl7.org/fhir/administrative-gender"


def param(body: dict, name: str) -> object:
    for p in body["parameter"]:
        if p["name"] == name:
            return next(v for k, v in p.items() if k.startswith("value"))
    raise KeyError(name)


async def test_lookup_get_and_post(client: httpx.AsyncClient) -> None:
    r = await client.get("/CodeSystem/$lookup", params={"system": SEX, "code": "1"})
    assert r.status_code == 200, r.text
    assert param(r.json(), "display") == "男"
    body = {"resourceType": "Parameters", "parameter": [{"name": "coding", "valueCoding": {"system": GENDER,
                                                                                              "code": "female"}}]}
    r = await client.post("/CodeSystem/$lookup", json=body)
    assert r.status_code == 200, r.text
    assert param(r.json(), "display") == "Female"


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"system": SEX, "code": "7"}, 404),
        ({"system": "http://example.org/unknown", "code": "x"}, 404),
        ({"system": SEX}, 400),
        ({"system": SEX, "code": "1", "bogus": "1"}, 400),
    ],
)
async def test_lookup_failures(client: httpx.AsyncClient, params: dict, status: int) -> None:
    r = await client.get("/CodeSystem/$lookup", params=params)
    assert r.status_code == status, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_validate_code_expand_translate_subsumes(client: httpx.AsyncClient) -> None:
    vs = "http://hl7.org/fhir/ValueSet/administrative-gender"
    ok = await client.get("/ValueSet/$validate-code", params={"url": vs, "system": GENDER, "code": "male"})
    assert param(ok.json(), "result") is True
    bad = await client.get("/ValueSet/$validate-code", params={"url": vs, "system": GENDER, "code": "robot"})
    assert param(bad.json(), "result") is False
    loinc = await client.get("/CodeSystem/$validate-code", params={"url": "http://loinc.org", "code": "8480-6"})
    assert loinc.status_code == 200
    assert all(p["name"] != "result" or p.get("valueBoolean") is not False for p in loinc.json()["parameter"])
    expanded = (await client.get("/ValueSet/$expand", params={"url": vs})).json()
    assert {c["code"] for c in expanded["expansion"]["contains"]} == {"male", "female", "other", "unknown"}
    filtered = (await client.get("/ValueSet/$expand", params={"url": vs, "filter": "fem"})).json()
    assert [c["code"] for c in filtered["expansion"]["contains"]] == ["female"]
    translated = await client.get("/ConceptMap/$translate", params={"system": SEX, "code": "2",
                                                                    "targetsystem": GENDER})
    assert translated.status_code == 200, translated.text
    assert param(translated.json(), "result") is True
    subsumes = await client.get("/CodeSystem/$subsumes", params={"system": GENDER, "codeA": "male",
                                                                 "codeB": "male"})
    assert param(subsumes.json(), "outcome") == "equivalent"


async def test_terminology_ops_only_on_their_types(client: httpx.AsyncClient) -> None:
    assert (await client.get("/Patient/$lookup", params={"system": SEX, "code": "1"})).status_code == 400
    cs = (await client.get("/metadata")).json()
    code_system = next(r for r in cs["rest"][0]["resource"] if r["type"] == "CodeSystem")
    assert {"lookup", "subsumes", "validate-code"} <= {o["name"] for o in code_system["operation"]}


async def test_code_system_written_through_the_api_is_used_at_once(client: httpx.AsyncClient) -> None:
    url = "http://example.org/fhir/CodeSystem/district-codes"
    cs = {"resourceType": "CodeSystem", "url": url, "status": "active", "content": "complete",
          "concept": [{"code": "310101", "display": "黄浦区"}, {"code": "310104", "display": "徐汇区"}]}
    created = await client.post("/CodeSystem", json=cs)
    assert created.status_code == 201
    r = await client.get("/CodeSystem/$lookup", params={"system": url, "code": "310104"})
    assert r.status_code == 200, r.text
    assert param(r.json(), "display") == "徐汇区"
    instance = await client.get(f"/CodeSystem/{created.json()['id']}/$lookup", params={"code": "310101"})
    assert param(instance.json(), "display") == "黄浦区"
    await client.delete(f"/CodeSystem/{created.json()['id']}")
    gone = await client.get("/CodeSystem/$lookup", params={"system": url, "code": "310104"})
    assert gone.status_code == 404


async def test_rolled_back_code_system_is_not_used(client: httpx.AsyncClient) -> None:
    url = "http://example.org/fhir/CodeSystem/rolled-back"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "CodeSystem", "url": url, "status": "active", "content": "complete",
                      "concept": [{"code": "a"}]}, "request": {"method": "POST", "url": "CodeSystem"}},
        {"resource": {"resourceType": "Patient", "active": "yes"}, "request": {"method": "POST", "url": "Patient"}},
    ]}
    assert (await client.post("/", json=bundle)).status_code == 422
    r = await client.get("/CodeSystem/$lookup", params={"system": url, "code": "a"})
    assert r.status_code == 404

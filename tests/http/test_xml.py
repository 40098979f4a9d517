"""FHIR XML over HTTP on both stores (http://hl7.org/fhir/R4/http.html#mime-type,
http://hl7.org/fhir/R4/xml.html): ``_format``, ``Accept``, XML request bodies for create, update,
transaction and ``$validate``, and every answer (resources, Bundles, OperationOutcomes, errors)
rendered as XML when XML was asked for."""

from __future__ import annotations

import httpx
import pytest

from profiles.fhirxml import from_xml, to_xml
from tests.conftest import unique

XML = "application/fhir+xml"
SEND_XML = {"Content-Type": XML, "Accept": XML}


def xml_body(response: httpx.Response) -> dict:
    assert response.headers["Content-Type"].split(";")[0] in (XML, "application/xml"), response.text
    return from_xml(response.content)


def rich_patient(pid: str) -> dict:
    return {
        "resourceType": "Patient", "id": pid,
        "text": {"status": "generated",
                 "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>张三 &amp; <b>son</b></p></div>'},
        "contained": [{"resourceType": "Organization", "id": "org", "name": "Clinic <A>"}],
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": unique("id")}],
        "name": [{"family": "Zhang", "given": ["San", "Er"], "_given": [None, {"id": "g2"}]}],
        "birthDate": "1974-12-25",
        "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                      "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
        "managingOrganization": {"reference": "#org"},
        "multipleBirthInteger": 2,
    }


@pytest.mark.parametrize(
    ("query", "headers", "media"),
    [
        ("?_format=xml", {}, XML),
        ("?_format=application/fhir%2Bxml", {}, XML),
        ("?_format=application/xml", {}, "application/xml"),
        ("?_format=text/xml", {"Accept": "application/fhir+json"}, XML),
        ("", {"Accept": XML}, XML),
        ("", {"Accept": "text/xml"}, XML),
        ("", {"Accept": "application/fhir+json;q=0.2, application/fhir+xml"}, XML),
        ("", {"Accept": "application/fhir+xml;q=0.5, application/fhir+json"}, "application/fhir+json"),
        ("", {"Accept": "*/*"}, "application/fhir+json"),
        ("?_format=json", {"Accept": XML}, "application/fhir+json"),
    ],
)
async def test_format_negotiation(client: httpx.AsyncClient, query: str, headers: dict, media: str) -> None:
    r = await client.get(f"/metadata{query}", headers=headers)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == f"{media}; charset=utf-8"
    body = from_xml(r.content) if "xml" in media else r.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert {"application/fhir+xml", "xml"} <= set(body["format"])


async def test_create_and_read_in_xml_keep_everything(client: httpx.AsyncClient) -> None:
    sent = rich_patient("ignored")
    created = await client.post("/Patient", content=to_xml(sent), headers=SEND_XML)
    assert created.status_code == 201, created.text
    body = xml_body(created)
    pid = body["id"]
    assert pid != "ignored" and body["meta"]["versionId"] == "1"
    as_json = (await client.get(f"/Patient/{pid}")).json()
    for key in ("text", "contained", "name", "birthDate", "_birthDate", "managingOrganization",
                "multipleBirthInteger", "identifier"):
        assert as_json[key] == sent[key], key
    as_xml = await client.get(f"/Patient/{pid}", headers={"Accept": XML})
    assert xml_body(as_xml) == as_json
    assert b'<birthDate value="1974-12-25"><extension url=' in as_xml.content
    assert sent["text"]["div"].encode() in as_xml.content


async def test_update_in_xml_and_pretty(client: httpx.AsyncClient) -> None:
    pid = unique("px")
    first = await client.put(f"/Patient/{pid}", content=to_xml(rich_patient(pid)), headers=SEND_XML)
    assert first.status_code == 201, first.text
    changed = {**rich_patient(pid), "gender": "male"}
    second = await client.put(f"/Patient/{pid}?_pretty=true", content=to_xml(changed, pretty=True),
                              headers=SEND_XML)
    assert second.status_code == 200
    assert second.content.count(b"\n") > 10
    assert xml_body(second)["gender"] == "male"
    assert second.headers["ETag"] == 'W/"2"'


async def test_search_bundle_in_xml(client: httpx.AsyncClient) -> None:
    pid = unique("ps")
    await client.put(f"/Patient/{pid}", json=rich_patient(pid))
    r = await client.get(f"/Patient?_id={pid}&_format=xml")
    assert r.status_code == 200
    bundle = xml_body(r)
    assert bundle["type"] == "searchset"
    assert [e["resource"]["id"] for e in bundle["entry"]] == [pid]
    assert b"<entry><fullUrl" in r.content and b"<resource><Patient>" in r.content


async def test_transaction_in_xml(client: httpx.AsyncClient) -> None:
    family = unique("fam")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0b8e1f4c-8a54-4b3a-9f0e-3c1d2b5a6e70",
         "resource": {"resourceType": "Patient", "name": [{"family": family}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
                      "subject": {"reference": "urn:uuid:0b8e1f4c-8a54-4b3a-9f0e-3c1d2b5a6e70"},
                      "valueQuantity": {"value": 72.50, "unit": "kg"}},
         "request": {"method": "POST", "url": "Observation"}},
    ]}
    r = await client.post("/", content=to_xml(bundle), headers=SEND_XML)
    assert r.status_code == 200, r.text
    response = xml_body(r)
    assert response["type"] == "transaction-response"
    assert [e["response"]["status"][:3] for e in response["entry"]] == ["201", "201"]
    found = (await client.get(f"/Observation?subject.family={family}")).json()
    assert found["entry"][0]["resource"]["valueQuantity"]["value"] == 72.5


@pytest.mark.parametrize(
    ("resource", "valid"),
    [
        ({"resourceType": "Patient", "gender": "male"}, True),
        ({"resourceType": "Patient", "birthDate": "1974-13-45"}, False),
    ],
)
async def test_validate_takes_xml(client: httpx.AsyncClient, resource: dict, valid: bool) -> None:
    r = await client.post("/Patient/$validate", content=to_xml(resource), headers=SEND_XML)
    outcome = xml_body(r)
    assert outcome["resourceType"] == "OperationOutcome"
    errors = [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]
    assert bool(errors) is not valid, outcome


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/Patient/no-such-patient", None, 404, "not-found"),
        ("GET", "/Patient?birthdate=not-a-date", None, 400, None),
        ("POST", "/Patient", b'<Patient xmlns="http://hl7.org/fhir"><nope value="1"/></Patient>', 400, "invalid"),
        ("POST", "/Patient", b'<Patient xmlns="http://example.org"/>', 400, "invalid"),
        ("POST", "/Patient", b"<Patient xmlns='http://hl7.org/fhir'><active value='true'></Patient>", 400, "invalid"),
        ("POST", "/Patient", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>'
                             b'<Patient xmlns="http://hl7.org/fhir"><id value="&a;"/></Patient>', 400, "invalid"),
        ("POST", "/Patient", b'<Observation xmlns="http://hl7.org/fhir"><status value="final"/></Observation>',
         400, "invalid"),
        ("POST", "/Patient", b'<Patient xmlns="http://hl7.org/fhir"><active value="maybe"/></Patient>', 422, None),
    ],
)
async def test_errors_are_xml_operation_outcomes(client: httpx.AsyncClient, method: str, path: str,
                                                 body: bytes | None, status: int, code: str | None) -> None:
    headers = SEND_XML if body is not None else {"Accept": XML}
    r = await client.request(method, path, content=body, headers=headers)
    assert r.status_code == status, r.text
    outcome = xml_body(r)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] in ("error", "fatal")
    if code:
        assert outcome["issue"][0]["code"] == code

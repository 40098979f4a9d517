"""read, vread, create, update, delete on both stores (http://hl7.org/fhir/R4/http.html)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import BASE, unique

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def patient(family: str = "Zhang", **extra: object) -> dict:
    return {"resourceType": "Patient", "name": [{"family": family, "given": ["San"]}], **extra}


def outcome_of(response: httpx.Response) -> dict:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"], body
    return body


async def test_create_assigns_id_version_and_location(client: httpx.AsyncClient) -> None:
    r = await client.post("/Patient", json=patient(id="client-chosen"), headers=FHIR_JSON)
    assert r.status_code == 201
    body = r.json()
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert r.headers["ETag"] == 'W/"1"'
    assert r.headers["Location"] == f"{BASE}/Patient/{body['id']}/_history/1"
    assert r.headers["Content-Type"].startswith("application/fhir+json")
    assert "Last-Modified" in r.headers


async def test_read_returns_what_was_created(client: httpx.AsyncClient) -> None:
    created = (await client.post("/Patient", json=patient("Li"))).json()
    r = await client.get(f"/Patient/{created['id']}")
    assert r.status_code == 200
    assert r.json() == created
    assert r.headers["ETag"] == 'W/"1"'


async def test_update_makes_new_version_and_vread_keeps_old(client: httpx.AsyncClient) -> None:
    created = (await client.post("/Patient", json=patient("Wang"))).json()
    changed = {**created, "gender": "female"}
    r = await client.put(f"/Patient/{created['id']}", json=changed)
    assert r.status_code == 200
    assert r.json()["meta"]["versionId"] == "2"
    assert r.headers["ETag"] == 'W/"2"'
    v1 = await client.get(f"/Patient/{created['id']}/_history/1")
    assert v1.status_code == 200 and "gender" not in v1.json()
    v2 = await client.get(f"/Patient/{created['id']}/_history/2")
    assert v2.json()["gender"] == "female"


async def test_update_without_changes_keeps_the_version(client: httpx.AsyncClient) -> None:
    created = (await client.post("/Patient", json=patient("Zhao"))).json()
    r = await client.put(f"/Patient/{created['id']}", json=created)
    assert r.status_code == 200
    assert r.json()["meta"]["versionId"] == "1"


async def test_update_as_create_with_client_id(client: httpx.AsyncClient) -> None:
    pid = unique("p")
    r = await client.put(f"/Patient/{pid}", json=patient(id=pid))
    assert r.status_code == 201
    assert r.headers["Location"].endswith(f"/Patient/{pid}/_history/1")
    assert (await client.get(f"/Patient/{pid}")).json()["id"] == pid


async def test_delete_then_read_is_gone_and_recreate_continues_versions(client: httpx.AsyncClient) -> None:
    pid = unique("p")
    await client.put(f"/Patient/{pid}", json=patient(id=pid))
    r = await client.delete(f"/Patient/{pid}")
    assert r.status_code == 204
    gone = await client.get(f"/Patient/{pid}")
    assert gone.status_code == 410
    assert outcome_of(gone)["issue"][0]["code"] == "deleted"
    again = await client.put(f"/Patient/{pid}", json=patient(id=pid))
    assert again.status_code == 201
    assert again.json()["meta"]["versionId"] == "3"


async def test_delete_of_missing_resource_is_not_an_error(client: httpx.AsyncClient) -> None:
    r = await client.delete(f"/Patient/{unique('none')}")
    assert r.status_code == 204


async def test_vread_of_deleted_version_is_gone(client: httpx.AsyncClient) -> None:
    pid = unique("p")
    await client.put(f"/Patient/{pid}", json=patient(id=pid))
    await client.delete(f"/Patient/{pid}")
    assert (await client.get(f"/Patient/{pid}/_history/2")).status_code == 410
    assert (await client.get(f"/Patient/{pid}/_history/1")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "code"),
    [
        ("POST", "/Patient", b"{not json", FHIR_JSON, 400, "invalid"),
        ("POST", "/Patient", b"", FHIR_JSON, 400, "invalid"),
        ("POST", "/Patient", b"[1, 2]", FHIR_JSON, 400, "invalid"),
        ("POST", "/Patient", b'{"resourceType": "Observation", "status": "final"}', FHIR_JSON, 400, "invalid"),
        ("POST", "/Patient", b'{"name": []}', FHIR_JSON, 400, "invalid"),
        ("POST", "/NoSuchType", b'{"resourceType": "NoSuchType"}', FHIR_JSON, 404, "not-found"),
        ("GET", "/NoSuchType/1", None, {}, 404, "not-found"),
        ("GET", "/Patient/does-not-exist", None, {}, 404, "not-found"),
        ("GET", "/Patient/bad id!", None, {}, 404, "not-found"),
        ("GET", "/Patient/x/_history/abc", None, {}, 404, "not-found"),
        ("POST", "/Patient", b'{"resourceType": "Patient"}', {"Content-Type": "text/plain"}, 415, "not-supported"),
        ("POST", "/Patient", b'<Patient xmlns="http://hl7.org/fhir"><nope/></Patient>',
         {"Content-Type": "application/fhir+xml"}, 400, "invalid"),
        ("POST", "/Patient", b"<Patient>", {"Content-Type": "application/fhir+xml"}, 400, "invalid"),
        ("GET", "/Patient?_format=yaml", None, {}, 406, "not-supported"),
        ("GET", "/metadata", None, {"Accept": "text/html"}, 406, "not-supported"),
        ("DELETE", "/metadata", None, {}, 405, "not-supported"),
        ("PUT", "/Patient/abc", b'{"resourceType": "Patient", "id": "xyz"}', FHIR_JSON, 400, "invalid"),
        ("PUT", "/Patient/abc", b'{"resourceType": "Patient"}', FHIR_JSON, 400, "invalid"),
        ("POST", "/Patient", b'{"resourceType": "Patient", "active": "yes"}', FHIR_JSON, 422, None),
        ("POST", "/Patient", b'{"resourceType": "Patient", "birthDate": "2024-13-01"}', FHIR_JSON, 422, None),
        ("POST", "/Patient", b'{"resourceType": "Patient", "unknownElement": 1}', FHIR_JSON, 422, None),
        ("GET", "/Patient/$everything-unknown", None, {}, 404, "not-found"),
    ],
)
async def test_bad_requests_get_operation_outcomes(
    client: httpx.AsyncClient, method: str, path: str, body: bytes | None, headers: dict, status: int, code: str | None
) -> None:
    r = await client.request(method, path, content=body, headers=headers)
    assert r.status_code == status, r.text
    issue = outcome_of(r)["issue"][0]
    assert issue["severity"] in ("error", "fatal")
    assert issue["diagnostics"]
    if code:
        assert issue["code"] == code


async def test_invalid_resource_names_the_element(client: httpx.AsyncClient) -> None:
    r = await client.post("/Patient", json={"resourceType": "Patient", "birthDate": "1990-02-30x"})
    assert r.status_code == 422
    expressions = [e for i in outcome_of(r)["issue"] for e in i.get("expression", [])]
    assert any("birthDate" in e for e in expressions), expressions


async def test_failed_write_stores_nothing(client: httpx.AsyncClient) -> None:
    pid = unique("p")
    r = await client.put(f"/Patient/{pid}", json={"resourceType": "Patient", "id": pid, "active": "yes"})
    assert r.status_code == 422
    assert (await client.get(f"/Patient/{pid}")).status_code == 404
    assert (await client.get(f"/Patient/{pid}/_history")).status_code == 404


async def test_oversized_payload_is_413(store) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import make_client

    async with make_client(store, max_body_bytes=1000) as small:
        big = patient(text={"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">'
                                                           + "x" * 2000 + "</div>"})
        r = await small.post("/Patient", json=big)
        assert r.status_code == 413
        assert outcome_of(r)["issue"][0]["code"] == "too-costly"


async def test_if_match_conflicts_are_412(client: httpx.AsyncClient) -> None:
    created = (await client.post("/Patient", json=patient("Sun"))).json()
    url = f"/Patient/{created['id']}"
    ok = await client.put(url, json={**created, "gender": "male"}, headers={"If-Match": 'W/"1"'})
    assert ok.status_code == 200
    stale = await client.put(url, json={**created, "gender": "female"}, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert (await client.get(url)).json()["gender"] == "male"
    bad = await client.put(url, json=created, headers={"If-Match": "nonsense"})
    assert bad.status_code == 400
    stale_delete = await client.delete(url, headers={"If-Match": 'W/"1"'})
    assert stale_delete.status_code == 412


async def test_conditional_read_headers(client: httpx.AsyncClient) -> None:
    created = (await client.post("/Patient", json=patient("Zhou"))).json()
    url = f"/Patient/{created['id']}"
    assert (await client.get(url, headers={"If-None-Match": 'W/"1"'})).status_code == 304
    assert (await client.get(url, headers={"If-None-Match": 'W/"7"'})).status_code == 200
    last_modified = (await client.get(url)).headers["Last-Modified"]
    assert (await client.get(url, headers={"If-Modified-Since": last_modified})).status_code == 304
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert (await client.get(url, headers={"If-Modified-Since": old})).status_code == 200


@pytest.mark.parametrize(
    ("prefer", "expect_body"),
    [("return=minimal", None), ("return=representation", "Patient"), ("return=OperationOutcome", "OperationOutcome")],
)
async def test_prefer_return(client: httpx.AsyncClient, prefer: str, expect_body: str | None) -> None:
    r = await client.post("/Patient", json=patient("Wu"), headers={"Prefer": prefer})
    assert r.status_code == 201
    assert "Location" in r.headers
    if expect_body is None:
        assert r.content == b""
    else:
        assert r.json()["resourceType"] == expect_body


async def test_format_and_pretty(client: httpx.AsyncClient) -> None:
    created = (await client.post("/Patient", json=patient("Zheng"))).json()
    r = await client.get(f"/Patient/{created['id']}?_format=application/json&_pretty=true")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert b"\n  " in r.content
    r = await client.get(f"/Patient/{created['id']}", headers={"Accept": "application/fhir+json"})
    assert r.headers["Content-Type"].startswith("application/fhir+json")


async def test_summary_and_elements_on_read(client: httpx.AsyncClient) -> None:
    created = (await client.post("/Patient", json=patient("Feng", gender="male", birthDate="1980-01-01",
                                                          text={"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'}))).json()
    url = f"/Patient/{created['id']}"
    summary = (await client.get(url + "?_summary=true")).json()
    assert "text" not in summary and summary["gender"] == "male"
    assert any(t["code"] == "SUBSETTED" for t in summary["meta"]["tag"])
    only = (await client.get(url + "?_elements=gender")).json()
    assert only["gender"] == "male" and "birthDate" not in only and "name" not in only
    text = (await client.get(url + "?_summary=text")).json()
    assert "text" in text and "gender" not in text
    data = (await client.get(url + "?_summary=data")).json()
    assert "text" not in data and data["birthDate"] == "1980-01-01"
    assert (await client.get(url + "?_summary=nonsense")).status_code == 400


async def test_metadata_is_a_capability_statement(client: httpx.AsyncClient) -> None:
    r = await client.get("/metadata")
    assert r.status_code == 200
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1"
    types = {res["type"]: res for res in cs["rest"][0]["resource"]}
    assert len(types) >= 145
    patient_caps = types["Patient"]
    codes = {i["code"] for i in patient_caps["interaction"]}
    assert {"read", "vread", "update", "patch", "delete", "create", "history-instance", "search-type"} <= codes
    names = {p["name"] for p in patient_caps["searchParam"]}
    assert {"identifier", "name", "birthdate"} <= names
    assert "near" not in {p["name"] for p in types["Location"]["searchParam"]}
    assert cs["format"] == ["application/fhir+json", "json", "application/fhir+xml", "xml"]


async def test_health_ready_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["store"] in ("sqlite", "mongo")
    await client.get("/metadata")
    metrics = await client.get("/metrics")
    assert 'yidang_requests_total{interaction="capabilities",status="200"}' in metrics.text
    assert "yidang_request_seconds_bucket" in metrics.text


async def test_unknown_path_and_method(client: httpx.AsyncClient) -> None:
    r = await client.get("/Patient/1/2/3/4/5")
    assert r.status_code == 404
    outcome_of(r)
    r = await client.post("/Patient/123")
    assert r.status_code == 405
    outcome_of(r)

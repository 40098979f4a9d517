"""batch and transaction Bundles on both stores (http://hl7.org/fhir/R4/http.html#transaction)."""

from __future__ import annotations

import base64

import httpx
import orjson

from tests.conftest import BASE as BASE_URL
from tests.conftest import unique

SYSTEM = "urn:oid:2.16.156.10011.1.3"


def tx(*entries: dict, kind: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(full_url: str, resource: dict, **request: str) -> dict:
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"], **request}}


async def test_transaction_resolves_urn_uuid_references(client: httpx.AsyncClient) -> None:
    value = unique("tx")
    bundle = tx(
        post("urn:uuid:obs-1", {"resourceType": "Observation", "status": "final", "code": {"text": "glucose"},
                                "subject": {"reference": "urn:uuid:pat-1"}}),
        post("urn:uuid:pat-1", {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": value}]}),
    )
    r = await client.post("/", json=bundle)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "transaction-response"
    obs_loc, pat_loc = (e["response"]["location"] for e in out["entry"])
    assert all(e["response"]["status"].startswith("201") for e in out["entry"])
    obs = (await client.get("/" + obs_loc.split("/_history")[0])).json()
    assert obs["subject"]["reference"] == pat_loc.split("/_history")[0]


async def test_transaction_is_all_or_nothing(client: httpx.AsyncClient) -> None:
    value = unique("rollback")
    pid = unique("p")
    bundle = tx(
        post("urn:uuid:a", {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": value}]}),
        {"resource": {"resourceType": "Patient", "id": pid}, "request": {"method": "PUT", "url": f"Patient/{pid}"}},
        post("urn:uuid:b", {"resourceType": "Observation", "status": ["final"], "code": {"text": "x"}}),
    )
    r = await client.post("/", json=bundle)
    assert r.status_code == 422
    issue = r.json()["issue"][0]
    assert "Bundle.entry[2]" in issue["diagnostics"]
    assert (await client.get(f"/Patient/{pid}")).status_code == 404
    assert (await client.get(f"/Patient?identifier={value}")).json().get("entry", []) == []


async def test_transaction_order_and_conditional_entries(client: httpx.AsyncClient) -> None:
    value = unique("order")
    existing = (await client.post("/Patient", json={"resourceType": "Patient",
                                                     "identifier": [{"system": SYSTEM, "value": value}]})).json()
    doomed = (await client.post("/Patient", json={"resourceType": "Patient"})).json()
    bundle = tx(
        {"request": {"method": "GET", "url": f"Patient/{doomed['id']}"}},
        post("urn:uuid:p", {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": value}]},
             ifNoneExist=f"identifier={SYSTEM}|{value}"),
        post("urn:uuid:o", {"resourceType": "Observation", "status": "final", "code": {"text": "bp"},
                            "subject": {"reference": f"Patient?identifier={SYSTEM}|{value}"}}),
        {"request": {"method": "DELETE", "url": f"Patient/{doomed['id']}"}},
    )
    r = await client.post("/", json=bundle)
    assert r.status_code == 200, r.text
    get, create_p, create_o, delete = r.json()["entry"]
    assert get["response"]["status"].startswith("410")  # GET runs after the DELETE
    assert create_p["response"]["status"].startswith("200")  # ifNoneExist matched
    assert create_p["response"]["location"].startswith(f"Patient/{existing['id']}/")
    assert delete["response"]["status"].startswith("204")
    obs = (await client.get("/" + create_o["response"]["location"].split("/_history")[0])).json()
    assert obs["subject"]["reference"] == f"Patient/{existing['id']}"


async def test_conditional_update_writes_where_its_references_point(client: httpx.AsyncClient) -> None:
    """Conditional entries are matched once, before any write: a POST earlier in the same
    transaction that happens to match a PUT's criteria does not redirect the PUT, so the entries
    that reference the PUT's fullUrl point at the resource the PUT wrote."""
    value = unique("once")
    patient = {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": value}]}
    bundle = tx(
        post("urn:uuid:first", patient),
        {"fullUrl": "urn:uuid:second", "resource": {**patient, "gender": "female"},
         "request": {"method": "PUT", "url": f"Patient?identifier={SYSTEM}|{value}"}},
        post("urn:uuid:obs", {"resourceType": "Observation", "status": "final", "code": {"text": "bp"},
                              "subject": {"reference": "urn:uuid:second"}}),
    )
    r = await client.post("/", json=bundle)
    assert r.status_code == 200, r.text
    first, second, obs = (e["response"] for e in r.json()["entry"])
    assert first["status"].startswith("201") and second["status"].startswith("201")
    observation = (await client.get("/" + obs["location"].split("/_history")[0])).json()
    written = (await client.get("/" + observation["subject"]["reference"])).json()
    assert written["gender"] == "female"


async def test_transaction_with_unresolvable_references_fails(client: httpx.AsyncClient) -> None:
    bundle = tx(post("urn:uuid:o", {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                                    "subject": {"reference": "urn:uuid:nowhere"}}))
    assert (await client.post("/", json=bundle)).status_code == 400
    bundle = tx(post("urn:uuid:o", {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                                    "subject": {"reference": f"Patient?identifier={unique()}"}}))
    assert (await client.post("/", json=bundle)).status_code == 412


async def test_transaction_put_patch_and_if_match(client: httpx.AsyncClient) -> None:
    pid = unique("p")
    await client.put(f"/Patient/{pid}", json={"resourceType": "Patient", "id": pid})
    patch = base64.b64encode(orjson.dumps([{"op": "add", "path": "/gender", "value": "male"}])).decode()
    ok = tx({"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": patch},
             "request": {"method": "PATCH", "url": f"Patient/{pid}", "ifMatch": 'W/"1"'}})
    r = await client.post("/", json=ok)
    assert r.status_code == 200, r.text
    assert (await client.get(f"/Patient/{pid}")).json()["gender"] == "male"
    stale = tx({"resource": {"resourceType": "Patient", "id": pid},
                "request": {"method": "PUT", "url": f"Patient/{pid}", "ifMatch": 'W/"1"'}})
    assert (await client.post("/", json=stale)).status_code == 412


async def test_batch_entries_are_independent(client: httpx.AsyncClient) -> None:
    pid = unique("p")
    bundle = tx(
        {"resource": {"resourceType": "Patient", "id": pid}, "request": {"method": "PUT", "url": f"Patient/{pid}"}},
        {"resource": {"resourceType": "Patient", "active": "yes"}, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": f"Patient/{unique()}"}},
        {"request": {"method": "GET", "url": f"Patient/{pid}"}},
        kind="batch",
    )
    r = await client.post("/", json=bundle)
    assert r.status_code == 200
    statuses = [e["response"]["status"][:3] for e in r.json()["entry"]]
    assert statuses == ["201", "422", "404", "200"]
    assert r.json()["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert r.json()["entry"][3]["resource"]["id"] == pid


async def test_bundle_errors(client: httpx.AsyncClient) -> None:
    assert (await client.post("/", json={"resourceType": "Patient"})).status_code == 400
    assert (await client.post("/", json={"resourceType": "Bundle", "type": "collection"})).status_code == 400
    no_request = tx({"resource": {"resourceType": "Patient"}})
    r = await client.post("/", json=no_request)
    assert r.status_code == 400
    assert "Bundle.entry[0].request" in r.json()["issue"][0]["expression"][0]
    bad_method = tx({"request": {"method": "FETCH", "url": "Patient"}})
    assert (await client.post("/", json=bad_method)).status_code == 400


async def test_transaction_with_representation(client: httpx.AsyncClient) -> None:
    bundle = tx(post("urn:uuid:x", {"resourceType": "Patient", "gender": "female"}))
    r = await client.post("/", json=bundle, headers={"Prefer": "return=representation"})
    assert r.json()["entry"][0]["resource"]["gender"] == "female"


async def test_base_url_without_trailing_slash(client: httpx.AsyncClient) -> None:
    bundle = tx(post("urn:uuid:s", {"resourceType": "Patient"}))
    r = await client.post(BASE_URL, json=bundle)
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "transaction-response"

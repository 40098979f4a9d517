"""Conditions that constrain nothing are refused, the conditional-create forms real clients send are
read, and malformed ids and versions are 4xx, on both stores (http://hl7.org/fhir/R4/http.html#ccreate,
#cond-update, #3.1.0.7.1, #transaction).

Every refusal is checked from the outside too: nothing was deleted, overwritten or created.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import orjson
import pytest

from server.app import create_app
from server.interactions.conditional import criteria_key
from server.settings import Settings
from server.stores.base import Store
from tests.conftest import BASE, make_client, unique

SYSTEM = "urn:oid:2.16.156.10011.1.3"
PATCH = {"Content-Type": "application/json-patch+json"}
EMPTY = ["_format=json", "_pretty=true", "_format=json&_pretty=true", "_format=application/fhir%2Bjson"]
"""Criteria that look like criteria but filter nothing."""
RESULT = ["_count=1", "_sort=_id", "_summary=true", "_elements=status", "_include=Flag:subject", "_total=accurate"]
"""Result parameters: never silently part of a condition (``_count=1`` would narrow the match set)."""


def flag(value: str, text: str = "original") -> dict[str, Any]:
    return {"resourceType": "Flag", "identifier": [{"system": SYSTEM, "value": value}], "status": "active",
            "code": {"text": text}, "subject": {"reference": "Patient/someone"}}


def person(value: str, **extra: object) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": value}], **extra}


async def stored(client: httpx.AsyncClient, type_: str, value: str) -> list[dict[str, Any]]:
    """Every current ``type_`` carrying identifier ``value``."""
    found = (await client.get(f"/{type_}", params={"identifier": f"{SYSTEM}|{value}"})).json()
    return [e["resource"] for e in found.get("entry", [])]


async def unchanged(client: httpx.AsyncClient, created: dict[str, Any]) -> None:
    current = await client.get(f"/Flag/{created['id']}")
    assert current.status_code == 200, current.text
    assert current.json()["meta"]["versionId"] == created["meta"]["versionId"]
    assert current.json()["code"] == created["code"]


def refused(r: httpx.Response) -> None:
    assert r.status_code == 400, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


def entry_status(r: httpx.Response, index: int) -> str:
    assert r.status_code == 200, r.text
    return str(r.json()["entry"][index]["response"]["status"])


def binary_patch(ops: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Binary", "contentType": "application/json-patch+json",
            "data": base64.b64encode(orjson.dumps(ops)).decode()}


# --- a condition must filter something -----------------------------------------------------------


@pytest.mark.parametrize("criteria", EMPTY + RESULT)
async def test_conditional_delete_that_filters_nothing_is_refused(client: httpx.AsyncClient, criteria: str) -> None:
    created = (await client.post("/Flag", json=flag(unique("del")))).json()
    refused(await client.delete(f"/Flag?{criteria}"))
    await unchanged(client, created)


@pytest.mark.parametrize("criteria", EMPTY + RESULT)
async def test_conditional_update_that_filters_nothing_is_refused(client: httpx.AsyncClient, criteria: str) -> None:
    created = (await client.post("/Flag", json=flag(unique("put")))).json()
    value = unique("put-new")
    refused(await client.put(f"/Flag?{criteria}", json=flag(value, "overwritten")))
    await unchanged(client, created)
    assert await stored(client, "Flag", value) == []


@pytest.mark.parametrize("criteria", EMPTY + RESULT)
async def test_conditional_patch_that_filters_nothing_is_refused(client: httpx.AsyncClient, criteria: str) -> None:
    created = (await client.post("/Flag", json=flag(unique("patch")))).json()
    ops = [{"op": "replace", "path": "/code/text", "value": "patched"}]
    refused(await client.patch(f"/Flag?{criteria}", json=ops, headers=PATCH))
    await unchanged(client, created)


@pytest.mark.parametrize("criteria", [*EMPTY, *RESULT, "", "   ", "?"])
async def test_if_none_exist_that_filters_nothing_is_refused(client: httpx.AsyncClient, criteria: str) -> None:
    existing = (await client.post("/Flag", json=flag(unique("ine")))).json()
    value = unique("ine-new")
    refused(await client.post("/Flag", json=flag(value), headers={"If-None-Exist": criteria}))
    assert await stored(client, "Flag", value) == []
    await unchanged(client, existing)


async def test_format_beside_a_real_filter_still_matches_only_that(client: httpx.AsyncClient) -> None:
    keep = (await client.post("/Flag", json=flag(unique("keep")))).json()
    value = unique("gone")
    gone = (await client.post("/Flag", json=flag(value))).json()
    r = await client.delete(f"/Flag?identifier={SYSTEM}|{value}&_format=json&_pretty=true")
    assert r.status_code == 204, r.text
    assert (await client.get(f"/Flag/{gone['id']}")).status_code == 410
    await unchanged(client, keep)
    again = await client.post("/Flag", json=flag(value), headers={"If-None-Exist": f"identifier={value}&_format=json"})
    assert again.status_code == 201, again.text


async def test_empty_conditions_in_a_transaction_change_nothing(client: httpx.AsyncClient) -> None:
    created = (await client.post("/Flag", json=flag(unique("tx")))).json()
    value = unique("tx-new")
    ops = [{"op": "replace", "path": "/code/text", "value": "patched"}]
    entries = [
        {"resource": flag(value), "request": {"method": "POST", "url": "Flag", "ifNoneExist": "_format=json"}},
        {"resource": flag(value, "overwritten"), "request": {"method": "PUT", "url": "Flag?_pretty=true"}},
        {"resource": binary_patch(ops), "request": {"method": "PATCH", "url": "Flag?_format=json"}},
        {"request": {"method": "DELETE", "url": "Flag?_format=json"}},
        {"request": {"method": "DELETE", "url": "Flag?_count=1"}},
    ]
    for bad in entries:
        # each bad entry beside a good POST: the whole transaction is refused, the good POST included
        good = unique("tx-good")
        bundle = {"resourceType": "Bundle", "type": "transaction",
                  "entry": [{"resource": flag(good), "request": {"method": "POST", "url": "Flag"}}, bad]}
        refused(await client.post("/", json=bundle))
        assert await stored(client, "Flag", good) == []
        assert await stored(client, "Flag", value) == []
        await unchanged(client, created)


async def test_empty_conditions_in_a_batch_fail_their_entry_only(client: httpx.AsyncClient) -> None:
    created = (await client.post("/Flag", json=flag(unique("batch")))).json()
    value, good = unique("batch-new"), unique("batch-good")
    ops = [{"op": "replace", "path": "/code/text", "value": "patched"}]
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": flag(value), "request": {"method": "POST", "url": "Flag", "ifNoneExist": "_pretty=true"}},
        {"resource": flag(value, "overwritten"), "request": {"method": "PUT", "url": "Flag?_format=json"}},
        {"resource": binary_patch(ops), "request": {"method": "PATCH", "url": "Flag?_pretty=true"}},
        {"request": {"method": "DELETE", "url": "Flag?_format=json"}},
        {"resource": flag(good), "request": {"method": "POST", "url": "Flag"}},
    ]}
    r = await client.post("/", json=bundle)
    assert [entry_status(r, i) for i in range(5)] == ["400", "400", "400", "400", "201 Created"]
    assert await stored(client, "Flag", value) == []
    assert len(await stored(client, "Flag", good)) == 1
    await unchanged(client, created)


async def test_conditional_reference_that_filters_nothing_is_refused(client: httpx.AsyncClient) -> None:
    await client.post("/Patient", json=person(unique("only")))
    value = unique("ref")
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": value},
                   "identifier": [{"system": SYSTEM, "value": value}],
                   "subject": {"reference": "Patient?_format=json"}}
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"resource": observation, "request": {"method": "POST", "url": "Observation"}}]}
    refused(await client.post("/", json=bundle))
    assert await stored(client, "Observation", value) == []


# --- the conditional-create forms clients send ----------------------------------------------------


@pytest.mark.parametrize("form", [f"{BASE}/Patient?", f"{BASE}/?", f"{BASE}?", "Patient?", "/Patient?", "?", ""])
async def test_if_none_exist_forms_match_the_existing_resource(client: httpx.AsyncClient, form: str) -> None:
    value = unique("form")
    first = await client.post("/Patient", json=person(value))
    assert first.status_code == 201
    header = {"If-None-Exist": f"{form}identifier={SYSTEM}|{value}"}
    second = await client.post("/Patient", json=person(value, gender="male"), headers=header)
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert len(await stored(client, "Patient", value)) == 1


@pytest.mark.parametrize("form", ["http://elsewhere.test/fhir/Patient?", "https://yidang.test/fhir/Patient?",
                                  "http://yidang.test/other/Patient?", "Observation?",
                                  f"{BASE}/Observation?"])
async def test_if_none_exist_naming_another_server_or_type_is_refused(client: httpx.AsyncClient, form: str) -> None:
    value = unique("elsewhere")
    r = await client.post("/Patient", json=person(value), headers={"If-None-Exist": f"{form}identifier={value}"})
    refused(r)
    assert r.json()["issue"][0]["expression"] == ["If-None-Exist"]
    assert await stored(client, "Patient", value) == []


async def test_if_none_exist_absolute_url_uses_the_request_base_when_none_is_configured(store: Store) -> None:
    app = create_app(Settings(log_requests=False), store=store)
    transport = httpx.ASGITransport(app=app, root_path="/fhir")
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        value = unique("ownbase")
        first = await client.post("/Patient", json=person(value))
        header = {"If-None-Exist": f"{BASE}/Patient?identifier={value}"}
        second = await client.post("/Patient", json=person(value), headers=header)
        assert second.status_code == 200, second.text
        assert second.json()["id"] == first.json()["id"]
        other = {"If-None-Exist": f"http://elsewhere.test/fhir/Patient?identifier={value}"}
        refused(await client.post("/Patient", json=person(value), headers=other))
        assert len(await stored(client, "Patient", value)) == 1


async def test_create_with_criteria_in_the_query_is_conditional(client: httpx.AsyncClient) -> None:
    value = unique("fhirpy")
    url = f"/Patient?identifier={SYSTEM}|{value}"
    first = await client.post(url, json=person(value))
    assert first.status_code == 201, first.text
    second = await client.post(url + "&_format=json", json=person(value, gender="male"))
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    same = await client.post(url, json=person(value), headers={"If-None-Exist": f"identifier={SYSTEM}|{value}"})
    assert same.status_code == 200, same.text
    assert len(await stored(client, "Patient", value)) == 1


async def test_create_query_disagreeing_with_if_none_exist_is_refused(client: httpx.AsyncClient) -> None:
    value, other = unique("q"), unique("h")
    r = await client.post(f"/Patient?identifier={value}", json=person(value),
                          headers={"If-None-Exist": f"identifier={other}"})
    refused(r)
    assert await stored(client, "Patient", value) == []
    refused(await client.post(f"/Patient?identifier={value}&_count=1", json=person(value)))
    assert await stored(client, "Patient", value) == []


async def test_create_with_only_format_in_the_query_is_a_plain_create(client: httpx.AsyncClient) -> None:
    value = unique("plain")
    for _ in range(2):
        assert (await client.post("/Patient?_format=json&_pretty=true", json=person(value))).status_code == 201
    assert len(await stored(client, "Patient", value)) == 2


async def test_bundle_entries_read_the_same_conditional_create_forms(client: httpx.AsyncClient) -> None:
    value = unique("bundle-form")
    first = (await client.post("/Patient", json=person(value))).json()
    for kind in ("batch", "transaction"):
        entries = [
            {"resource": person(value), "request": {"method": "POST", "url": f"Patient?identifier={value}"}},
            {"resource": person(value), "request": {"method": "POST", "url": "Patient",
                                                     "ifNoneExist": f"{BASE}/Patient?identifier={value}"}},
            {"resource": person(value), "request": {"method": "POST", "url": f"{BASE}/Patient",
                                                     "ifNoneExist": f"Patient?identifier={value}"}},
        ]
        r = await client.post("/", json={"resourceType": "Bundle", "type": kind, "entry": entries})
        assert [entry_status(r, i) for i in range(3)] == ["200 OK"] * 3, r.text
        assert all(e["response"]["location"].startswith(f"Patient/{first['id']}/") for e in r.json()["entry"])
    assert len(await stored(client, "Patient", value)) == 1


async def test_bundle_entries_naming_another_server_or_disagreeing_are_refused(client: httpx.AsyncClient) -> None:
    value = unique("bundle-bad")
    bad = [
        {"method": "POST", "url": "Patient", "ifNoneExist": f"http://elsewhere.test/fhir/Patient?identifier={value}"},
        {"method": "POST", "url": "Patient", "ifNoneExist": f"Observation?identifier={value}"},
        {"method": "POST", "url": f"Patient?identifier={value}", "ifNoneExist": f"identifier={unique()}"},
    ]
    batch = {"resourceType": "Bundle", "type": "batch",
             "entry": [{"resource": person(value), "request": b} for b in bad]}
    r = await client.post("/", json=batch)
    assert [entry_status(r, i) for i in range(3)] == ["400"] * 3
    for request in bad:
        transaction = {"resourceType": "Bundle", "type": "transaction",
                       "entry": [{"resource": person(value), "request": request}]}
        refused(await client.post("/", json=transaction))
    assert await stored(client, "Patient", value) == []


# --- ids and versions ----------------------------------------------------------------------------


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("bad_id", [5, None, ["a"], {"v": "a"}, True])
async def test_non_string_id_in_an_update_is_400_naming_id(store: Store, validate: bool, bad_id: object) -> None:
    async with make_client(store, validate_on_write=validate) as client:
        value = unique("numid")
        for url in (f"/Patient?identifier={value}", "/Patient/5"):
            r = await client.put(url, json=person(value, id=bad_id))
            refused(r)
            assert r.json()["issue"][0]["expression"] == ["id"], r.text
        entry = {"resource": person(value, id=bad_id),
                 "request": {"method": "PUT", "url": f"Patient?identifier={value}"}}
        refused(await client.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": [entry]}))
        batch = await client.post("/", json={"resourceType": "Bundle", "type": "batch", "entry": [entry]})
        assert entry_status(batch, 0) == "400"
        assert await stored(client, "Patient", value) == []


@pytest.mark.parametrize("vid", ["99999999999999999999999", "9223372036854775808", "9" * 5000, "-1", "abc", "²",
                                 "1.5", "0x10"])
async def test_vread_of_an_impossible_version_is_not_found(client: httpx.AsyncClient, vid: str) -> None:
    created = (await client.post("/Patient", json=person(unique("vread")))).json()
    r = await client.get(f"/Patient/{created['id']}/_history/{vid}")
    assert r.status_code in (400, 404), r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    entry = {"request": {"method": "GET", "url": f"Patient/{created['id']}/_history/{vid}"}}
    batch = await client.post("/", json={"resourceType": "Bundle", "type": "batch", "entry": [entry]})
    assert entry_status(batch, 0) in ("400", "404")


@pytest.mark.parametrize("etag", ['W/"²"', 'W/"' + "9" * 5000 + '"', 'W/"-1"'])
async def test_malformed_if_match_is_400(client: httpx.AsyncClient, etag: str) -> None:
    created = (await client.post("/Patient", json=person(unique("etag")))).json()
    url = f"Patient/{created['id']}"
    # HTTP header bytes arrive decoded as latin-1, so b"\xb2" is the "²" that str.isdigit() accepts
    r = await client.put(f"/{url}", json={**created, "gender": "male"}, headers={b"If-Match": etag.encode("latin-1")})
    refused(r)
    entry = {"resource": {**created, "gender": "male"}, "request": {"method": "PUT", "url": url, "ifMatch": etag}}
    refused(await client.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": [entry]}))
    assert (await client.get(f"/{url}")).json()["meta"]["versionId"] == "1"


async def test_update_id_disagreeing_with_the_url_is_400_before_any_validation(client: httpx.AsyncClient) -> None:
    created = (await client.post("/Patient", json=person(unique("idcheck")))).json()
    url = f"Patient/{created['id']}"
    invalid = {"resourceType": "Patient", "gender": "no-such-gender"}  # a 422 on its own
    r = await client.put(f"/{url}", json={**invalid, "id": "someone-else"})
    refused(r)
    assert r.json()["issue"][0]["expression"] == ["id"]
    # the URL's id itself is not a valid id: 400 too, with or without validation (was a 422 with it)
    refused(await client.put("/Patient/not_valid", json={**invalid, "id": "not_valid"}))
    for other in ({**invalid}, {**invalid, "resourceType": "Observation"}):
        # another entry that fails validation does not hide the PUT's disagreeing id behind a 422
        value = unique("idcheck-post")
        entries = [{"resource": person(value, id="someone-else"), "request": {"method": "PUT", "url": url}},
                   {"resource": {**other, "identifier": [{"system": SYSTEM, "value": value}]},
                    "request": {"method": "POST", "url": other["resourceType"]}}]
        r = await client.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
        refused(r)
        assert "Bundle.entry[0]" in r.json()["issue"][0]["diagnostics"]
        assert await stored(client, "Patient", value) == []
    assert (await client.get(f"/{url}")).json()["meta"]["versionId"] == "1"


async def test_empty_if_none_exist_is_400_even_with_an_invalid_body(client: httpx.AsyncClient) -> None:
    value = unique("ine-invalid")
    body = {**flag(value), "status": "no-such-status"}  # a 422 on its own
    refused(await client.post("/Flag", json=body, headers={"If-None-Exist": "_format=json"}))
    assert await stored(client, "Flag", value) == []


async def test_bundle_request_url_on_another_server_is_refused(client: httpx.AsyncClient) -> None:
    value = unique("url-elsewhere")
    created = (await client.post("/Patient", json=person(value))).json()
    for request in ({"method": "POST", "url": "http://elsewhere.test/fhir/Patient"},
                    {"method": "PUT", "url": f"http://elsewhere.test/fhir/Patient?identifier={value}"},
                    {"method": "DELETE", "url": f"https://elsewhere.test/fhir/Patient/{created['id']}"}):
        for kind in ("batch", "transaction"):
            entry = {"resource": person(value, gender="male"), "request": request}
            r = await client.post("/", json={"resourceType": "Bundle", "type": kind, "entry": [entry]})
            refused(r)
            assert r.json()["issue"][0]["expression"] == ["Bundle.entry[0].request.url"]
    assert [p["meta"]["versionId"] for p in await stored(client, "Patient", value)] == ["1"]


async def test_concurrent_creates_in_every_form_make_one_resource(client: httpx.AsyncClient) -> None:
    """The lock key ignores ``_format`` and the form the criteria came in, so creates that differ
    only in those still serialise on one key."""
    value = unique("forms-race")
    criteria = f"identifier={SYSTEM}|{value}"
    forms: list[tuple[str, dict[str, str]]] = [
        ("/Patient", {"If-None-Exist": criteria}),
        ("/Patient", {"If-None-Exist": f"{criteria}&_format=json"}),
        ("/Patient", {"If-None-Exist": f"{BASE}/Patient?{criteria}"}),
        (f"/Patient?{criteria}", {}),
        (f"/Patient?_pretty=true&{criteria}", {}),
    ]
    responses = await asyncio.gather(*(client.post(url, json=person(value), headers=headers)
                                       for url, headers in forms * 6))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 29 + [201], statuses
    assert len(await stored(client, "Patient", value)) == 1


def test_criteria_key_ignores_order_and_format() -> None:
    a = criteria_key("Patient", "identifier=a|1&birthdate=2000")
    assert a == criteria_key("Patient", "birthdate=2000&_format=json&identifier=a%7C1&_pretty=true")
    assert a != criteria_key("Patient", "identifier=a|2&birthdate=2000")

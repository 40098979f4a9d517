"""Fuzzing the REST API on both stores: whatever a client sends, the answer is never a 5xx, every 4xx
carries an OperationOutcome, and the server still works afterwards.

Bodies are random FHIR-shaped JSON (known and random element names, values of every JSON type,
nesting), random bytes and wrong content types, sent to create, update, patch, transaction/batch
and ``$validate``; searches get random parameter names, modifiers, prefixes, chains and values
(unicode, huge numbers). Bounded and reproducible: ``derandomize`` fixes the examples, so CI runs the
same ones every time.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import unique

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
pytestmark = pytest.mark.slow  # 200 examples per property on both stores: CI runs it
ACCEPT = {"Accept": "application/fhir+json"}
TYPES = ["Patient", "Observation", "Encounter", "Organization", "Bundle", "Parameters", "Binary"]
ELEMENTS = ["id", "meta", "resourceType", "name", "family", "given", "gender", "birthDate", "active", "identifier",
            "system", "value", "code", "coding", "subject", "reference", "status", "valueQuantity", "unit",
            "effectiveDateTime", "extension", "url", "valueString", "contained", "text", "div", "entry",
            "resource", "request", "method", "fullUrl", "type", "profile", "versionId", "lastUpdated", "_gender",
            "telecom", "address", "line", "period", "start", "end", "component", "valueDecimal"]

text = st.text(max_size=12)
numbers = st.one_of(st.integers(min_value=-(10**30), max_value=10**30),
                    st.floats(allow_nan=False, allow_infinity=False))
scalars = st.one_of(st.none(), st.booleans(), numbers, text, st.sampled_from(
    ["1970-01-01", "2024-02-30", "2024-01-01T10:00:00Z", "urn:uuid:x", "Patient/1", "#c", "male", "0", "-1",
     "http://loinc.org", "\u0000", "😀", "𠀀", "1e400", "Patient/../x"]))
keys = st.one_of(st.sampled_from(ELEMENTS), text)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=16)


dates = st.one_of(st.sampled_from(["2024", "2024-02", "2024-02-29", "2023-02-29", "2024-01-01T10:00:00Z",
                                    "2024-01-01T10:00:00+08:00", "2024-01-01T25:00:00Z", "0000", "10000-01-01",
                                    "2024-01-01T10:00:00.123456789Z", "1900-01-01T00:00:00-14:00"]), text)
urls = st.one_of(st.sampled_from(["http://loinc.org", "http://unitsofmeasure.org", "urn:oid:2.16.156",
                                  "http://hl7.org/fhir/StructureDefinition/Patient", "Patient/1", "#c1",
                                  "urn:uuid:0", "http://x/Patient/1/_history/2", "http://", ""]), text)
decimals = st.one_of(numbers, st.sampled_from(["1.5", "1e999", "-0", "0.000000000000000000001"]))
codings = st.fixed_dictionaries({}, optional={"system": urls, "code": st.one_of(text, scalars), "display": text})
references = st.fixed_dictionaries({}, optional={"reference": st.one_of(urls, text), "type": text,
                                                 "identifier": st.fixed_dictionaries({"value": text})})
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": st.one_of(text, scalars),
    "meta": st.fixed_dictionaries({}, optional={"profile": st.lists(urls, max_size=2),
                                                "tag": st.lists(codings, max_size=2), "versionId": scalars})
    | scalars | st.lists(codings, max_size=1),  # the server stamps meta: a non-object one must not trip it
    "name": st.lists(st.fixed_dictionaries({}, optional={"family": text, "given": st.lists(text, max_size=3),
                                                          "use": st.sampled_from(["official", "nope"]),
                                                          "period": st.fixed_dictionaries({"start": dates})}),
                     max_size=3),
    "gender": st.sampled_from(["male", "female", "other", "unknown", "Male", ""]),
    "birthDate": dates,
    "active": st.one_of(st.booleans(), scalars),
    "identifier": st.lists(st.fixed_dictionaries({}, optional={"system": urls, "value": text,
                                                                "type": st.fixed_dictionaries(
                                                                    {"coding": st.lists(codings, max_size=2)})}),
                           max_size=3),
    "telecom": st.lists(st.fixed_dictionaries({"system": st.sampled_from(["phone", "email", "x"]), "value": text}),
                        max_size=2),
    "extension": st.lists(st.fixed_dictionaries({"url": urls}, optional={
        "valueString": text, "valueInteger": numbers, "valueDecimal": decimals, "valueCode": text,
        "valueDateTime": dates, "valueReference": references, "extension": st.lists(
            st.fixed_dictionaries({"url": urls, "valueBoolean": st.booleans()}), max_size=2)}), max_size=3),
    "managingOrganization": references,
    "generalPractitioner": st.lists(references, max_size=2),
    "contained": st.lists(st.fixed_dictionaries({"resourceType": st.sampled_from(TYPES), "id": text}), max_size=2),
    "text": st.fixed_dictionaries({"status": st.sampled_from(["generated", "x"]),
                                   "div": st.sampled_from(['<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
                                                           "<div>", "<script/>", ""])}),
    "status": st.sampled_from(["final", "preliminary", "nope", ""]),
    "code": st.fixed_dictionaries({"coding": st.lists(codings, max_size=2)}, optional={"text": text}),
    "subject": references,
    "effectiveDateTime": dates,
    "valueQuantity": st.fixed_dictionaries({}, optional={"value": decimals, "unit": text, "system": urls,
                                                         "code": text, "comparator": text}),
    "component": st.lists(st.fixed_dictionaries({"code": st.fixed_dictionaries({"coding": st.lists(codings)}),
                                                 "valueQuantity": st.fixed_dictionaries({"value": decimals})}),
                          max_size=2),
}


@st.composite
def plausible(draw: st.DrawFn) -> dict[str, Any]:
    """A resource of a known type with FHIR-shaped elements (some wrong for the type), each value the
    right shape more often than not, with the odd element replaced by anything at all."""
    resource: dict[str, Any] = {"resourceType": draw(st.sampled_from(TYPES[:4]))}
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=6, unique=True)):
        resource[name] = draw(values) if draw(st.integers(0, 7)) == 0 else draw(FIELDS[name])
    return resource


@st.composite
def resources(draw: st.DrawFn) -> Any:
    """Half FHIR-shaped resources; otherwise objects with a (usually known) resourceType and random
    elements, or sometimes anything."""
    choice = draw(st.integers(0, 9))
    if choice < 5:
        return draw(plausible())
    if choice == 5:
        return draw(values)
    body: dict[str, Any] = draw(st.dictionaries(keys, values, max_size=6))
    kind = draw(st.one_of(st.sampled_from(TYPES), st.sampled_from(["", "patient", "Nope"]), scalars))
    if draw(st.booleans()) or "resourceType" not in body:
        body["resourceType"] = kind
    return body


@st.composite
def bundles(draw: st.DrawFn, pid: str) -> Any:
    """Transaction/batch Bundles of random entries; some update or patch the existing Patient ``pid``."""
    entries = []
    only_pid = draw(st.integers(0, 2)) == 0  # else a random entry often makes the whole Bundle a 400
    for _ in range(draw(st.integers(0, 3))):
        if only_pid or draw(st.integers(0, 3)) == 0:
            resource = {**draw(plausible()), "resourceType": "Patient", "id": pid}
            entries.append({"resource": resource, "request": {"method": "PUT", "url": f"Patient/{pid}"}})
            continue
        entry: dict[str, Any] = draw(st.dictionaries(st.sampled_from(["fullUrl", "resource", "request", "x"]),
                                                     values, max_size=2))
        if draw(st.booleans()):
            entry["resource"] = draw(resources())
        if draw(st.booleans()):
            entry["request"] = {
                "method": draw(st.sampled_from(["POST", "PUT", "PATCH", "DELETE", "GET", "HEAD", "post", "X"])),
                "url": draw(st.one_of(st.sampled_from(
                    ["Patient", "Patient/1", "Patient?name=x", "Observation/$validate", "", "/", "metadata",
                     "Patient/_history", "urn:uuid:1", "Patient?_id=" + "9" * 50]), text)),
                **draw(st.dictionaries(st.sampled_from(["ifMatch", "ifNoneExist", "ifNoneMatch"]), scalars,
                                       max_size=1)),
            }
        if draw(st.booleans()):
            entry["fullUrl"] = draw(st.one_of(st.just("urn:uuid:" + draw(text)), scalars))
        entries.append(entry)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "entry": entries,
                              "type": draw(st.sampled_from(["transaction", "batch"]))}
    if draw(st.integers(0, 5)) == 0:
        bundle["type"] = draw(st.one_of(st.just("collection"), scalars))
    if draw(st.integers(0, 5)) == 0:
        bundle["entry"] = draw(values)
    return bundle


def _json(value: Any) -> bytes:
    """JSON text of ``value``; the standard library writes integers of any size (orjson stops at 64 bits)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


CONTENT_TYPES = st.sampled_from([
    "application/fhir+json", "application/json", "application/fhir+json; charset=utf-8", "application/fhir+xml",
    "application/xml", "text/plain", "application/x-www-form-urlencoded", "application/json-patch+json",
    "multipart/form-data; boundary=x", "a/b;;;=", "", None])


@st.composite
def bodies(draw: st.DrawFn, json_bodies: st.SearchStrategy[Any]) -> tuple[bytes, dict[str, str]]:
    """A body and its headers: usually JSON with a JSON content type, sometimes bytes or another type."""
    choice = draw(st.integers(0, 9))
    if choice < 6:
        body = _json(draw(json_bodies))
    elif choice < 8:
        body = draw(st.binary(max_size=64))
    else:
        body = draw(st.sampled_from([b"<Patient xmlns='http://hl7.org/fhir'><id value='x'/></Patient>",
                                     b"<Patient><gender value='male'/>", b"<x/>", b"\xef\xbb\xbf{}", b"{" * 50,
                                     b"[" * 5000, b"null", b"1e99999", b'{"resourceType":"Patient","a":1e999}']))
    content_type = draw(CONTENT_TYPES) if choice >= 5 else "application/fhir+json"
    headers = dict(ACCEPT)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return body, headers


POINTERS = st.one_of(st.sampled_from(["", "/", "/name", "/name/0", "/name/-", "/name/0/given/0", "/meta", "/id",
                                      "/resourceType", "/gender", "/meta/tag/0", "/a~0b", "/a~1b", "/x/~2", "x",
                                      "/name/99999999999999999999", "/name/01", "/extension/-/url"]), text)
patches = st.lists(st.fixed_dictionaries(
    {"op": st.one_of(st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]), scalars),
     "path": st.one_of(POINTERS, scalars)},
    optional={"value": values, "from": st.one_of(POINTERS, scalars)}), max_size=4) | values


def check(response: httpx.Response) -> None:
    """No 5xx; every 4xx is an OperationOutcome."""
    assert response.status_code < 500, (response.request.method, str(response.request.url), response.text[:800])
    if response.status_code >= 400:
        assert response.headers.get("content-type", "").startswith("application/fhir+json"), response.headers
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome", outcome
        assert outcome["issue"], outcome


@pytest.fixture(scope="module")
def anchor(client: httpx.AsyncClient) -> dict[str, str]:
    """The id of the Patient the fuzzed requests update and patch, one per store (made by the first test)."""
    return {}


async def _anchor(client: httpx.AsyncClient, anchor: dict[str, str]) -> str:
    if "id" not in anchor:
        r = await client.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "Fuzz", "given": ["A"]}],
                                                "gender": "female", "birthDate": "1980-05-05"}, headers=ACCEPT)
        assert r.status_code == 201, r.text
        anchor["id"] = r.json()["id"]
    return anchor["id"]


@FUZZ
@given(data=st.data())
async def test_fuzz_writes(client: httpx.AsyncClient, anchor: dict[str, str], data: st.DataObject) -> None:
    pid = await _anchor(client, anchor)
    body, headers = data.draw(bodies(resources()))
    target = data.draw(st.sampled_from(["create", "update", "update-new", "validate", "validate-instance"]))
    type_ = data.draw(st.sampled_from([*TYPES[:4], "Nope", "patient"]))
    if target == "create":
        r = await client.post(f"/{type_}", content=body, headers=headers)
    elif target == "update":
        r = await client.put(f"/Patient/{pid}", content=body, headers=headers)
    elif target == "update-new":
        r = await client.put(f"/{type_}/{quote(data.draw(text), safe='') or 'x'}", content=body, headers=headers)
    elif target == "validate":
        r = await client.post(f"/{type_}/$validate", content=body, headers=headers)
    else:
        r = await client.post(f"/Patient/{pid}/$validate", content=body, headers=headers)
    check(r)


@FUZZ
@given(data=st.data())
async def test_fuzz_patch(client: httpx.AsyncClient, anchor: dict[str, str], data: st.DataObject) -> None:
    pid = await _anchor(client, anchor)
    if data.draw(st.integers(0, 4)) == 0:
        body, headers = data.draw(bodies(patches))
    else:
        body = _json(data.draw(patches))
        headers = {**ACCEPT, "Content-Type": "application/json-patch+json"}
    url = data.draw(st.sampled_from([f"/Patient/{pid}", f"/Patient?_id={pid}", "/Patient?gender=female",
                                     f"/Patient/{unique()}"]))
    check(await client.patch(url, content=body, headers=headers))
    # the same patch inside a transaction, as a Binary
    binary = {"resourceType": "Binary", "contentType": "application/json-patch+json",
              "data": base64.b64encode(body).decode()}
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"resource": binary, "request": {"method": "PATCH", "url": f"Patient/{pid}"}}]}
    check(await client.post("/", json=bundle, headers=ACCEPT))


@FUZZ
@given(data=st.data())
async def test_fuzz_transaction_and_batch(client: httpx.AsyncClient, anchor: dict[str, str], data: st.DataObject
                                          ) -> None:
    body, headers = data.draw(bodies(bundles(await _anchor(client, anchor))))
    check(await client.post("/", content=body, headers=headers))


PARAMETERS = st.sampled_from([
    "name", "family", "given", "gender", "birthdate", "_id", "_lastUpdated", "identifier", "telecom", "address",
    "general-practitioner", "organization", "_count", "_sort", "_include", "_revinclude", "_elements", "_summary",
    "_total", "_contained", "_has", "_type", "_text", "_content", "_filter", "_query", "_list", "_tag", "_profile",
    "_security", "_source", "subject", "code", "value-quantity", "date", "patient", "component-code-value-quantity",
    "code-value-quantity", "_format", "_pretty", "_at", "_since", "__explain", "_offset", "page", "_cursor"])
MODIFIERS = st.sampled_from(["", ":exact", ":contains", ":missing", ":not", ":text", ":in", ":not-in", ":below",
                             ":above", ":of-type", ":identifier", ":Patient", ":Nope", ":iterate", ":", "::",
                             ":type", ".name", ".organization.name", ":Patient.name", ".x.y.z"])
PREFIXES = st.sampled_from(["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap", "xx", "e", "gtgt"])
SEARCH_VALUES = st.one_of(text, st.sampled_from([
    "9" * 400, "1e400", "-1e400", "1e-400", "NaN", "inf", "0x10", "2024", "2024-13-01", "2024-02-30T25:61:00Z",
    "1970-01-01T00:00:00+99:00", "99999-01-01", "0001-01-01", "5.4|http://unitsofmeasure.org|mg",
    "5.4||", "|", "||", "a|b|c", "http://x|", "|code", "Patient/1", "Patient/", "/Patient", "http://x/Patient/1",
    "urn:uuid:", "a,b,,c", "\\", "\\,", "$", "%", "%00", "😀", "𠀀", "\u0000", "\ud7ff", " ", "", "true", "maybe",
    "Observation:subject:code", "Observation:subject", "Patient.name", "name:asc", "-_lastUpdated", "*",
    "Observation:patient:code:Nope", "count", "accurate", "-1", "0", "1001", "99999999999999999999"]))


@st.composite
def queries(draw: st.DrawFn) -> list[tuple[str, str]]:
    out = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.one_of(PARAMETERS, text)) + draw(MODIFIERS)
        if draw(st.integers(0, 5)) == 0:
            name = f"_has:{draw(st.sampled_from(['Observation', 'Nope', '']))}:{draw(text)}:{name}"
        out.append((name, draw(PREFIXES) + draw(SEARCH_VALUES)))
    return out


@FUZZ
@given(query=queries(), where=st.sampled_from(["/Patient", "/Observation", "/", "/Patient/_search", "/Nope",
                                               "/Patient/x/Observation", "/_history", "/Patient/_history"]))
async def test_fuzz_search(client: httpx.AsyncClient, query: list[tuple[str, str]], where: str) -> None:
    if where.endswith("/_search"):
        r = await client.post(where, data=dict(query), headers=ACCEPT)
    else:
        r = await client.get(where, params=tuple(query), headers=ACCEPT)
    check(r)


async def test_server_is_healthy_after_fuzzing(client: httpx.AsyncClient, anchor: dict[str, str]) -> None:
    pid = await _anchor(client, anchor)
    r = await client.get("/metadata", headers=ACCEPT)
    assert r.status_code == 200 and r.json()["resourceType"] == "CapabilityStatement"
    r = await client.get(f"/Patient/{pid}", headers=ACCEPT)
    assert r.status_code == 200 and r.json()["id"] == pid
    created = await client.post("/Patient", json={"resourceType": "Patient", "gender": "male"}, headers=ACCEPT)
    assert created.status_code == 201
    found = await client.get("/Patient", params={"_id": created.json()["id"]}, headers=ACCEPT)
    assert found.status_code == 200 and found.json()["total"] == 1


@pytest.mark.parametrize("meta", [[], "text", None, 5])
async def test_found_by_fuzzing_transaction_update_with_non_object_meta(client: httpx.AsyncClient,
                                                                        meta: object) -> None:
    """An update in a transaction compares the body with the current version before validating it:
    a ``meta`` that is not an object failed that comparison with a 500."""
    pid = unique("meta")
    resource = {"resourceType": "Patient", "id": pid, "gender": "male"}
    assert (await client.put(f"/Patient/{pid}", json=resource, headers=ACCEPT)).status_code == 201
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {**resource, "meta": meta}, "request": {"method": "PUT", "url": f"Patient/{pid}"}}]}
    r = await client.post("/", json=bundle, headers=ACCEPT)
    check(r)
    assert r.status_code == 422, r.text
    assert (await client.get(f"/Patient/{pid}", headers=ACCEPT)).json()["meta"]["versionId"] == "1"


@pytest.mark.parametrize("field", ["ifMatch", "ifNoneExist", "ifNoneMatch", "ifModifiedSince"])
async def test_found_by_fuzzing_non_string_conditional_in_a_bundle_entry(client: httpx.AsyncClient,
                                                                         field: str) -> None:
    for kind in ("transaction", "batch"):
        bundle = {"resourceType": "Bundle", "type": kind, "entry": [
            {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient", field: False}}]}
        r = await client.post("/", json=bundle, headers=ACCEPT)
        check(r)  # a malformed entry makes the Bundle a 400, as a missing method does
        assert r.status_code == 400, r.text
        assert r.json()["issue"][0]["expression"] == [f"Bundle.entry[0].request.{field}"]

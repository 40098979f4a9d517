"""Request bodies on both stores: decimals keep the way they were written (R4 json.html#primitive:
``1.50`` is not ``1.5``) through create, read, vread, search, _history, PATCH, transactions,
``_pretty`` and FHIR XML; and one set of size limits (nesting depth, number of values, array
length) and the empty-property-name rule are enforced when the body is parsed, as 400s that name
the limit, on every path that takes a resource."""

from __future__ import annotations

import re
from decimal import Decimal

import httpx
import orjson
import pytest

from tests.conftest import make_client, unique

JSON = {"Content-Type": "application/fhir+json"}
XML = "application/fhir+xml"

# written exactly as a client might; none of these survives a trip through a double
DECIMALS = ["1.50", "0.010", "12345678901234567890.12", "1e2", "-0.0", "18446744073709551616"]


def observation_text(tag: str, values: list[str]) -> bytes:
    """An Observation whose component quantities carry ``values`` verbatim (JSON text, not floats)."""
    components = ",".join(f'{{"code":{{"text":"c{i}"}},"valueQuantity":{{"value":{v},"unit":"mg"}}}}'
                          for i, v in enumerate(values))
    head = f'"resourceType":"Observation","status":"final","meta":{{"tag":[{{"code":"{tag}"}}]}}'
    value = f'"valueQuantity":{{"value":{values[0]},"unit":"kg"}}'
    return f'{{{head},"code":{{"text":"weight"}},{value},"component":[{components}]}}'.encode()


def numbers_in(text: str) -> list[str]:
    """The JSON texts of every ``"value":`` number in a response, in order."""
    return re.findall(r'"value":\s*(-?[0-9][0-9.eE+-]*)', text)


def same_precision(got: str, sent: str) -> bool:
    """Same value with the same digits and exponent: ``1e2`` and ``1E+2`` are one number written
    two ways; ``1.50`` and ``1.5`` are not."""
    return Decimal(got).as_tuple() == Decimal(sent).as_tuple()


def assert_kept(text: str, sent: list[str]) -> None:
    """The component values (the last numbers of the Observation) come back as ``sent``."""
    got = numbers_in(text)[-len(sent):]
    assert len(got) == len(sent), text
    for g, s in zip(got, sent, strict=True):
        assert same_precision(g, s), (got, sent)
        if "e" not in s:
            assert g == s, (got, sent)  # plain notation comes back character for character


async def test_decimals_keep_their_lexical_form_through_every_read(client: httpx.AsyncClient) -> None:
    tag = unique("dec")
    created = await client.post("/Observation", content=observation_text(tag, DECIMALS), headers=JSON)
    assert created.status_code == 201, created.text
    assert_kept(created.text, DECIMALS)
    oid = created.json()["id"]
    for url in (f"/Observation/{oid}", f"/Observation/{oid}/_history/1", f"/Observation?_tag={tag}",
                f"/Observation/{oid}/_history", f"/Observation/{oid}?_pretty=true",
                f"/Observation?_tag={tag}&_elements=component"):
        r = await client.get(url)
        assert r.status_code == 200, (url, r.text)
        assert_kept(r.text, DECIMALS)
    assert '"value":1.50' in (await client.get(f"/Observation/{oid}")).text
    xml = await client.get(f"/Observation/{oid}", headers={"Accept": XML})
    assert xml.status_code == 200, xml.text
    assert '<value value="1.50"/>' in xml.text and '<value value="12345678901234567890.12"/>' in xml.text
    assert '<value value="0.010"/>' in xml.text


async def test_update_and_patch_keep_decimals(client: httpx.AsyncClient) -> None:
    tag = unique("dec")
    created = (await client.post("/Observation", content=observation_text(tag, ["1.50", "0.010"]),
                                 headers=JSON)).json()
    oid = created["id"]
    body = observation_text(tag, ["2.500", "0.010"]).replace(b"{", b'{"id":"%s",' % oid.encode(), 1)
    updated = await client.put(f"/Observation/{oid}", content=body, headers=JSON)
    assert updated.status_code == 200, updated.text
    assert '"value":2.500' in updated.text
    patched = await client.patch(f"/Observation/{oid}", json=[{"op": "replace", "path": "/status", "value": "amended"}],
                                 headers={"Content-Type": "application/json-patch+json"})
    assert patched.status_code == 200, patched.text
    read = await client.get(f"/Observation/{oid}")
    assert read.json()["status"] == "amended"
    assert '"value":2.500' in read.text and '"value":0.010' in read.text


async def test_changing_only_the_precision_is_an_update(client: httpx.AsyncClient) -> None:
    """1.5 → 1.50 says the value is known more precisely: a new version, not a no-op."""
    tag = unique("dec")
    oid = (await client.post("/Observation", content=observation_text(tag, ["1.5"]), headers=JSON)).json()["id"]
    body = observation_text(tag, ["1.50"]).replace(b"{", b'{"id":"%s",' % oid.encode(), 1)
    updated = await client.put(f"/Observation/{oid}", content=body, headers=JSON)
    assert updated.status_code == 200, updated.text
    assert '"value":1.50' in (await client.get(f"/Observation/{oid}")).text


async def test_transaction_and_xml_bodies_keep_decimals(client: httpx.AsyncClient) -> None:
    tag = unique("dec")
    entry = observation_text(tag, ["1.50", "12345678901234567890.12"]).decode()
    bundle = (f'{{"resourceType":"Bundle","type":"transaction","entry":[{{"resource":{entry},'
              '"request":{"method":"POST","url":"Observation"}}]}').encode()
    r = await client.post("/", content=bundle, headers=JSON)
    assert r.status_code == 200, r.text
    found = await client.get(f"/Observation?_tag={tag}")
    assert '"value":1.50' in found.text and '"value":12345678901234567890.12' in found.text

    xml = ('<Observation xmlns="http://hl7.org/fhir"><meta><tag><code value="{}"/></tag></meta>'
           '<status value="final"/><code><text value="w"/></code>'
           '<valueQuantity><value value="0.0100"/><unit value="kg"/></valueQuantity></Observation>'.format(unique("x")))
    created = await client.post("/Observation", content=xml.encode(), headers={"Content-Type": XML})
    assert created.status_code == 201, created.text
    assert '"value":0.0100' in created.text
    back = await client.get(f"/Observation/{created.json()['id']}", headers={"Accept": XML})
    assert '<value value="0.0100"/>' in back.text


async def test_a_decimal_beyond_34_digits_is_refused(client: httpx.AsyncClient) -> None:
    body = observation_text(unique("dec"), ["1." + "1" * 40])
    r = await client.post("/Observation", content=body, headers=JSON)
    assert r.status_code == 400, r.text
    assert "34 significant digits" in r.json()["issue"][0]["diagnostics"]


async def test_searching_a_decimal_finds_it(client: httpx.AsyncClient) -> None:
    tag = unique("dec")
    await client.post("/Observation", content=observation_text(tag, ["1.50"]), headers=JSON)
    r = await client.get(f"/Observation?_tag={tag}&value-quantity=1.50")
    assert r.json().get("total", len(r.json().get("entry", []))) == 1, r.text
    assert '"value":1.50' in r.text


# --------------------------------------------------------------------------- limits


def nested_extension_text(levels: int) -> bytes:
    """A valid Patient with extensions nested ``levels`` deep (each level is an object in an array)."""
    inner = '{"url":"http://example.org/e","valueString":"leaf"}'
    for _ in range(levels):
        inner = f'{{"url":"http://example.org/e","extension":[{inner}]}}'
    return (f'{{"resourceType":"Patient","extension":[{inner}]}}').encode()


def nested_extension_xml(levels: int) -> bytes:
    inner = '<extension url="http://example.org/e"><valueString value="leaf"/></extension>'
    for _ in range(levels):
        inner = f'<extension url="http://example.org/e">{inner}</extension>'
    return (f'<Patient xmlns="http://hl7.org/fhir">{inner}</Patient>').encode()


def diagnostics(r: httpx.Response) -> str:
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", body
    return " ".join(i.get("diagnostics", "") for i in body["issue"])


@pytest.mark.parametrize("path", ["/Patient", "/Patient/$validate"])
async def test_deep_json_is_a_400_naming_the_depth_limit(client: httpx.AsyncClient, path: str) -> None:
    r = await client.post(path, content=nested_extension_text(130), headers=JSON)
    assert r.status_code == 400, r.text
    assert "max_depth" in diagnostics(r)
    beyond_orjson = await client.post(path, content=nested_extension_text(600), headers=JSON)
    assert beyond_orjson.status_code == 400 and "max_depth" in diagnostics(beyond_orjson)


async def test_moderately_nested_extensions_are_accepted_and_read_back(client: httpx.AsyncClient) -> None:
    created = await client.post("/Patient", content=nested_extension_text(40), headers=JSON)
    assert created.status_code == 201, created.text
    read = await client.get(f"/Patient/{created.json()['id']}", headers={"Accept": XML})
    assert read.status_code == 200


async def test_deep_xml_is_a_400_naming_the_depth_limit(client: httpx.AsyncClient) -> None:
    for levels in (130, 5000):
        r = await client.post("/Patient", content=nested_extension_xml(levels),
                              headers={"Content-Type": XML})
        assert r.status_code == 400, r.text[:500]
        assert "max_depth" in diagnostics(r)


async def test_xml_within_the_element_limit_but_deep_as_json_is_refused(client: httpx.AsyncClient) -> None:
    """60 XML levels are 120 JSON levels (each extension is an object in an array): one limit,
    applied to what the server would have to store and write back."""
    r = await client.post("/Patient", content=nested_extension_xml(60), headers={"Content-Type": XML})
    assert r.status_code == 400 and "max_depth" in diagnostics(r)


async def test_element_and_array_limits_are_400s_naming_the_setting(store: object) -> None:
    many = {"resourceType": "Patient", "name": [{"family": "F", "given": [f"g{i}" for i in range(40)]}
                                                for _ in range(40)]}
    async with make_client(store, max_elements=1000) as small:  # type: ignore[arg-type]
        r = await small.post("/Patient", content=orjson.dumps(many), headers=JSON)
        assert r.status_code == 400, r.text
        assert "max_elements" in diagnostics(r)
        ok = await small.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "F"}]})
        assert ok.status_code == 201
        xml = "<Patient xmlns=\"http://hl7.org/fhir\">" + "<name><family value=\"F\"/></name>" * 600 + "</Patient>"
        rx = await small.post("/Patient", content=xml.encode(), headers={"Content-Type": XML})
        assert rx.status_code == 400 and "max_elements" in diagnostics(rx)
    async with make_client(store, max_array_length=30) as short:  # type: ignore[arg-type]
        r = await short.post("/Patient", content=orjson.dumps(many), headers=JSON)
        assert r.status_code == 400, r.text
        assert "max_array_length" in diagnostics(r)
        bundle = {"resourceType": "Bundle", "type": "batch",
                  "entry": [{"request": {"method": "GET", "url": "Patient?_count=1"}}] * 31}
        rb = await short.post("/", content=orjson.dumps(bundle), headers=JSON)
        assert rb.status_code == 400 and "max_array_length" in diagnostics(rb)


# --------------------------------------------------------------------------- empty property names

EMPTY_KEY = b'{"resourceType":"Patient","":1}'


@pytest.mark.parametrize("body", [
    EMPTY_KEY,
    b'{"resourceType":"Patient","name":[{"family":"F","":"x"}]}',
    b'{"resourceType":"Patient","meta":{"profile":["http://hl7.org/fhir/StructureDefinition/Patient"]},"":1}',
])
async def test_an_empty_property_name_is_a_400_on_every_path(client: httpx.AsyncClient, body: bytes) -> None:
    pid = unique("p")
    for method, path in (("POST", "/Patient"), ("PUT", f"/Patient/{pid}"), ("POST", "/Patient/$validate")):
        sent = body.replace(b"{", b'{"id":"%s",' % pid.encode(), 1) if method == "PUT" else body
        r = await client.request(method, path, content=sent, headers=JSON)
        assert r.status_code == 400, (method, path, r.text)
        assert 'empty name ("")' in diagnostics(r)
    bundle = b'{"resourceType":"Bundle","type":"transaction","entry":[{"resource":%s,' \
             b'"request":{"method":"POST","url":"Patient"}}]}' % body
    r = await client.post("/", content=bundle, headers=JSON)
    assert r.status_code == 400 and 'empty name ("")' in diagnostics(r), r.text


async def test_a_patch_cannot_add_an_empty_property_name(client: httpx.AsyncClient) -> None:
    pid = (await client.post("/Patient", json={"resourceType": "Patient"})).json()["id"]
    r = await client.patch(f"/Patient/{pid}", json=[{"op": "add", "path": "/", "value": 1}],
                           headers={"Content-Type": "application/json-patch+json"})
    assert 400 <= r.status_code < 500, r.text
    ok = await client.get(f"/Patient/{pid}")
    assert "" not in ok.json()


async def test_a_key_ending_in_an_escaped_quote_is_not_an_empty_name(client: httpx.AsyncClient) -> None:
    """The fast scan for ``"":`` also sees the end of ``"a\\"":``; the exact check must not refuse it."""
    r = await client.post("/Patient", content=b'{"resourceType":"Patient","name":[{"text":"x\\"\\""}]}',
                          headers=JSON)
    assert r.status_code == 201, r.text


async def test_a_decimal_finer_than_a_double_is_found_by_eq(client: httpx.AsyncClient) -> None:
    """Indexed as the nearest double, 12345678901234567890.12 ± 0.005 is a single double wide: eq
    must still find it (it used to exclude the range's own upper end, which was the value). Values
    closer than a double apart (…890.12 and …890.13) remain indistinguishable to search."""
    tag = unique("dec")
    big = "12345678901234567890.12"
    await client.post("/Observation", content=observation_text(tag, [big]), headers=JSON)
    for query, total in ((big, 1), (f"eq{big}", 1), (f"ne{big}", 0), ("1.5", 0)):
        r = await client.get(f"/Observation?_tag={tag}&value-quantity={query}")
        assert r.json()["total"] == total, (query, r.text)

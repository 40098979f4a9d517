"""Unknown, declined and malformed parameters, ``POST [type]/_search``, and injection safety, over
HTTP on both stores (http://hl7.org/fhir/R4/search.html#errors, http.html#search).

Lenient (the default ``Prefer: handling=lenient``): unknown and declined parameters are ignored and
reported in an OperationOutcome entry with ``search.mode = outcome``; strict: 400. Malformed
values are always 400 with an OperationOutcome naming the parameter. Values that look like
MongoDB operators, SQL, LIKE wildcards or regular expressions match only themselves.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.http.searching import STRICT, bundle, entries, ids, load, names_parameter, outcome, search_ids

NASTY = ['{"$ne": null}', "$where", "$regex", "'; DROP TABLE resources; --", '" OR "1"="1', "%", "_", "%_%",
         ".*", "^", "(a|b)+", "[x]", "a\\", "*", "?", "{", "$", "' OR 1=1 --", "${jndi:x}", "[$ne]", "a,b",
         "\\d+", "' || '"]
"""Stored texts that look like MongoDB operators, SQL, LIKE wildcards or regular expressions."""


def escape(text: str) -> str:
    """The search value for ``text``: ``\\``, ``,``, ``|`` and ``$`` escaped (search.html#escaping)."""
    for c in "\\,|$":
        text = text.replace(c, "\\" + c)
    return text


RESOURCES: list[dict[str, Any]] = [
    *({"resourceType": "Patient", "id": f"n{i}", "name": [{"family": v}], "gender": "other",
       "identifier": [{"system": "http://x", "value": v}], "birthDate": "1990-01-01"}
      for i, v in enumerate(NASTY)),
    {"resourceType": "Patient", "id": "plain", "name": [{"family": "Smith"}], "gender": "male",
     "identifier": [{"system": "http://x", "value": "Smith"}], "managingOrganization": {"reference": "Organization/o"}},
    {"resourceType": "Organization", "id": "o", "name": "Org"},
    {"resourceType": "Observation", "id": "obs", "status": "final", "code": {"text": "x"},
     "subject": {"reference": "Patient/plain"}, "valueQuantity": {"value": 1}},
    {"resourceType": "ValueSet", "id": "vs", "status": "active", "url": "http://x.org/vs"},
    {"resourceType": "Location", "id": "loc", "name": "Ward", "position": {"longitude": 116.4, "latitude": 39.9}},
]


@pytest_asyncio.fixture(scope="module", autouse=True)
async def resources(client: httpx.AsyncClient) -> None:
    await load(client, RESOURCES)


# --- unknown and declined parameters -----------------------------------------------------------

IGNORED = [
    ("/Patient", "foo", "bar"),
    ("/Patient", "name:fuzzy", "x"),  # not ignored: an unknown modifier is an error (see below)
    ("/Patient", "_text", "smith"),
    ("/Patient", "_content", "smith"),
    ("/Patient", "_filter", "name eq smith"),
    ("/Patient", "_list", "abc"),
    ("/Patient", "_query", "abc"),
    ("/Location", "near", "39.9|116.4|10|km"),
    ("/Patient", "organization.nothing", "x"),
    ("/Patient", "_has:Observation:subject:nothing", "x"),
]


@pytest.mark.parametrize(("path", "name", "value"), [c for c in IGNORED if c[1] != "name:fuzzy"],
                         ids=[c[1] for c in IGNORED if c[1] != "name:fuzzy"])
async def test_lenient_ignores_and_reports(client: httpx.AsyncClient, path: str, name: str, value: str) -> None:
    base = await search_ids(client, path, "")
    body = await bundle(client, path, [(name, value), ("_count", "1000")])
    assert set(ids(body)) == base  # the parameter did not narrow the search
    [report] = entries(body, "outcome")
    assert report["resourceType"] == "OperationOutcome"
    assert any(name in i.get("expression", ()) for i in report["issue"]), report
    explicit = await bundle(client, path, [(name, value), ("_count", "1000")], {"Prefer": "handling=lenient"})
    assert set(ids(explicit)) == base and entries(explicit, "outcome")


@pytest.mark.parametrize(("path", "name", "value"), IGNORED, ids=[c[1] for c in IGNORED])
async def test_strict_rejects(client: httpx.AsyncClient, path: str, name: str, value: str) -> None:
    body = outcome(await client.get(path, params={name: value}, headers=STRICT), 400)
    assert names_parameter(body, name.split(":")[0].split(".")[0]) or names_parameter(body, name), body


async def test_unknown_modifier_is_an_error_even_when_lenient(client: httpx.AsyncClient) -> None:
    body = outcome(await client.get("/Patient", params={"name:fuzzy": "x"}), 400)
    assert names_parameter(body, "name"), body


async def test_formatting_parameters_are_not_reported(client: httpx.AsyncClient) -> None:
    body = await bundle(client, "/Patient", "_id=plain&_format=json&_pretty=true")
    assert ids(body) == ["plain"] and not entries(body, "outcome")


# --- malformed values --------------------------------------------------------------------------

MALFORMED = [
    ("/Patient", "birthdate", "1990-13"),
    ("/Patient", "birthdate", "zz1990"),
    ("/Patient", "birthdate", "gt"),
    ("/Patient", "_lastUpdated", "yesterday"),
    ("/Observation", "value-quantity", "ten"),
    ("/Observation", "value-quantity", "gx5"),
    ("/Observation", "value-quantity", "5|a"),
    ("/Patient", "gender:missing", "maybe"),
    ("/Patient", "identifier", "a|b|c"),
    ("/Patient", "identifier:of-type", "a|b"),
    ("/Patient", "organization", "Patient/plain"),
    ("/Patient", "organization", "not an id!"),
    ("/Patient", "_id", "bad id!"),
    ("/Patient", "_count", "many"),
    ("/Patient", "_sort", "-"),
    ("/Patient", "_summary", "maybe"),
    ("/Patient", "_total", "some"),
    ("/Patient", "_has:Observation", "x"),
    ("/Patient", "_has:Nope:subject:code", "x"),
    ("/Patient", "_has:Observation:code:code", "x"),
    ("/Patient", "name.family", "x"),
    ("/Patient", "organization:Patient.name", "x"),
    ("/Patient", "_type", "Patient"),
]


@pytest.mark.parametrize(("path", "name", "value"), MALFORMED, ids=[f"{n}={v}" for _, n, v in MALFORMED])
async def test_malformed_values_are_400(client: httpx.AsyncClient, path: str, name: str, value: str) -> None:
    r = await client.get(path, params={name: value}, headers=STRICT)
    body = outcome(r, 400)
    assert names_parameter(body, name.split(":")[0].split(".")[0]) or names_parameter(body, name), body


@pytest.mark.parametrize(("path", "name", "value"), MALFORMED[:13], ids=[f"{n}={v}" for _, n, v in MALFORMED[:13]])
async def test_malformed_values_are_400_when_lenient_too(client: httpx.AsyncClient, path: str, name: str,
                                                         value: str) -> None:
    outcome(await client.get(path, params={name: value}), 400)


# --- POST [type]/_search -------------------------------------------------------------------------

async def test_post_search_form_encoded(client: httpx.AsyncClient) -> None:
    get = await bundle(client, "/Patient", "family=smith&gender=male")
    r = await client.post("/Patient/_search", data={"family": "smith", "gender": "male"})
    assert r.status_code == 200, r.text
    assert ids(r.json()) == ids(get) == ["plain"]
    both = await client.post("/Patient/_search?gender=male", data={"family": "nobody"})
    assert both.status_code == 200 and ids(both.json()) == []  # URL and body parameters are and-ed
    paged = await client.post("/Patient/_search", data={"gender": "other", "_count": "2"})
    nxt = next(link["url"] for link in paged.json()["link"] if link["relation"] == "next")
    assert "gender=other" in nxt
    second = await client.get(nxt)
    assert second.status_code == 200 and len(ids(second.json())) == 2


async def test_post_search_needs_a_form(client: httpx.AsyncClient) -> None:
    r = await client.post("/Patient/_search", json={"family": "smith"})
    outcome(r, 400)


async def test_post_search_strict_and_malformed(client: httpx.AsyncClient) -> None:
    outcome(await client.post("/Patient/_search", data={"foo": "bar"}, headers=STRICT), 400)
    outcome(await client.post("/Patient/_search", data={"birthdate": "1990-99"}), 400)


# --- injection --------------------------------------------------------------------------------

@pytest.mark.parametrize("text", NASTY)
async def test_injection_string_and_token(client: httpx.AsyncClient, text: str) -> None:
    want = {f"n{i}" for i, v in enumerate(NASTY) if v == text}
    value = escape(text)
    assert await search_ids(client, "/Patient", f"family:exact={value}") == want
    assert await search_ids(client, "/Patient", f"identifier=http://x|{value}") == want
    assert await search_ids(client, "/Patient", f"identifier={value}") == want
    starts = await search_ids(client, "/Patient", f"family={value}")
    assert want <= starts and all(NASTY[int(i[1:])].lower().startswith(text.lower()) for i in starts)
    contains = await search_ids(client, "/Patient", f"family:contains={value}")
    assert want <= contains and all(text.lower() in NASTY[int(i[1:])].lower() for i in contains)
    assert await search_ids(client, "/Patient", f"identifier:text={value}") == set()


PARAMS = [
    ("/Patient", "gender"), ("/Patient", "organization"), ("/Patient", "organization:identifier"),
    ("/Patient", "organization.name"), ("/Patient", "_has:Observation:subject:code"), ("/Patient", "birthdate"),
    ("/Observation", "value-quantity"), ("/RiskAssessment", "probability"), ("/ValueSet", "url"),
    ("/ValueSet", "url:below"), ("/ValueSet", "url:above"), ("/Observation", "code-value-quantity"),
    ("/Patient", "_id"), ("/Patient", "_lastUpdated"), ("/Patient", "_tag"), ("/Patient", "_source"),
    ("/Patient", "_sort"), ("/Patient", "_include"), ("/Patient", "_elements"), ("/Patient", "_cursor"),
    ("/Patient", "name:missing"), ("/", "_type"),
]


@pytest.mark.parametrize("value", [*NASTY, "\x00", "a\\", "%00", "\\", "|", "$", ",", "' OR ''='"])
@pytest.mark.parametrize(("path", "name"), PARAMS, ids=[n for _, n in PARAMS])
async def test_injection_never_matches_or_fails(client: httpx.AsyncClient, path: str, name: str, value: str) -> None:
    r = await client.get(path, params=[(name, value), ("_count", "1000")])
    assert r.status_code in (200, 400), f"{r.status_code} {r.text[:500]}"
    body = r.json()
    if r.status_code == 400:
        assert body["resourceType"] == "OperationOutcome"
        return
    if name in ("_sort", "_elements", "_include"):  # result parameters (``_include=*`` is valid)
        return
    assert ids(body) == [], f"{name}={value} matched {ids(body)}"

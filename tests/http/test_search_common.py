"""Parameters of every resource, and system search, over HTTP on both stores
(http://hl7.org/fhir/R4/search.html#all, #_type, http://hl7.org/fhir/R4/resource.html#search).

``_id``, ``_lastUpdated``, ``_tag``, ``_profile``, ``_security``, ``_source``; ``GET [base]?_type=``
searches several types at once, and a system search without ``_type`` searches them all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from server.stores.base import Store
from tests.conftest import make_client
from tests.http.searching import bundle, ids, load, outcome, search_ids

TAGS = "http://example.org/tags"
CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
PROFILE = "http://example.org/StructureDefinition/p1"


def meta(**fields: Any) -> dict[str, Any]:
    return {"meta": fields}


RESOURCES: list[dict[str, Any]] = [
    {"resourceType": "Patient", "id": "m1", **meta(tag=[{"system": TAGS, "code": "alpha"}], profile=[PROFILE],
                                                   security=[{"system": CONF, "code": "R"}],
                                                   source="http://hospital.a/ehr#node1")},
    {"resourceType": "Patient", "id": "m2", **meta(tag=[{"system": TAGS, "code": "beta"}, {"code": "alpha"}],
                                                   source="http://hospital.b")},
    {"resourceType": "Patient", "id": "m3"},
    {"resourceType": "Observation", "id": "m4", "status": "final", "code": {"text": "x"},
     **meta(tag=[{"system": TAGS, "code": "alpha"}], security=[{"system": CONF, "code": "N"}])},
    {"resourceType": "Organization", "id": "m5", "name": "Org", **meta(tag=[{"system": TAGS, "code": "gamma"}])},
]

PATIENTS: list[tuple[str, set[str]]] = [
    ("_id=m1", {"m1"}),
    ("_id=m1,m3", {"m1", "m3"}),
    ("_id=m1&_id=m3", set()),
    ("_id=m4", set()),
    ("_id=zz", set()),
    ("_id=M1", set()),
    (f"_tag={TAGS}|alpha", {"m1"}),
    ("_tag=alpha", {"m1", "m2"}),
    ("_tag=|alpha", {"m2"}),
    (f"_tag={TAGS}|", {"m1", "m2"}),
    (f"_tag={TAGS}|beta", {"m2"}),
    (f"_tag:not={TAGS}|alpha", {"m2", "m3"}),
    ("_tag:missing=true", {"m3"}),
    (f"_tag={TAGS}|alpha&_tag={TAGS}|beta", set()),
    (f"_tag={TAGS}|alpha,{TAGS}|beta", {"m1", "m2"}),
    (f"_profile={PROFILE}", {"m1"}),
    ("_profile=http://example.org/StructureDefinition/p", set()),
    ("_profile:missing=true", {"m2", "m3"}),
    (f"_security={CONF}|R", {"m1"}),
    ("_security=R", {"m1"}),
    ("_security=N", set()),
    ("_source=http://hospital.a/ehr#node1", {"m1"}),
    ("_source=http://hospital.b", {"m2"}),
    ("_source=http://hospital", set()),
    ("_source:below=http://hospital.", {"m1", "m2"}),
    ("_id=m1&_tag=alpha", {"m1"}),
    ("_id=m3&_tag=alpha", set()),
]

SYSTEM: list[tuple[str, set[str]]] = [
    ("_type=Patient,Observation&_id=m1,m4,m5", {"m1", "m4"}),
    ("_type=Observation&_tag=alpha", {"m4"}),
    ("_type=Patient,Observation&_tag=alpha", {"m1", "m2", "m4"}),
    ("_type=Organization&_tag=gamma", {"m5"}),
    ("_type=Organization&_tag=alpha", set()),
    ("_tag=alpha", {"m1", "m2", "m4"}),
    (f"_tag={TAGS}|gamma", {"m5"}),
    ("_security=N", {"m4"}),
    ("_id=m5", {"m5"}),
    ("_type=Patient&_type=Organization&_id=m1,m5", {"m1", "m5"}),
]


@pytest_asyncio.fixture(scope="module")
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    """Grading off: these searches are on the labels the client sent (the server's own grading labels
    are searched in tests/grading)."""
    async with make_client(store, grading=False) as c:
        yield c


@pytest_asyncio.fixture(scope="module")
async def stored(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    return await load(client, RESOURCES)


@pytest.mark.parametrize(("query", "expected"), PATIENTS, ids=[q for q, _ in PATIENTS])
async def test_common_parameters(client: httpx.AsyncClient, stored: dict, query: str, expected: set[str]) -> None:
    assert await search_ids(client, "/Patient", query) == expected


@pytest.mark.parametrize(("query", "expected"), SYSTEM, ids=[q for q, _ in SYSTEM])
async def test_system_search(client: httpx.AsyncClient, stored: dict, query: str, expected: set[str]) -> None:
    assert await search_ids(client, "/", query) == expected


async def test_last_updated(client: httpx.AsyncClient, stored: dict[str, dict[str, Any]]) -> None:
    first, last = stored["m1"]["meta"]["lastUpdated"], stored["m5"]["meta"]["lastUpdated"]
    assert await search_ids(client, "/Patient", f"_lastUpdated=ge{first}") == {"m1", "m2", "m3"}
    assert await search_ids(client, "/Patient", f"_lastUpdated=gt{first}") == {"m2", "m3"}
    assert await search_ids(client, "/Patient", f"_lastUpdated=le{first}") == {"m1"}
    assert await search_ids(client, "/Patient", f"_lastUpdated=lt{first}") == set()
    assert await search_ids(client, "/Patient", f"_lastUpdated={first}") == {"m1"}
    assert await search_ids(client, "/", f"_lastUpdated=ge{last}") == {"m5"}
    assert await search_ids(client, "/Patient", "_lastUpdated=lt2000-01-01") == set()
    assert await search_ids(client, "/Patient", "_lastUpdated=gt2000&_id=m2") == {"m2"}
    assert await search_ids(client, "/Patient", f"_lastUpdated=sa{first}") == {"m2", "m3"}


async def test_system_search_marks_types_and_rejects_unknown_types(client: httpx.AsyncClient, stored: dict) -> None:
    body = await bundle(client, "/", "_type=Patient,Organization&_id=m1,m5&_sort=_id")
    assert [e["fullUrl"].rsplit("/", 2)[-2:] for e in body["entry"]] == [["Patient", "m1"], ["Organization", "m5"]]
    assert ids(body) == ["m1", "m5"]
    body = outcome(await client.get("/", params={"_type": "Patient,NoSuchType"}), 400)
    assert any("_type" in i.get("expression", ()) for i in body["issue"]), body


async def test_parameter_not_common_to_all_types_is_rejected_in_strict_system_search(
        client: httpx.AsyncClient, stored: dict) -> None:
    r = await client.get("/", params={"_type": "Patient,Organization", "gender": "male"},
                         headers={"Prefer": "handling=strict"})
    outcome(r, 400)

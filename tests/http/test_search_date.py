"""date search over HTTP on both stores (http://hl7.org/fhir/R4/search.html#date, #prefix).

Every date is a range at its precision, the search value too: with search range [sl, sh] and a
target [lo, hi], eq means inside, ne not inside, gt hi > sh, lt lo < sl, ge/le add eq, sa lo > sh,
eb hi < sl, ap overlaps a widened range. Values: date, dateTime (with offsets), instant, Period
(open end), partial dates.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.http.searching import load, outcome, search_ids

CODE = {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]}


def obs(id_: str, **effective: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": id_, "status": "final", "code": CODE, **effective}


RESOURCES: list[dict[str, Any]] = [
    obs("d1", effectiveDateTime="2024-03-15"),
    obs("d2", effectiveDateTime="2024-03-15T10:30:00+08:00"),  # 02:30:00Z
    obs("d3", effectivePeriod={"start": "2024-03-01", "end": "2024-03-31"}),
    obs("d4", effectiveInstant="2024-04-01T00:00:00Z"),
    obs("d5", effectiveDateTime="2023"),
    obs("d6", effectivePeriod={"start": "2024-05-01T08:00:00Z"}),
    obs("d7"),
    obs("d8", effectiveDateTime="2024-03-14T23:30:00-02:00"),  # 2024-03-15T01:30:00Z
    obs("d9", effectiveTiming={"event": ["2020-06-01T10:00:00Z", "2030-06-01T10:00:00Z"]}),
    {"resourceType": "Patient", "id": "born90", "birthDate": "1990-03-07"},
    {"resourceType": "Patient", "id": "born90s", "birthDate": "1995-07"},
    {"resourceType": "Patient", "id": "unborn"},
]

OBSERVATIONS: list[tuple[str, set[str]]] = [
    # eq (default): the target lies within the search range
    ("date=2024-03-15", {"d1", "d2", "d8"}),
    ("date=eq2024-03-15", {"d1", "d2", "d8"}),
    ("date=2024-03", {"d1", "d2", "d3", "d8"}),
    ("date=2024", {"d1", "d2", "d3", "d4", "d8"}),
    ("date=2023", {"d5"}),
    ("date=2022", set()),
    ("date=2024-04-01", {"d4"}),
    ("date=2024-04-01T00:00:00Z", {"d4"}),
    ("date=2024-04-01T00:00:00.000Z", set()),  # a millisecond does not contain d4's second
    ("date=2024-04-01T00:00:01Z", set()),
    # time zones: the same instant written in any offset
    ("date=2024-03-15T10:30:00+08:00", {"d2"}),
    ("date=2024-03-15T02:30:00Z", {"d2"}),
    ("date=2024-03-14T20:30:00-06:00", {"d2"}),
    ("date=2024-03-15T10:30:00Z", set()),
    ("date=2024-03-15T02:30Z", {"d2"}),
    ("date=2024-03-15T01:30:00Z", {"d8"}),
    ("date=2024-03-14", set()),
    # ne
    ("date=ne2024-03-15", {"d3", "d4", "d5", "d6", "d9"}),
    ("date=ne2024", {"d5", "d6", "d9"}),
    # gt / lt
    ("date=gt2024-03-15", {"d3", "d4", "d6", "d9"}),
    ("date=lt2024-03-15", {"d3", "d5", "d9"}),
    ("date=gt2024-03-31", {"d4", "d6", "d9"}),
    ("date=lt2024-01-01", {"d5", "d9"}),
    ("date=gt2024-12-31", {"d6", "d9"}),
    ("date=lt2023-01-01", {"d9"}),
    ("date=lt2020-01-01", set()),
    # ge / le
    ("date=ge2024-03-15", {"d1", "d2", "d3", "d4", "d6", "d8", "d9"}),
    ("date=le2024-03-15", {"d1", "d2", "d3", "d5", "d8", "d9"}),
    ("date=ge2024-04-01", {"d4", "d6", "d9"}),
    ("date=le2023-12-31", {"d5", "d9"}),
    # sa / eb
    ("date=sa2024-03-15", {"d4", "d6", "d9"}),
    ("date=eb2024-03-15", {"d5", "d9"}),
    ("date=sa2024-03", {"d4", "d6", "d9"}),
    ("date=eb2024-03", {"d5", "d9"}),
    ("date=sa2030-06-01", set()),
    ("date=eb2020-06-01", set()),
    ("date=2030-06-01", {"d9"}),
    # ranges: repeated = AND, comma = OR
    ("date=ge2024-03-15T02:00:00Z&date=lt2024-03-15T03:00:00Z", {"d1", "d2", "d3", "d9"}),
    ("date=ge2024-03-01&date=lt2024-04-01", {"d1", "d2", "d3", "d8", "d9"}),
    ("date=2023,2024-04-01", {"d4", "d5"}),
    # two bounds met by different values of one resource (d9's two events) still match
    ("date=ge2025-01-01&date=lt2025-02-01", {"d6", "d9"}),
    ("date=gt2030-06-02&date=lt2020-06-01", set()),
    ("date=ge2030-06-01&date=le2020-06-01T10:00:00Z", {"d9"}),
    ("date=sa2025-01-01&date=eb2025-01-01", {"d9"}),
    ("date=ge2024-03-14&date=le2024-03-16&date=ne2024-03-15", {"d3", "d9"}),
    ("date:missing=true", {"d7"}),
]

PATIENTS: list[tuple[str, set[str]]] = [
    ("birthdate=1990-03-07", {"born90"}),
    ("birthdate=1990-03", {"born90"}),
    ("birthdate=1990", {"born90"}),
    ("birthdate=1991", set()),
    ("birthdate=1995-07-14", set()),
    ("birthdate=1995-07", {"born90s"}),
    ("birthdate=ge1995-07-14", {"born90s"}),
    ("birthdate=le1995-07-14", {"born90", "born90s"}),
    ("birthdate=gt1990-03-07", {"born90s"}),
    ("birthdate=lt1990-03-07", set()),
    ("birthdate=sa1989", {"born90", "born90s"}),
    ("birthdate=eb1991", {"born90"}),
    ("birthdate=ne1990", {"born90s"}),
    ("birthdate:missing=true", {"unborn"}),
]

MALFORMED = ["2024-13-01", "2024-02-30", "2024-03-15T25:00", "xx2024", "2024/03/15", "15-03-2024", "ge",
             "2024-03-15T10:30:00+15:00", "gt2024-3-5", "now", "2024-03-15T10"]


@pytest_asyncio.fixture(scope="module", autouse=True)
async def resources(client: httpx.AsyncClient) -> None:
    await load(client, RESOURCES)


@pytest.mark.parametrize(("query", "expected"), OBSERVATIONS, ids=[q for q, _ in OBSERVATIONS])
async def test_observation_dates(client: httpx.AsyncClient, query: str, expected: set[str]) -> None:
    assert await search_ids(client, "/Observation", query) == expected


@pytest.mark.parametrize(("query", "expected"), PATIENTS, ids=[q for q, _ in PATIENTS])
async def test_birthdates(client: httpx.AsyncClient, query: str, expected: set[str]) -> None:
    assert await search_ids(client, "/Patient", query) == expected


async def test_approximately(client: httpx.AsyncClient) -> None:
    """``ap``: the server chooses the margin (here 10 % of the distance from now, at least a day);
    values just around the search date match, far ones do not."""
    near = await search_ids(client, "/Observation", "date=ap2024-03-15")
    assert {"d1", "d2", "d3", "d8"} <= near
    assert "d7" not in near
    assert await search_ids(client, "/Observation", "date=ap2030-01-01") == {"d6"}
    assert await search_ids(client, "/Patient", "birthdate=ap1990-03-07") == {"born90"}


@pytest.mark.parametrize("value", MALFORMED)
async def test_malformed_date_is_400_naming_the_parameter(client: httpx.AsyncClient, value: str) -> None:
    r = await client.get("/Observation", params={"date": value})
    body = outcome(r, 400)
    assert any("date" in i.get("expression", ()) for i in body["issue"]), body


async def test_a_changed_value_list_changes_two_sided_ranges(client: httpx.AsyncClient) -> None:
    """The bounds of ``date=ge…&date=lt…`` may be met by different values of one resource; when an
    update removes one of them, the resource stops matching (no stale index rows)."""
    two = obs("d10", effectiveTiming={"event": ["1901-01-01T00:00:00Z", "1909-01-01T00:00:00Z"]})
    await load(client, [two])
    query = "date=ge1905-01-01&date=lt1906-01-01"
    assert await search_ids(client, "/Observation", query) == {"d10"}
    await load(client, [obs("d10", effectiveTiming={"event": ["1909-01-01T00:00:00Z"]})])
    assert await search_ids(client, "/Observation", query) == set()
    assert await search_ids(client, "/Observation", "date=ge1905-01-01&date=lt1910-01-01") == {"d10"}
    assert (await client.delete("/Observation/d10")).status_code == 204
    assert await search_ids(client, "/Observation", "date=ge1905-01-01&date=lt1910-01-01") == set()

"""The search core's limits (server.search.limits), over HTTP on both stores: a request over a limit
is a 400 OperationOutcome (``too-costly``) naming the parameter, and the largest requests under
the limits run on both stores (they stay inside SQLite's parser stack, expression depth, compound
SELECT and bound-variable limits; before the limits a 4-hop chain was a 500 "parser stack
overflow" on SQLite and a 40-hop one ran for half a minute on MongoDB)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import pytest_asyncio

from server.search.limits import (
    MAX_CHAIN_DEPTH,
    MAX_PARAMETERS,
    MAX_QUERY_CHARS,
    MAX_TOTAL_VALUES,
    MAX_VALUES,
    hops,
)
from server.search.registry import SearchRegistry
from tests.http.searching import STRICT, bundle, ids, load, outcome

RESOURCES: list[dict[str, Any]] = [
    {"resourceType": "Organization", "id": "lim-o3", "name": "Top"},
    {"resourceType": "Organization", "id": "lim-o2", "name": "Mid", "partOf": {"reference": "Organization/lim-o3"}},
    {"resourceType": "Organization", "id": "lim-o1", "name": "Low", "partOf": {"reference": "Organization/lim-o2"}},
    {"resourceType": "Patient", "id": "lim-p", "name": [{"family": "Limit"}],
     "managingOrganization": {"reference": "Organization/lim-o1"}},
    {"resourceType": "Observation", "id": "lim-obs", "status": "final", "code": {"text": "x"},
     "subject": {"reference": "Patient/lim-p"}, "performer": [{"reference": "Organization/lim-o1"}]},
    {"resourceType": "Provenance", "id": "lim-prov", "target": [{"reference": "Observation/lim-obs"}],
     "recorded": "2024-01-01T00:00:00Z", "agent": [{"who": {"reference": "Organization/lim-o3"}}]},
    {"resourceType": "AuditEvent", "id": "lim-audit", "type": {"code": "rest"}, "recorded": "2024-01-01T00:00:00Z",
     "action": "C", "source": {"observer": {"display": "x"}}, "agent": [{"requestor": True}],
     "entity": [{"what": {"reference": "Provenance/lim-prov"}}]},
]


@pytest_asyncio.fixture(scope="module")
async def loaded(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await load(client, RESOURCES)
    return client


def values(n: int, prefix: str = "v") -> str:
    return ",".join(f"{prefix}{i}" for i in range(n))


# --- refused: 400 naming the parameter ---------------------------------------------------------

FOUR_HOPS = "organization.partof.partof.partof.name"
assert hops(FOUR_HOPS) == MAX_CHAIN_DEPTH + 1
OVER = [
    ("/Patient", [(FOUR_HOPS, "Top")], FOUR_HOPS),
    ("/Patient", [("organization" + ".partof" * 39 + ".name", "x")], "organization" + ".partof" * 39 + ".name"),
    ("/Patient", [("_has:Observation:patient:_has:Provenance:target:_has:AuditEvent:entity:"
                   "_has:Provenance:target:agent", "x")],
     "_has:Observation:patient:_has:Provenance:target:_has:AuditEvent:entity:_has:Provenance:target:agent"),
    ("/Observation", [("subject:Patient.organization.partof._has:Patient:organization:family", "x")],
     "subject:Patient.organization.partof._has:Patient:organization:family"),
    ("/Patient", [("family", f"f{i}") for i in range(1000)], "family"),
    ("/Patient", [("family", f"f{i}") for i in range(MAX_PARAMETERS + 1)], "family"),
    ("/Patient", [("family", "x"), ("_sort", ",".join(["family"] * MAX_PARAMETERS))], "_sort"),
    ("/Patient", [("_include", "Patient:organization")] * (MAX_PARAMETERS + 1), "_include"),
    ("/Patient", [("family", values(MAX_VALUES + 1))], "family"),
    ("/Patient", [("family", values(MAX_VALUES))] * (MAX_TOTAL_VALUES // MAX_VALUES) + [("given", "x")], "given"),
    ("/Patient", [("_sort", "family,given,birthdate,gender,address")], "_sort"),
    ("/Patient", [("family", "x" * (MAX_QUERY_CHARS + 1))], "family"),
]


@pytest.mark.parametrize(("path", "query", "name"), OVER, ids=range(len(OVER)))
async def test_over_a_limit_is_a_400_naming_the_parameter(loaded: httpx.AsyncClient, path: str,
                                                          query: list[tuple[str, str]], name: str) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = outcome(await loaded.post(f"{path}/_search", content=urlencode(query), headers=form), 400)
    issue = body["issue"][0]
    assert issue["code"] == "too-costly", body
    assert issue["expression"] == [name], body


async def test_conditional_criteria_are_held_to_the_same_limits(loaded: httpx.AsyncClient) -> None:
    r = await loaded.put(f"/Patient?{FOUR_HOPS}=Top", json={"resourceType": "Patient"})
    assert outcome(r, 400)["issue"][0]["expression"] == [FOUR_HOPS]


# --- accepted: the largest requests run on both stores ----------------------------------------

def _all_types() -> str:
    types = SearchRegistry().definitions.resource_types
    return ",".join(sorted(t for t in types if t not in ("Resource", "DomainResource")))


LARGEST = [
    # every hop shape at the limit, index-driven and tested row by row (:missing has no driver)
    ("/Patient", "organization.partof.partof.name=Top", ["lim-p"]),
    ("/Patient", "organization.partof.partof.name:missing=false", ["lim-p"]),
    ("/Patient", "_has:Observation:patient:_has:Provenance:target:_has:AuditEvent:entity:action=C", ["lim-p"]),
    ("/Patient", "_has:Observation:patient:_has:Provenance:target:_has:AuditEvent:entity:action:missing=false",
     ["lim-p"]),
    ("/Patient", "_has:Observation:patient:performer:Organization.partof.name=Mid", ["lim-p"]),
    ("/Observation", "subject:Patient._has:Observation:patient:performer:Organization.name=Low", ["lim-obs"]),
    ("/Observation", "subject.organization._has:Patient:organization:family=Limit&_sort=subject", ["lim-obs"]),
    # the most OR-ed values: indexed (a UNION), and unindexed (:contains: an OR of EXISTS)
    ("/Patient", "&".join([f"family={values(MAX_VALUES - 1)},Limit"]
                          + [f"family:contains={values(MAX_VALUES - 1)},imi"] * 9), ["lim-p"]),
    ("/Observation", "&".join([f"subject={values(MAX_VALUES - 1, 'Patient/x')},Patient/lim-p"] * 10), ["lim-obs"]),
    ("/Observation", "&".join([f"subject:Patient.name={values(MAX_VALUES - 1)},Limit"] * 10), ["lim-obs"]),
    # the most parameters (and 4 sort keys)
    ("/Patient", "&".join(["family=Limit"] * (MAX_PARAMETERS - 5) + ["_sort=family,given,-birthdate,gender"]),
     ["lim-p"]),
]


@pytest.mark.parametrize(("path", "query", "expected"), LARGEST, ids=range(len(LARGEST)))
async def test_the_largest_accepted_searches_run(loaded: httpx.AsyncClient, path: str, query: str,
                                                 expected: list[str]) -> None:
    assert ids(await bundle(loaded, path, query + "&_total=accurate", STRICT)) == expected


async def test_a_system_search_over_every_type_with_the_most_values(loaded: httpx.AsyncClient) -> None:
    """Each value is bound once per searched type on SQLite: the largest bound-variable count."""
    tags = [("_tag", values(MAX_VALUES, "http://t|c")) for _ in range(MAX_TOTAL_VALUES // MAX_VALUES)]
    body = await bundle(loaded, "/", [("_type", _all_types()), *tags, ("_total", "accurate")], STRICT)
    assert body["total"] == 0

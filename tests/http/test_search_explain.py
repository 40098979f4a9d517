"""``__explain=true`` (server.search.explain) over HTTP on both stores: the searchset Bundle holds the
matches and an OperationOutcome entry (``search.mode = outcome``) whose diagnostics render the plan
the store ran, and which shows nothing the search itself does not (no ids a sub-query found)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest_asyncio

from tests.http.searching import STRICT, bundle, entries, ids, load, names_parameter, outcome

RESOURCES: list[dict[str, Any]] = [
    {"resourceType": "Patient", "id": "xpl-hidden-patient", "name": [{"family": "Explainer"}]},
    {"resourceType": "Observation", "id": "xpl-obs", "status": "final", "code": {"text": "x"},
     "subject": {"reference": "Patient/xpl-hidden-patient"}},
]


@pytest_asyncio.fixture(scope="module")
async def loaded(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await load(client, RESOURCES)
    return client


def plan_of(body: dict[str, Any]) -> str:
    [oo] = entries(body, "outcome")
    [issue] = [i for i in oo["issue"] if i.get("expression") == ["__explain"]]
    assert issue["severity"] == "information" and issue["code"] == "informational"
    return str(issue["diagnostics"])


async def test_the_plan_comes_with_the_matches(loaded: httpx.AsyncClient) -> None:
    body = await bundle(loaded, "/Patient", "family=Explainer&__explain=true&_total=accurate", STRICT)
    assert ids(body) == ["xpl-hidden-patient"] and body["total"] == 1
    plan = plan_of(body)
    assert "types: Patient" in plan and "string[family]: value prefix 'explainer'" in plan, plan
    if "store: sqlite" in plan:
        assert "page SQL" in plan and "page EXPLAIN QUERY PLAN" in plan and "idx_string" in plan, plan
        assert "total SQL" in plan, plan
    else:
        assert "store: mongo" in plan and "filter:" in plan and "partition 1 (find)" in plan, plan
        assert "string" in plan and "total" in plan, plan


async def test_a_chain_plan_does_not_show_what_the_sub_query_found(loaded: httpx.AsyncClient) -> None:
    body = await bundle(loaded, "/Observation", "subject:Patient.family=Explainer&__explain=true", STRICT)
    assert ids(body) == ["xpl-obs"]
    plan = plan_of(body)
    assert "CHAIN subject -> Patient WHERE" in plan, plan
    assert "xpl-hidden-patient" not in plan, plan


async def test_without_explain_there_is_no_plan(loaded: httpx.AsyncClient) -> None:
    body = await bundle(loaded, "/Patient", "family=Explainer&__explain=false", STRICT)
    assert entries(body, "outcome") == []


async def test_a_malformed_explain_is_a_400(loaded: httpx.AsyncClient) -> None:
    body = outcome(await loaded.get("/Patient", params={"__explain": "yes"}), 400)
    assert names_parameter(body, "__explain")

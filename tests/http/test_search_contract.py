"""One search contract for both stores: the same table of searches runs over HTTP on SQLite and on
MongoDB and through the in-memory evaluator (tests/search/evaluate.py, brute force over the real
index entries), and each store must give what the evaluator gives: the same ids in the same order
(paged two at a time through the ``next`` links), the same ``_total``, or the same error (status,
issue code and the parameter named in ``expression``).

What used to differ: a cursor that did not fit the ``_sort`` (500 or a silent 200 on SQLite, 400 on
MongoDB); ``_sort`` by a reference (by id on SQLite, by ``Type/id`` on MongoDB); a broad chain
AND-ed with narrow criteria (400 "chain too broad" on MongoDB, an answer on SQLite); limits that only
one store had (sort keys) or neither (chain depth).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import pytest_asyncio

from server.errors import FhirError
from server.search import cost
from server.search.index import Indexer
from server.search.parse import parse_search
from server.search.registry import SearchRegistry
from server.stores.mongo import reads
from tests.conftest import BASE
from tests.http.searching import STRICT, load, params
from tests.http.test_search_explain import plan_of
from tests.search.evaluate import World

CAP = 3
"""The search core's sub-query cap (server.search.cost.DRIVE_CAP), lowered for half of this module's
runs so a chain over four patients has "many" targets and is answered by testing each candidate
(MongoDB: with a walk batch this small, a walk takes several rounds; SQLite: the type is walked);
the other half runs with the real cap, driving from the targets: both must give the evaluator's
answer (ids, order, totals)."""

RARE = {"coding": [{"system": "http://ct", "code": "rare"}]}
OFTEN = {"coding": [{"system": "http://ct", "code": "often"}]}


def patient(id_: str, family: str | None, given: str | None = None, birth: str | None = None,
            gender: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Patient", "id": id_}
    if family or given:
        out["name"] = [{k: v for k, v in (("family", family), ("given", [given] if given else None)) if v}]
    if birth:
        out["birthDate"] = birth
    if gender:
        out["gender"] = gender
    return out


def observation(id_: str, subject: str | None, code: dict[str, Any], value: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Observation", "id": id_, "status": "final", "code": code}
    if subject:
        out["subject"] = {"reference": subject}
    if value is not None:
        out["valueQuantity"] = {"value": value, "system": "http://unitsofmeasure.org", "code": "mg", "unit": "mg"}
    return out


RESOURCES: list[dict[str, Any]] = [
    patient("ct-p1", "Common", "Ann", "1980-01-01", "female"),
    patient("ct-p2", "Common", "Bob", "1990-05-05", "male"),
    patient("ct-p3", "Common", None, "1970", "male"),
    patient("ct-p6", "Common", "Cid", "1990-05-05", "male"),
    patient("ct-p4", "Rarefam", "Zed"),
    patient("ct-p5", None, gender="other"),
    {"resourceType": "Group", "id": "ct-g1", "type": "person", "actual": True},
    {"resourceType": "Location", "id": "ct-a-l1", "name": "Common place"},
    observation("ct-o1", "Patient/ct-p1", RARE, 5),
    observation("ct-o2", "Patient/ct-p2", OFTEN, 7),
    observation("ct-o3", "Patient/ct-p3", OFTEN),
    observation("ct-o4", "Patient/ct-p4", RARE, 3),
    observation("ct-o5", "Group/ct-g1", OFTEN, 7),
    observation("ct-o6", "http://elsewhere.example/fhir/Patient/zz", RARE),
    observation("ct-o7", "Location/ct-a-l1", OFTEN, 0.5),
    observation("ct-o8", None, OFTEN),
]

CASES: list[tuple[str, str]] = [
    # order: parameters of each type, missing values last both ways, ties by type and id
    ("/Patient", "_id=ct-p1,ct-p2,ct-p3,ct-p4,ct-p5,ct-p6&_sort=family"),
    ("/Patient", "_id=ct-p1,ct-p2,ct-p3,ct-p4,ct-p5,ct-p6&_sort=-family,given"),
    ("/Patient", "_id=ct-p1,ct-p2,ct-p3,ct-p4,ct-p5,ct-p6&_sort=-birthdate,_id"),
    ("/Patient", "_id=ct-p1,ct-p2,ct-p3,ct-p4,ct-p5,ct-p6&_sort=gender,-birthdate"),
    ("/Patient", "family=common&_sort=-_id"),
    # a reference sorts by Type/id (absolute URLs by the URL) on both stores
    ("/Observation", "code=http://ct|rare,http://ct|often&_sort=subject"),
    ("/Observation", "code=http://ct|rare,http://ct|often&_sort=-subject"),
    ("/Observation", "code=http://ct|rare,http://ct|often&_sort=-value-quantity,subject"),
    # chains and reverse chains
    ("/Observation", "subject:Patient.family=rarefam"),
    ("/Patient", "_has:Observation:subject:code=http://ct|rare&_sort=_id"),
    # a broad chain AND-ed with narrow criteria is answered on both stores
    ("/Observation", "subject:Patient.name=common&code=http://ct|rare"),
    ("/Observation", "subject.name=common&code=http://ct|rare&_sort=-subject"),
    ("/Patient", "_has:Observation:subject:code=http://ct|often,http://ct|rare&family=rarefam"),
    # ... and so is one with nothing narrower beside it (walked in result order on MongoDB)
    ("/Observation", "subject.name=common&_sort=_id"),
    ("/Observation", "subject:Patient.name=common&_sort=-value-quantity"),
    ("/Patient", "_has:Observation:subject:code=http://ct|often,http://ct|rare&_sort=-_id"),
    ("/Patient", "_has:Observation:subject:code=http://ct|often,http://ct|rare&_sort=gender,family"),
    # a broad chain nested in another chain, and conditional matching through a broad chain
    ("/Observation", "subject:Patient._has:Observation:subject:code=http://ct|often,http://ct|rare&_sort=_id"),
    # the same 400 from the search core on both
    ("/Patient", "organization.partof.partof.partof.name=x"),
    ("/Patient", "_sort=family,given,birthdate,gender,address"),
    ("/Patient", "family=" + ",".join(f"f{i}" for i in range(101))),
    ("/Patient", "_sort=subject"),
    ("/Observation", "subject.unknown=x"),
]

Outcome = tuple[Any, ...]


@pytest.fixture(autouse=True, params=["small-cap", "real-cap"])
def subquery_cap(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "small-cap":
        monkeypatch.setattr(cost, "DRIVE_CAP", CAP)
        monkeypatch.setattr(reads, "WALK_BATCH", 2)
    yield str(request.param)


@pytest_asyncio.fixture(scope="module")
async def loaded(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await load(client, RESOURCES)
    return client


@pytest.fixture(scope="module")
def world() -> World:
    w = World(Indexer(SearchRegistry(), base_url=BASE))
    for r in RESOURCES:
        w.add(r)
    return w


def evaluated(world: World, path: str, query: list[tuple[str, str]]) -> Outcome:
    types = tuple(t for t in path.strip("/").split("/") if t)
    try:
        request = parse_search(types, query, world.indexer.registry, strict=True, base_url=BASE)
    except FhirError as e:
        return ("error", e.status, e.issues[0].code, tuple(e.expression))
    keys = world.ordered(request.query)
    return ("ok", keys, len(keys))


def _key(entry: dict[str, Any]) -> tuple[str, str]:
    return entry["resource"]["resourceType"], entry["resource"]["id"]


async def served(client: httpx.AsyncClient, path: str, query: list[tuple[str, str]]) -> Outcome:
    r = await client.get(path, params=[*query, ("_count", "2"), ("_total", "accurate")], headers=STRICT)
    if r.status_code != 200:
        issue = r.json()["issue"][0]
        return ("error", r.status_code, issue["code"], tuple(issue.get("expression", ())))
    body = r.json()
    total = body["total"]
    keys: list[tuple[str, str]] = []
    for _ in range(20):
        keys += [_key(e) for e in body.get("entry", ()) if e["search"]["mode"] == "match"]
        following = [link["url"] for link in body.get("link", ()) if link["relation"] == "next"]
        if not following:
            break
        url = urlsplit(following[0])
        r = await client.get(url.path.removeprefix("/fhir"), params=parse_qsl(url.query), headers=STRICT)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body.get("total", total) == total, (path, query, body.get("total"))  # every page: the same total
    return ("ok", keys, total)


@pytest.mark.parametrize(("path", "query"), CASES, ids=[f"{p}?{q[:60]}" for p, q in CASES])
async def test_both_stores_answer_as_the_evaluator(loaded: httpx.AsyncClient, world: World, path: str,
                                                   query: str) -> None:
    assert await served(loaded, path, params(query)) == evaluated(world, path, params(query))


async def test_the_evaluator_agrees_with_hand_written_orders(world: World) -> None:
    """The evaluator itself, on the cases the stores used to disagree about."""
    by_subject = evaluated(world, "/Observation", params("code=http://ct|rare,http://ct|often&_sort=subject"))
    assert [k[1] for k in by_subject[1]] == ["ct-o5", "ct-o7", "ct-o1", "ct-o2", "ct-o3", "ct-o4", "ct-o6", "ct-o8"]
    broad = evaluated(world, "/Observation", params("subject:Patient.name=common&code=http://ct|rare"))
    assert broad == ("ok", [("Observation", "ct-o1")], 1)


async def test_a_cursor_that_does_not_fit_the_search_is_a_400(loaded: httpx.AsyncClient) -> None:
    first = await loaded.get("/Patient", params={"family": "common", "_sort": "family", "_count": "1"})
    [cursor] = [v for link in first.json()["link"] if link["relation"] == "next"
                for k, v in parse_qsl(urlsplit(link["url"]).query) if k == "_cursor"]
    for other in ({"_sort": "-family"}, {"_sort": "given"}, {}, {"_sort": "family", "_type": "x"}):
        path = "/Observation" if "_type" in other else "/Patient"
        query = {k: v for k, v in other.items() if k != "_type"}
        r = await loaded.get(path, params={**query, "_cursor": cursor})
        assert r.status_code == 400, (other, r.text)
        assert r.json()["issue"][0]["expression"] == ["_cursor"], r.text
    same = await loaded.get("/Patient", params={"family": "common", "_sort": "family", "_count": "1",
                                                "_cursor": cursor})
    assert same.status_code == 200


async def test_conditional_matching_through_a_broad_chain(loaded: httpx.AsyncClient) -> None:
    """``find`` (conditional interactions) answers a broad chain too (MongoDB walks)."""
    r = await loaded.put("/Observation?subject:Patient.name=rarefam&code=http://ct|rare",
                         json=observation("ct-o4", "Patient/ct-p4", RARE, 3))
    assert r.status_code == 200, r.text
    r = await loaded.put("/Observation?subject:Patient.name=common", json=observation("x", None, RARE))
    assert r.status_code == 412, r.text  # several matches (search.html, conditional update)


@pytest.mark.parametrize(("path", "query", "name"), [
    ("/Observation", "subject:Patient.name=common", "subject"),
    ("/Patient", "_has:Observation:subject:code=http://ct|often,http://ct|rare", "_has:Observation:subject"),
])
async def test_explain_names_the_side_each_store_took(loaded: httpx.AsyncClient, world: World, subquery_cap: str,
                                                      path: str, query: str, name: str) -> None:
    """Four patients are named 'Common' (three observations point at them; five observations with
    either code point at four patients): below the real cap both stores drive from the targets,
    with the cap lowered to three both test each candidate, and the matches are the same."""
    r = await loaded.get(path, params=[*params(query), ("__explain", "true"), ("_total", "accurate")],
                         headers=STRICT)
    assert r.status_code == 200, r.text
    plan = plan_of(r.json())
    side = "drive from the targets" if subquery_cap == "real-cap" else "test each candidate"
    assert f"{name}: {side} (" in plan, plan
    expected = evaluated(world, path, params(query))
    assert ("ok", [_key(e) for e in r.json()["entry"] if e["search"]["mode"] == "match"],
            r.json()["total"]) == expected

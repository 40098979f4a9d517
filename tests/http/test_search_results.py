"""Result control over HTTP on both stores (http://hl7.org/fhir/R4/search.html#return):
``_sort``, ``_count``, keyset paging through ``next`` links (stable while others write),
``_total``, ``_summary``, ``_elements``, ``_include`` / ``_revinclude`` (``:iterate``, ``*``) and
``search.mode``.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import pytest_asyncio

from server.stores.base import Store
from tests.conftest import make_client
from tests.http.searching import all_pages, bundle, entries, ids, load, outcome

SUBSETTED = "SUBSETTED"


def patient(id_: str, tag: str, family: str | None = None, birth: str | None = None, gender: str | None = None,
            **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Patient", "id": id_, "meta": {"tag": [{"code": tag}]}, **extra}
    if family:
        out["name"] = [{"family": family, "given": ["Given"]}]
    if birth:
        out["birthDate"] = birth
    if gender:
        out["gender"] = gender
    return out


NARRATIVE = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Adams</div>'}

SORTED = [
    patient("s1", "sortset", "Adams", "1980-01-01", "female", text=NARRATIVE,
            communication=[{"language": {"text": "zh"}}], managingOrganization={"reference": "Organization/org"}),
    patient("s2", "sortset", "baker", "1990-01-01", "male"),
    patient("s3", "sortset", "Carter", None, "other"),
    patient("s4", "sortset", "Adams", "1970-01-01", "female"),
    patient("s5", "sortset", None, "2000-01-01"),
]

OTHERS: list[dict[str, Any]] = [
    {"resourceType": "Organization", "id": "org", "name": "Org"},
    {"resourceType": "Practitioner", "id": "pr", "name": [{"family": "Doc"}]},
    {"resourceType": "Observation", "id": "i1", "status": "final", "code": {"text": "x"},
     "subject": {"reference": "Patient/s1"}, "performer": [{"reference": "Practitioner/pr"}]},
    {"resourceType": "Observation", "id": "i2", "status": "final", "code": {"text": "x"},
     "subject": {"reference": "Patient/s2"}},
    {"resourceType": "Observation", "id": "i3", "status": "final", "code": {"text": "x"},
     "subject": {"reference": "Patient/s1"}, "hasMember": [{"reference": "Observation/i2"}]},
]

ORDERS: list[tuple[str, list[str]]] = [
    ("family", ["s1", "s4", "s2", "s3", "s5"]),
    ("-family", ["s3", "s2", "s1", "s4", "s5"]),
    ("family,-birthdate", ["s1", "s4", "s2", "s3", "s5"]),
    ("family,birthdate", ["s4", "s1", "s2", "s3", "s5"]),
    ("birthdate", ["s4", "s1", "s2", "s5", "s3"]),
    ("-birthdate", ["s5", "s2", "s1", "s4", "s3"]),
    ("gender", ["s1", "s4", "s2", "s3", "s5"]),
    ("-gender,-_id", ["s3", "s2", "s4", "s1", "s5"]),
    ("gender,birthdate", ["s4", "s1", "s2", "s3", "s5"]),
    ("_id", ["s1", "s2", "s3", "s4", "s5"]),
    ("-_id", ["s5", "s4", "s3", "s2", "s1"]),
    ("_lastUpdated", ["s1", "s2", "s3", "s4", "s5"]),
    ("-_lastUpdated", ["s5", "s4", "s3", "s2", "s1"]),
    ("-family,_lastUpdated", ["s3", "s2", "s1", "s4", "s5"]),
]


@pytest_asyncio.fixture(scope="module", autouse=True)
async def resources(client: httpx.AsyncClient) -> None:
    await load(client, [OTHERS[0], *SORTED, *OTHERS[1:]])


@pytest.mark.parametrize(("sort", "expected"), ORDERS, ids=[s for s, _ in ORDERS])
async def test_sort(client: httpx.AsyncClient, sort: str, expected: list[str]) -> None:
    assert ids(await bundle(client, "/Patient", f"_tag=sortset&_sort={sort}")) == expected


@pytest.mark.parametrize(("sort", "expected"), ORDERS, ids=[s for s, _ in ORDERS])
async def test_paging_follows_the_order(client: httpx.AsyncClient, sort: str, expected: list[str]) -> None:
    assert await all_pages(client, "/Patient", f"_tag=sortset&_sort={sort}&_count=2") == expected


async def test_paging_without_sort_is_complete(client: httpx.AsyncClient) -> None:
    assert sorted(await all_pages(client, "/Patient", "_tag=sortset&_count=1")) == ["s1", "s2", "s3", "s4", "s5"]


async def test_paging_links(client: httpx.AsyncClient) -> None:
    first = await bundle(client, "/Patient", "_tag=sortset&_sort=_id&_count=2")
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert set(links) == {"self", "next"}
    assert "_cursor=" in links["next"] and "_count=2" in links["next"] and "_sort=_id" in links["next"]
    second = (await client.get(links["next"])).json()
    rels = {link["relation"] for link in second["link"]}
    assert {"self", "next", "first"} <= rels
    last = await bundle(client, "/Patient", "_tag=sortset&_sort=_id&_count=5")
    assert "next" not in {link["relation"] for link in last["link"]}
    body = outcome(await client.get("/Patient", params={"_cursor": "not-a-cursor!"}), 400)
    assert any("_cursor" in i.get("expression", ()) for i in body["issue"]), body


@pytest.mark.parametrize("sort", ["family", "-family", "_id", "birthdate", "-_lastUpdated"])
async def test_paging_is_stable_under_concurrent_writes(client: httpx.AsyncClient, sort: str) -> None:
    """Rows inserted while a client pages never make it see a row twice or skip one that existed
    when it started (keyset paging: each page continues after the last row it returned)."""
    tag = f"page-{sort.strip('-_')}"
    originals = [patient(f"{tag}-{n}", tag, f"Fam{n % 4}", f"19{50 + n}-01-01") for n in range(9)]
    await load(client, originals)
    query = f"_tag={tag}&_sort={sort}&_count=2"
    body = await bundle(client, "/Patient", query)
    seen = ids(body)
    n = 0
    while True:
        nxt = [link["url"] for link in body["link"] if link["relation"] == "next"]
        if not nxt:
            break
        n += 1  # writes between pages: before, after and tied with the cursor row
        await load(client, [patient(f"{tag}-new{n}a", tag, "Aaa", "1900-01-01"),
                            patient(f"{tag}-new{n}z", tag, "Zzz", "2099-01-01"),
                            patient(f"{tag}-new{n}t", tag, "Fam1", "1955-01-01")])
        r = await client.get(nxt[0])
        assert r.status_code == 200, r.text
        body = r.json()
        seen += ids(body)
    assert len(seen) == len(set(seen)), seen
    assert {p["id"] for p in originals} <= set(seen)


async def test_count(client: httpx.AsyncClient) -> None:
    two = await bundle(client, "/Patient", "_tag=sortset&_count=2")
    assert len(ids(two)) == 2
    zero = await bundle(client, "/Patient", "_tag=sortset&_count=0")
    assert zero.get("entry", []) == []
    assert zero["total"] == 5  # _count=0 is treated like _summary=count
    assert "next" not in {link["relation"] for link in zero["link"]}
    for bad in ("-1", "abc", "1.5"):
        body = outcome(await client.get("/Patient", params={"_count": bad}), 400)
        assert any("_count" in i.get("expression", ()) for i in body["issue"]), body


async def test_count_is_capped(store: Store) -> None:
    async with make_client(store, max_count=3, default_count=2) as capped:
        body = await bundle(capped, "/Patient", "_tag=sortset&_count=50")
        assert len(ids(body)) == 3
        assert "next" in {link["relation"] for link in body["link"]}
        assert len(ids(await bundle(capped, "/Patient", "_tag=sortset"))) == 2


@pytest.mark.parametrize(("total", "expected"), [("none", None), ("accurate", 5), ("estimate", 5)])
async def test_total(client: httpx.AsyncClient, total: str, expected: int | None) -> None:
    body = await bundle(client, "/Patient", f"_tag=sortset&_total={total}&_count=1")
    assert body.get("total") == expected
    assert len(ids(body)) == 1


async def test_total_rejects_unknown_values(client: httpx.AsyncClient) -> None:
    outcome(await client.get("/Patient", params={"_total": "exact"}), 400)


def tags(resource: dict[str, Any]) -> set[str]:
    return {t.get("code") for t in resource.get("meta", {}).get("tag", [])}


async def test_summary(client: httpx.AsyncClient) -> None:
    count = await bundle(client, "/Patient", "_tag=sortset&_summary=count")
    assert count["total"] == 5 and count.get("entry", []) == []
    [summary] = entries(await bundle(client, "/Patient", "_id=s1&_summary=true"))
    assert {"name", "gender", "birthDate", "managingOrganization"} <= set(summary)
    assert "communication" not in summary and "text" not in summary
    assert SUBSETTED in tags(summary) and "sortset" in tags(summary)
    [text] = entries(await bundle(client, "/Patient", "_id=s1&_summary=text"))
    assert set(text) == {"resourceType", "id", "meta", "text"} and SUBSETTED in tags(text)
    [data] = entries(await bundle(client, "/Patient", "_id=s1&_summary=data"))
    assert "text" not in data and "communication" in data and SUBSETTED in tags(data)
    [full] = entries(await bundle(client, "/Patient", "_id=s1&_summary=false"))
    assert "text" in full and "communication" in full and SUBSETTED not in tags(full)
    outcome(await client.get("/Patient", params={"_summary": "everything"}), 400)


async def test_elements(client: httpx.AsyncClient) -> None:
    [one] = entries(await bundle(client, "/Patient", "_id=s1&_elements=gender"))
    assert set(one) == {"resourceType", "id", "meta", "gender"} and SUBSETTED in tags(one)
    [two] = entries(await bundle(client, "/Patient", "_id=s1&_elements=gender,birthDate"))
    assert set(two) == {"resourceType", "id", "meta", "gender", "birthDate"}
    [obs] = entries(await bundle(client, "/Observation", "_id=i1&_elements=subject"))
    assert {"status", "code", "subject"} <= set(obs) and "performer" not in obs  # mandatory kept
    outcome(await client.get("/Patient", params={"_elements": "na$me"}), 400)


INCLUDES: list[tuple[str, str, list[str], set[str]]] = [
    ("/Observation", "_id=i1&_include=Observation:subject", ["i1"], {"s1"}),
    ("/Observation", "_id=i1&_include=Observation:subject:Patient", ["i1"], {"s1"}),
    ("/Observation", "_id=i1&_include=Observation:subject:Group", ["i1"], set()),
    ("/Observation", "_id=i1&_include=Observation:performer", ["i1"], {"pr"}),
    ("/Observation", "_id=i1&_include=*", ["i1"], {"s1", "pr"}),
    ("/Observation", "_id=i1&_include=Observation:subject&_include=Observation:performer", ["i1"], {"s1", "pr"}),
    ("/Observation", "_id=i1&_include=Observation:subject&_include:iterate=Patient:organization", ["i1"],
     {"s1", "org"}),
    ("/Observation", "_id=i3&_include=Observation:has-member&_include:iterate=Observation:subject", ["i3"],
     {"i2", "s1", "s2"}),
    ("/Observation", "_id=i1,i2&_sort=_id&_include=Observation:subject", ["i1", "i2"], {"s1", "s2"}),
    ("/Observation", "_id=i2&_include=Observation:performer", ["i2"], set()),
    ("/Patient", "_id=s1&_revinclude=Observation:subject", ["s1"], {"i1", "i3"}),
    ("/Patient", "_id=s1,s2&_sort=_id&_revinclude=Observation:subject", ["s1", "s2"], {"i1", "i2", "i3"}),
    ("/Patient", "_id=s1&_revinclude=Observation:performer", ["s1"], set()),
    ("/Patient", "_id=s1&_revinclude=Observation:*", ["s1"], {"i1", "i3"}),
    ("/Practitioner", "_id=pr&_revinclude=Observation:*", ["pr"], {"i1"}),
    ("/Organization", "_id=org&_revinclude=Patient:organization", ["org"], {"s1"}),
    ("/Organization", "_id=org&_revinclude=Patient:organization&_revinclude:iterate=Observation:subject", ["org"],
     {"s1", "i1", "i3"}),
    ("/Organization", "_id=org&_revinclude=Patient:organization&_revinclude:iterate=Observation:subject"
                      "&_include:iterate=Observation:performer", ["org"], {"s1", "i1", "i3", "pr"}),
    ("/Practitioner", "_id=pr&_revinclude=Observation:performer&_include:iterate=Observation:subject", ["pr"],
     {"i1", "s1"}),
]


@pytest.mark.parametrize(("path", "query", "matches", "included"), INCLUDES, ids=[q for _, q, _, _ in INCLUDES])
async def test_include(client: httpx.AsyncClient, path: str, query: str, matches: list[str],
                       included: set[str]) -> None:
    body = await bundle(client, path, query)
    assert ids(body) == matches
    found = ids(body, "include")
    assert len(found) == len(set(found)) and set(found) == included
    assert all(e["search"]["mode"] in ("match", "include") for e in body["entry"])


async def test_include_only_for_the_page(client: httpx.AsyncClient) -> None:
    body = await bundle(client, "/Observation", "_id=i1,i2&_sort=_id&_count=1&_include=Observation:subject")
    assert ids(body) == ["i1"] and ids(body, "include") == ["s1"]
    nxt = next(link["url"] for link in body["link"] if link["relation"] == "next")
    second = (await client.get(nxt)).json()
    assert ids(second) == ["i2"] and ids(second, "include") == ["s2"]


@pytest.mark.parametrize("value", ["Observation", "Observation:nope", "Nope:subject", "Observation:code",
                                   "Observation:subject:Nope"])
async def test_bad_include_is_400(client: httpx.AsyncClient, value: str) -> None:
    body = outcome(await client.get("/Observation", params={"_include": value}), 400)
    assert any("_include" in i.get("expression", ()) for i in body["issue"]), body


async def test_revinclude_of_every_type_is_declined(client: httpx.AsyncClient) -> None:
    body = await bundle(client, "/Patient", "_id=s1&_revinclude=*")
    assert ids(body) == ["s1"] and ids(body, "include") == []
    assert entries(body, "outcome") and "_revinclude" in str(entries(body, "outcome"))
    outcome(await client.get("/Patient", params={"_id": "s1", "_revinclude": "*"},
                             headers={"Prefer": "handling=strict"}), 400)


async def test_modes_match_include_outcome(client: httpx.AsyncClient) -> None:
    body = await bundle(client, "/Observation", "_id=i1&_include=Observation:subject&foo=bar")
    modes = [e["search"]["mode"] for e in body["entry"]]
    assert modes == ["match", "include", "outcome"]
    assert body["entry"][-1]["resource"]["resourceType"] == "OperationOutcome"


async def test_total_is_given_when_the_result_fits_one_page(client: httpx.AsyncClient) -> None:
    marker = f"total-{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        await client.post("/Organization", json={"resourceType": "Organization", "name": marker})
    one_page = (await client.get("/Organization", params={"name": marker})).json()
    assert one_page["total"] == 3
    paged = (await client.get("/Organization", params={"name": marker, "_count": "2"})).json()
    assert "total" not in paged
    none = (await client.get("/Organization", params={"name": marker, "_total": "none"})).json()
    assert "total" not in none

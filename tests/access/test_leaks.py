"""No leak paths (issue 13 §3): what institution A may not read is invisible to A everywhere, on
both stores, and A's writes obey the policy.

Institution B writes the hidden resources; institution A tries every path of the issue: read,
vread, search results and ``_total``, ``_include``/``_revinclude``/``:iterate``, chains and
``_has``, ``_history`` at three levels, compartments, ``$everything``, batch and transaction
entries, conditional create/update/delete/patch, ``_sort`` and paging, error messages; and writes:
update/delete/patch of B's resources are 403 and change nothing; what A creates is stamped.
The last tests check that with authorization off (no ``app.state.auth``) everything is as before.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.requests import Request

from server.access.principal import OPEN, SOURCE_TAG_SYSTEM, SOURCE_URI_PREFIX, Principal
from server.app import create_app
from server.errors import Unauthenticated
from server.settings import Settings
from server.stores.base import Store
from tests.conftest import BASE, make_client, unique

SYS = "http://example.org/ids"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


class FakeAuth:
    """``Authorization: Bearer <name>`` -> the principal of that name (no header: 401)."""

    def __init__(self, principals: dict[str, Principal]) -> None:
        self.principals = principals

    async def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        name = header.removeprefix("Bearer ").strip()
        if name not in self.principals:
            raise Unauthenticated("No valid bearer token")
        return self.principals[name]


def institution(name: str, inst: str, scopes: tuple[str, ...] = ("system/*.*",)) -> Principal:
    return Principal(name, "client", "institution", inst, scopes, client_id=name)


class World:
    """The app, a client per caller, and the names of what was written."""

    def __init__(self, client: httpx.AsyncClient, run: str) -> None:
        self.client = client
        self.run = run
        self.inst_a = f"A{run}"
        self.inst_b = f"B{run}"
        self.ids: dict[str, str] = {}

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {who}"}

    async def as_(self, who: str, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {**self.headers(who), **kw.pop("headers", {})}
        return await self.client.request(method, url, headers=headers, **kw)

    async def create(self, who: str, resource: dict[str, Any], key: str) -> str:
        r = await self.as_(who, "POST", f"/{resource['resourceType']}", json=resource)
        assert r.status_code == 201, r.text
        self.ids[key] = r.json()["id"]
        return self.ids[key]


@pytest_asyncio.fixture(scope="module")
async def world(store: Store) -> AsyncIterator[World]:
    run = unique("lk").replace("-", "")
    app = create_app(Settings(base_url=BASE, log_requests=False), store=store)
    inst_a, inst_b = f"A{run}", f"B{run}"
    principals = {"a": institution("a", inst_a), "b": institution("b", inst_b),
                  "platform": Principal("p", "client", "platform", f"P{run}", ("system/*.*",), client_id="p"),
                  "d": Principal("d", "client", "district", f"D{run}", ("system/*.rs",), client_id="d")}
    app.state.auth = FakeAuth(principals)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE)
    w = World(client, run)
    shared, has_code, own_code = f"shared{run}", f"has{run}", f"own{run}"
    # B's (hidden from A)
    await w.create("b", {"resourceType": "Patient", "identifier": [{"system": SYS, "value": f"pb{run}"}],
                         "name": [{"family": f"Hidden{run}"}]}, "pB")
    await w.create("b", {"resourceType": "Patient", "identifier": [{"system": SYS, "value": f"pb2{run}"}],
                         "name": [{"family": f"Other{run}"}]}, "pB2")
    # A's
    await w.create("a", {"resourceType": "Patient", "identifier": [{"system": SYS, "value": f"pa{run}"}],
                         "name": [{"family": f"Seen{run}"}]}, "pA")
    pA, pB = w.ids["pA"], w.ids["pB"]

    def obs(subject: str, code: str, **extra: Any) -> dict[str, Any]:
        return {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": SYS, "code": code}]},
                "subject": {"reference": f"Patient/{subject}"}, **extra}

    for i in range(3):
        await w.create("b", obs(pB, shared), f"oB{i}")
    for i in range(2):
        await w.create("a", obs(pA, shared), f"oA{i}")
    await w.create("b", obs(pA, has_code), "oBa")          # B's observation of A's patient (hidden)
    await w.create("a", obs(pA, own_code), "oAown")
    await w.create("a", obs(pB, f"x{run}"), "oA2")          # A's observation of B's patient (hidden subject)
    await w.create("b", obs(pB, f"x{run}"), "oBx")          # hidden, hasMember-ed by oA5
    await w.create("a", obs(pA, f"iter{run}", hasMember=[{"reference": f"Observation/{w.ids['oBx']}"}]), "oA5")
    await w.create("a", obs(pA, f"iter{run}", hasMember=[{"reference": f"Observation/{w.ids['oA5']}"}]), "oA4")
    # B updates oB0 (two versions) and deletes oBdel
    r = await w.as_("b", "GET", f"/Observation/{w.ids['oB0']}")
    body = r.json()
    body["status"] = "amended"
    r = await w.as_("b", "PUT", f"/Observation/{w.ids['oB0']}", json=body)
    assert r.status_code == 200, r.text
    await w.create("b", obs(pB, f"del{run}"), "oBdel")
    r = await w.as_("b", "DELETE", f"/Observation/{w.ids['oBdel']}")
    assert r.status_code == 204
    # a district commission D manages the patients of clinic C (partOf D); B wrote one of them
    await w.create("platform", {"resourceType": "Organization", "identifier": [{"value": f"D{run}"}]}, "orgD")
    await w.create("platform", {"resourceType": "Organization", "identifier": [{"value": f"C{run}"}],
                                "partOf": {"reference": f"Organization/{w.ids['orgD']}"}}, "orgC")
    await w.create("b", {"resourceType": "Patient", "name": [{"family": f"Managed{run}"}],
                         "managingOrganization": {"reference": f"Organization/{w.ids['orgC']}"}}, "pD")
    await w.create("b", obs(w.ids["pD"], f"dist{run}"), "oD")
    await w.create("b", obs(w.ids["pD"], f"dist{run}"), "oDdel")
    r = await w.as_("b", "DELETE", f"/Observation/{w.ids['oDdel']}")
    assert r.status_code == 204
    # a resident: A's patient, reading his own record
    principals["r"] = Principal("r", "user", "resident", inst_a, ("patient/*.rs",), patient=pA, client_id="app")
    w.ids.update(shared=shared, has=has_code, own=own_code)
    yield w
    await client.aclose()


def hidden_ids(w: World) -> set[str]:
    return {v for k, v in w.ids.items() if k.startswith(("pB", "oB"))}


def ids_of(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if "resource" in e
            and e["resource"]["resourceType"] != "OperationOutcome"]


def diagnostics(r: httpx.Response) -> str:
    return " ".join(i.get("diagnostics", "") for i in r.json()["issue"])


# --- reads ----------------------------------------------------------------------------------------


async def test_read_hidden_is_404_as_missing(world: World) -> None:
    w = world
    hidden = await w.as_("a", "GET", f"/Observation/{w.ids['oB1']}")
    missing = await w.as_("a", "GET", "/Observation/no-such-obs")
    assert hidden.status_code == missing.status_code == 404
    assert diagnostics(hidden).replace(w.ids["oB1"], "X") == diagnostics(missing).replace("no-such-obs", "X")
    assert (await w.as_("b", "GET", f"/Observation/{w.ids['oB1']}")).status_code == 200
    assert (await w.as_("a", "GET", f"/Observation/{w.ids['oA0']}")).status_code == 200


async def test_deleted_hidden_is_404_not_410(world: World) -> None:
    w = world
    r = await w.as_("a", "GET", f"/Observation/{w.ids['oBdel']}")
    assert r.status_code == 404 and "deleted" not in r.text
    assert (await w.as_("b", "GET", f"/Observation/{w.ids['oBdel']}")).status_code == 410


async def test_vread_hidden_is_404_as_missing(world: World) -> None:
    w = world
    for vid in ("1", "2"):
        hidden = await w.as_("a", "GET", f"/Observation/{w.ids['oB0']}/_history/{vid}")
        missing = await w.as_("a", "GET", f"/Observation/nope/_history/{vid}")
        assert hidden.status_code == missing.status_code == 404
        assert diagnostics(hidden).replace(w.ids["oB0"], "X") == diagnostics(missing).replace("nope", "X")
    assert (await w.as_("b", "GET", f"/Observation/{w.ids['oB0']}/_history/1")).status_code == 200


async def test_validate_instance_of_hidden_is_404(world: World) -> None:
    w = world
    r = await w.as_("a", "GET", f"/Observation/{w.ids['oB1']}/$validate")
    assert r.status_code == 404


# --- search -----------------------------------------------------------------------------------------


async def test_search_and_total_see_only_visible(world: World) -> None:
    w = world
    r = await w.as_("a", "GET", "/Observation", params={"code": f"{SYS}|{w.ids['shared']}", "_total": "accurate"})
    assert r.status_code == 200
    bundle = r.json()
    assert sorted(ids_of(bundle)) == sorted([w.ids["oA0"], w.ids["oA1"]])
    assert bundle["total"] == 2
    r = await w.as_("a", "GET", "/Observation", params={"code": f"{SYS}|{w.ids['shared']}", "_summary": "count"})
    assert r.json()["total"] == 2
    r = await w.as_("b", "GET", "/Observation", params={"code": f"{SYS}|{w.ids['shared']}", "_total": "accurate"})
    assert r.json()["total"] == 3


async def test_search_by_hidden_id_is_empty(world: World) -> None:
    w = world
    r = await w.as_("a", "GET", "/Patient", params={"_id": w.ids["pB"], "_total": "accurate"})
    assert r.json()["total"] == 0 and ids_of(r.json()) == []
    r = await w.as_("a", "POST", "/Patient/_search", data={"_id": w.ids["pB"]})
    assert ids_of(r.json()) == []


async def test_system_search_sees_only_visible(world: World) -> None:
    w = world
    r = await w.as_("a", "GET", "/", params={"_tag": f"{SOURCE_TAG_SYSTEM}|{w.inst_b}", "_total": "accurate"})
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 0 and ids_of(r.json()) == []
    r = await w.as_("a", "GET", "/", params={"_id": ",".join([w.ids["pB"], w.ids["pA"]])})
    assert ids_of(r.json()) == [w.ids["pA"]]


async def test_sort_and_paging_show_only_visible(world: World) -> None:
    w = world
    params = {"code": f"{SYS}|{w.ids['shared']}", "_sort": "-_lastUpdated", "_count": "1", "_total": "accurate"}
    r = await w.as_("a", "GET", "/Observation", params=params)
    seen: list[str] = []
    pages = 0
    while True:
        bundle = r.json()
        assert bundle["total"] == 2
        seen += ids_of(bundle)
        pages += 1
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not nxt:
            break
        r = await w.as_("a", "GET", nxt[0])
        assert r.status_code == 200
    assert seen == [w.ids["oA1"], w.ids["oA0"]] and pages == 2


async def test_include_skips_hidden_target(world: World) -> None:
    w = world
    r = await w.as_("a", "GET", "/Observation", params={"_id": w.ids["oA2"], "_include": "Observation:subject"})
    assert ids_of(r.json()) == [w.ids["oA2"]]
    r = await w.as_("a", "GET", "/Observation", params={"_id": w.ids["oA0"], "_include": "Observation:subject"})
    assert ids_of(r.json()) == [w.ids["oA0"], w.ids["pA"]]


async def test_revinclude_skips_hidden_source(world: World) -> None:
    w = world
    r = await w.as_("a", "GET", "/Patient", params={"_id": w.ids["pA"], "_revinclude": "Observation:subject"})
    found = set(ids_of(r.json()))
    assert w.ids["oAown"] in found and w.ids["oA0"] in found
    assert not found & hidden_ids(w)


async def test_include_iterate_stops_at_hidden(world: World) -> None:
    w = world
    r = await w.as_("a", "GET", "/Observation", params={"_id": w.ids["oA4"],
                                                        "_include:iterate": "Observation:has-member"})
    assert ids_of(r.json()) == [w.ids["oA4"], w.ids["oA5"]]
    r = await w.as_("b", "GET", "/Observation", params={"_id": w.ids["oA4"],
                                                        "_include:iterate": "Observation:has-member"})
    assert ids_of(r.json()) == []  # B cannot see A's


async def test_chain_over_hidden_target_does_not_match(world: World) -> None:
    w = world
    r = await w.as_("a", "GET", "/Observation", params={"subject:Patient.name": f"Hidden{w.run}",
                                                        "_total": "accurate"})
    assert r.status_code == 200 and r.json()["total"] == 0
    r = await w.as_("a", "GET", "/Observation", params={"subject:Patient.name": f"Seen{w.run}",
                                                        "code": f"{SYS}|{w.ids['own']}"})
    assert ids_of(r.json()) == [w.ids["oAown"]]


async def test_has_over_hidden_source_does_not_match(world: World) -> None:
    w = world
    r = await w.as_("a", "GET", "/Patient", params={"_has:Observation:subject:code": f"{SYS}|{w.ids['has']}",
                                                    "_total": "accurate"})
    assert r.status_code == 200 and r.json()["total"] == 0
    r = await w.as_("a", "GET", "/Patient", params={"_has:Observation:subject:code": f"{SYS}|{w.ids['own']}"})
    assert ids_of(r.json()) == [w.ids["pA"]]
    r = await w.as_("b", "GET", "/Patient", params={"_has:Observation:subject:code": f"{SYS}|{w.ids['has']}"})
    assert ids_of(r.json()) == []  # B's observation points at A's patient, which B cannot see


async def test_explain_shows_no_store_counts(world: World) -> None:
    w = world
    r = await w.as_("a", "GET", "/Observation", params={"code": f"{SYS}|{w.ids['shared']}", "__explain": "true"})
    assert r.status_code == 200
    text = json.dumps(r.json())
    assert not any(h in text for h in hidden_ids(w))


# --- history ----------------------------------------------------------------------------------------


async def test_instance_history_of_hidden_is_404(world: World) -> None:
    w = world
    hidden = await w.as_("a", "GET", f"/Observation/{w.ids['oB0']}/_history")
    missing = await w.as_("a", "GET", "/Observation/nope/_history")
    assert hidden.status_code == missing.status_code == 404
    assert diagnostics(hidden).replace(w.ids["oB0"], "X") == diagnostics(missing).replace("nope", "X")
    assert (await w.as_("a", "GET", f"/Observation/{w.ids['oBdel']}/_history")).status_code == 404
    r = await w.as_("b", "GET", f"/Observation/{w.ids['oB0']}/_history")
    assert len(r.json()["entry"]) == 2


async def history_ids(w: World, who: str, path: str, count: int, stops: list[int] | None = None) -> list[str]:
    """Every entry id of a history, page by page; for A, no cursor names a hidden resource.
    ``stops`` collects the sizes of the pages that stopped scanning early (their cursor is an instant)."""
    r = await w.as_(who, "GET", path, params={"_count": str(count)})
    out: list[str] = []
    while True:
        assert r.status_code == 200, r.text
        bundle = r.json()
        assert "total" not in bundle
        assert len(bundle["entry"]) <= count
        out += [e["fullUrl"].rsplit("/", 1)[1] for e in bundle["entry"]]
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not nxt:
            return out
        token = nxt[0].split("_cursor=")[1]
        decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if stops is not None and json.loads(decoded)[1:] == ["", "", 0]:
            stops.append(len(bundle["entry"]))
        assert who != "a" or not any(h in decoded for h in hidden_ids(w))  # names no hidden resource
        r = await w.as_(who, "GET", nxt[0])


@pytest.mark.parametrize("path", ["/Observation/_history", "/_history"])
async def test_type_and_system_history_hide_and_page(world: World, path: str) -> None:
    w = world
    for count in (1, 2, 50):
        seen = await history_ids(w, "a", path, count)
        assert not set(seen) & hidden_ids(w)
        mine = {v for k, v in w.ids.items() if k.startswith(("oA", "pA"))}
        assert mine <= set(seen) if path == "/_history" else {i for i in mine if i != w.ids["pA"]} <= set(seen)
        assert len(seen) == len(set(seen))  # nothing twice across pages
    seen_b = await history_ids(w, "b", path, 3)
    assert w.ids["oBdel"] in seen_b and w.ids["oA0"] not in seen_b


# --- compartments and $everything ------------------------------------------------------------------------


async def test_compartment_of_hidden_owner_is_404(world: World) -> None:
    w = world
    for tail in ("Observation", "*"):
        hidden = await w.as_("a", "GET", f"/Patient/{w.ids['pB']}/{tail}")
        missing = await w.as_("a", "GET", f"/Patient/nope/{tail}")
        assert hidden.status_code == missing.status_code == 404
        assert diagnostics(hidden).replace(w.ids["pB"], "X") == diagnostics(missing).replace("nope", "X")


async def test_compartment_members_restricted(world: World) -> None:
    w = world
    for tail in ("Observation", "*"):
        r = await w.as_("a", "GET", f"/Patient/{w.ids['pA']}/{tail}", params={"_total": "accurate"})
        assert r.status_code == 200, r.text
        found = set(ids_of(r.json()))
        assert w.ids["oAown"] in found and not found & hidden_ids(w)
        assert r.json()["total"] == len(found)


async def test_everything(world: World) -> None:
    w = world
    hidden = await w.as_("a", "GET", f"/Patient/{w.ids['pB']}/$everything")
    missing = await w.as_("a", "GET", "/Patient/nope/$everything")
    assert hidden.status_code == missing.status_code == 404
    assert diagnostics(hidden).replace(w.ids["pB"], "X") == diagnostics(missing).replace("nope", "X")
    r = await w.as_("a", "GET", f"/Patient/{w.ids['pA']}/$everything")
    found = set(ids_of(r.json()))
    assert {w.ids["pA"], w.ids["oAown"], w.ids["oA4"]} <= found and not found & hidden_ids(w)
    r = await w.as_("a", "GET", "/Patient/$everything", params={"_count": "1000"})
    found = set(ids_of(r.json()))
    assert w.ids["pA"] in found and not found & hidden_ids(w)


# --- batch and transaction ---------------------------------------------------------------------------


async def test_batch_entries(world: World) -> None:
    w = world
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Observation/{w.ids['oB1']}"}},
        {"request": {"method": "GET", "url": f"Observation/{w.ids['oB0']}/_history/1"}},
        {"request": {"method": "GET", "url": f"Observation?code={SYS}|{w.ids['shared']}&_total=accurate"}},
        {"request": {"method": "GET", "url": f"Observation/{w.ids['oA0']}"}},
        {"request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={SYS}|pb{w.run}"},
         "resource": {"resourceType": "Patient", "name": [{"family": "Batch"}]}},
        {"request": {"method": "DELETE", "url": f"Observation/{w.ids['oB1']}"}},
    ]}
    r = await w.as_("a", "POST", "/", json=bundle)
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    assert [e["response"]["status"][:3] for e in entries] == ["404", "404", "200", "200", "201", "403"]
    assert entries[2]["resource"]["total"] == 2
    assert entries[4]["response"]["location"].split("/")[1] != w.ids["pB"]
    named = {w.ids["oB1"], w.ids["oB0"]}  # the request names these itself: its errors may echo them
    assert not any(h in r.text for h in hidden_ids(w) - named) and f"Hidden{w.run}" not in r.text
    assert (await w.as_("b", "GET", f"/Observation/{w.ids['oB1']}")).status_code == 200


async def test_transaction_conditional_reference_to_hidden_is_no_match(world: World) -> None:
    w = world

    def bundle(identifier: str) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "POST", "url": "Observation"},
             "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "t"},
                          "subject": {"reference": f"Patient?identifier={SYS}|{identifier}"}}}]}

    hidden = await w.as_("a", "POST", "/", json=bundle(f"pb{w.run}"))
    missing = await w.as_("a", "POST", "/", json=bundle(f"none{w.run}"))
    assert hidden.status_code == missing.status_code == 412
    assert diagnostics(hidden).replace(f"pb{w.run}", "X") == diagnostics(missing).replace(f"none{w.run}", "X")
    ok = await w.as_("a", "POST", "/", json=bundle(f"pa{w.run}"))
    assert ok.status_code == 200, ok.text


async def test_transaction_with_forbidden_entry_leaves_nothing(world: World) -> None:
    w = world
    marker = unique("tx")
    r = await w.as_("b", "GET", f"/Observation/{w.ids['oB1']}")
    body = r.json()
    body["status"] = "cancelled"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:1", "request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "identifier": [{"system": SYS, "value": marker}]}},
        {"request": {"method": "PUT", "url": f"Observation/{w.ids['oB1']}"}, "resource": body},
    ]}
    r = await w.as_("a", "POST", "/", json=bundle)
    assert r.status_code == 403, r.text
    assert "cancelled" not in r.text
    r = await w.as_("a", "GET", "/Patient", params={"identifier": f"{SYS}|{marker}", "_total": "accurate"})
    assert r.json()["total"] == 0
    r = await w.as_("b", "GET", f"/Observation/{w.ids['oB1']}")
    assert r.json()["status"] == "final" and r.json()["meta"]["versionId"] == "1"
    # the conditional create of a transaction matches only what A sees
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={SYS}|pb{w.run}"},
         "resource": {"resourceType": "Patient", "name": [{"family": "Tx"}]}}]}
    r = await w.as_("a", "POST", "/", json=bundle)
    assert r.status_code == 200 and r.json()["entry"][0]["response"]["status"].startswith("201")
    assert w.ids["pB"] not in r.text


# --- conditional writes ---------------------------------------------------------------------------------


async def test_conditional_create_does_not_match_hidden(world: World) -> None:
    w = world
    r = await w.as_("a", "POST", "/Patient", json={"resourceType": "Patient", "name": [{"family": "Dup"}]},
                    headers={"If-None-Exist": f"identifier={SYS}|pb{w.run}"})
    assert r.status_code == 201, r.text
    assert r.json()["id"] != w.ids["pB"] and w.ids["pB"] not in r.text
    again = await w.as_("a", "POST", "/Patient", json={"resourceType": "Patient"},
                        headers={"If-None-Exist": f"identifier={SYS}|pa{w.run}"})
    assert again.status_code == 200 and again.json()["id"] == w.ids["pA"]


async def test_conditional_update_creates_instead_of_hidden(world: World) -> None:
    w = world
    resource = {"resourceType": "Patient", "identifier": [{"system": SYS, "value": f"pb2{w.run}"}],
                "name": [{"family": "Takeover"}]}
    r = await w.as_("a", "PUT", "/Patient", params={"identifier": f"{SYS}|pb2{w.run}"}, json=resource)
    assert r.status_code == 201, r.text
    assert r.json()["id"] != w.ids["pB2"]
    b = await w.as_("b", "GET", f"/Patient/{w.ids['pB2']}")
    assert b.json()["name"][0]["family"] == f"Other{w.run}" and b.json()["meta"]["versionId"] == "1"
    # naming the hidden one's id in the body: it is B's resource, 403, unchanged
    resource["id"] = w.ids["pB2"]
    r = await w.as_("a", "PUT", "/Patient", params={"identifier": f"{SYS}|nomatch{w.run}"}, json=resource)
    assert r.status_code == 403
    assert (await w.as_("b", "GET", f"/Patient/{w.ids['pB2']}")).json()["meta"]["versionId"] == "1"


async def test_conditional_delete_and_patch_do_not_reach_hidden(world: World) -> None:
    w = world
    code = f"{SYS}|{w.ids['shared']}"
    r = await w.as_("a", "DELETE", "/Observation", params={"code": f"{SYS}|x{w.run}", "status": "final"})
    assert r.status_code == 204  # matched A's oA2 only (B's oBx has the same code)
    assert (await w.as_("b", "GET", f"/Observation/{w.ids['oBx']}")).status_code == 200
    patch = [{"op": "replace", "path": "/status", "value": "cancelled"}]
    r = await w.as_("a", "PATCH", "/Observation", params={"code": f"{SYS}|del{w.run}"}, json=patch,
                    headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 404
    r = await w.as_("a", "PATCH", "/Observation", params={"code": f"{SYS}|{w.ids['has']}"}, json=patch,
                    headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 404 and w.ids["oBa"] not in r.text
    r = await w.as_("b", "GET", "/Observation", params={"code": code, "status": "final", "_total": "accurate"})
    assert r.json()["total"] == 2  # oB1, oB2 untouched (oB0 is amended)


# --- plain writes ---------------------------------------------------------------------------------------


async def test_update_delete_patch_of_others_resource_is_403_and_unchanged(world: World) -> None:
    w = world
    oid = w.ids["oB1"]
    body = (await w.as_("b", "GET", f"/Observation/{oid}")).json()
    changed = {**body, "status": "cancelled"}
    for headers in ({}, {"If-Match": 'W/"7"'}):
        r = await w.as_("a", "PUT", f"/Observation/{oid}", json=changed, headers=headers)
        assert r.status_code == 403, r.text
        assert "version" not in diagnostics(r)
    r = await w.as_("a", "PUT", f"/Observation/{oid}", json=body)  # same content: still 403, no 200
    assert r.status_code == 403
    assert (await w.as_("a", "DELETE", f"/Observation/{oid}")).status_code == 403
    assert (await w.as_("a", "DELETE", f"/Observation/{oid}", headers={"If-Match": 'W/"9"'})).status_code == 403
    probe = [{"op": "test", "path": "/status", "value": "final"}]
    r = await w.as_("a", "PATCH", f"/Observation/{oid}", json=probe,
                    headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 403 and "test" not in diagnostics(r).lower()
    after = (await w.as_("b", "GET", f"/Observation/{oid}")).json()
    assert after == body
    assert (await w.as_("a", "DELETE", f"/Observation/{w.ids['oBdel']}")).status_code == 204  # as if missing
    patch = [{"op": "replace", "path": "/status", "value": "cancelled"}]
    for who, status in (("a", 404), ("b", 410)):  # a hidden deletion is not there at all; B's own is gone
        r = await w.as_(who, "PATCH", f"/Observation/{w.ids['oBdel']}", json=patch,
                        headers={"Content-Type": "application/json-patch+json"})
        assert r.status_code == status


async def test_create_is_stamped(world: World) -> None:
    w = world
    forged = {"resourceType": "Patient", "meta": {"source": "http://evil/", "tag": [
        {"system": SOURCE_TAG_SYSTEM, "code": w.inst_b}, {"system": "http://other", "code": "keep"}]}}
    r = await w.as_("a", "POST", "/Patient", json=forged)
    assert r.status_code == 201, r.text
    meta = r.json()["meta"]
    assert meta["source"] == SOURCE_URI_PREFIX + w.inst_a
    assert [t for t in meta["tag"] if t["system"] == SOURCE_TAG_SYSTEM] == [
        {"system": SOURCE_TAG_SYSTEM, "code": w.inst_a}]
    assert {"system": "http://other", "code": "keep"} in meta["tag"]
    new_id = r.json()["id"]
    r = await w.as_("a", "GET", "/Patient", params={"_tag": f"{SOURCE_TAG_SYSTEM}|{w.inst_a}", "_id": new_id})
    assert ids_of(r.json()) == [new_id]  # the tag is indexed
    assert (await w.as_("b", "GET", f"/Patient/{new_id}")).status_code == 404
    # an update by A keeps A's stamp even when the body drops it
    body = r.json()["entry"][0]["resource"]
    body.pop("meta")
    body["active"] = True
    r = await w.as_("a", "PUT", f"/Patient/{new_id}", json=body)
    assert r.status_code == 200 and r.json()["meta"]["source"] == SOURCE_URI_PREFIX + w.inst_a
    patch = [{"op": "remove", "path": "/meta/tag"}]
    r = await w.as_("a", "PATCH", f"/Patient/{new_id}", json=patch,
                    headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 200, r.text
    assert {"system": SOURCE_TAG_SYSTEM, "code": w.inst_a} in r.json()["meta"]["tag"]


async def test_transaction_posts_are_stamped(world: World) -> None:
    w = world
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:p", "request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient"}},
        {"request": {"method": "POST", "url": "Observation"},
         "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "t"},
                      "subject": {"reference": "urn:uuid:p"}}}]}
    r = await w.as_("a", "POST", "/", json=bundle, headers={"Prefer": "return=representation"})
    assert r.status_code == 200, r.text
    for entry in r.json()["entry"]:
        assert entry["resource"]["meta"]["source"] == SOURCE_URI_PREFIX + w.inst_a
        rid = entry["resource"]["id"]
        kind = entry["resource"]["resourceType"]
        found = await w.as_("a", "GET", f"/{kind}", params={"_id": rid, "_tag": f"{SOURCE_TAG_SYSTEM}|{w.inst_a}"})
        assert ids_of(found.json()) == [rid]
        assert (await w.as_("b", "GET", f"/{kind}/{rid}")).status_code == 404


async def test_platform_sees_everything(world: World) -> None:
    w = world
    r = await w.as_("platform", "GET", "/Observation", params={"code": f"{SYS}|{w.ids['shared']}",
                                                               "_total": "accurate"})
    assert r.json()["total"] == 5
    assert (await w.as_("platform", "GET", f"/Observation/{w.ids['oBdel']}")).status_code == 410


# --- other roles: a district (chains: decided by the store) and a resident (a compartment) ---------


async def test_district_sees_managed_patients_only(world: World) -> None:
    w = world
    assert (await w.as_("d", "GET", f"/Patient/{w.ids['pD']}")).status_code == 200
    assert (await w.as_("d", "GET", f"/Patient/{w.ids['pD']}/_history/1")).status_code == 200
    assert (await w.as_("d", "GET", f"/Observation/{w.ids['oD']}")).status_code == 200
    hidden = await w.as_("d", "GET", f"/Patient/{w.ids['pB']}")
    missing = await w.as_("d", "GET", "/Patient/nope")
    assert hidden.status_code == missing.status_code == 404
    assert diagnostics(hidden).replace(w.ids["pB"], "X") == diagnostics(missing).replace("nope", "X")
    assert (await w.as_("d", "GET", f"/Observation/{w.ids['oB1']}")).status_code == 404
    assert (await w.as_("d", "GET", f"/Observation/{w.ids['oDdel']}")).status_code == 404  # deleted: gone from view
    seen = await history_ids(w, "d", "/Observation/_history", 2)
    assert w.ids["oD"] in seen and not set(seen) & (hidden_ids(w) - {w.ids["oD"], w.ids["oDdel"]})
    r = await w.as_("d", "GET", "/Observation", params={"code": f"{SYS}|{w.ids['shared']}", "_total": "accurate"})
    assert r.json()["total"] == 0
    r = await w.as_("d", "GET", f"/Patient/{w.ids['pD']}/$everything")
    assert set(ids_of(r.json())) >= {w.ids["pD"], w.ids["oD"]}
    assert (await w.as_("d", "PUT", f"/Patient/{w.ids['pD']}", json={"resourceType": "Patient",
                                                                    "id": w.ids["pD"]})).status_code == 403


async def test_resident_sees_own_record_only(world: World) -> None:
    w = world
    assert (await w.as_("r", "GET", f"/Patient/{w.ids['pA']}")).status_code == 200
    assert (await w.as_("r", "GET", f"/Observation/{w.ids['oBa']}")).status_code == 200  # his, whoever wrote it
    assert (await w.as_("r", "GET", f"/Observation/{w.ids['oBx']}")).status_code == 404  # another's record
    assert (await w.as_("r", "GET", f"/Patient/{w.ids['pB']}")).status_code == 404
    r = await w.as_("r", "GET", "/Observation", params={"_total": "accurate", "code": f"{SYS}|{w.ids['shared']}"})
    assert sorted(ids_of(r.json())) == sorted([w.ids["oA0"], w.ids["oA1"]])
    seen = await history_ids(w, "r", "/_history", 5)
    assert w.ids["oBa"] in seen and w.ids["pA"] in seen
    assert not set(seen) & {w.ids["pB"], w.ids["oB1"], w.ids["oA2"]}


# --- authorization off ------------------------------------------------------------------------------------


async def test_open_mode_unchanged(world: World, store: Store) -> None:
    """No ``app.state.auth``: everything visible and writable, nothing stamped (as before)."""
    w = world
    async with make_client(store) as client:
        r = await client.get(f"/Observation/{w.ids['oB1']}")
        assert r.status_code == 200
        r = await client.get("/Observation", params={"code": f"{SYS}|{w.ids['shared']}", "_total": "accurate"})
        assert r.json()["total"] == 5
        r = await client.get(f"/Observation/{w.ids['oBdel']}")
        assert r.status_code == 410
        r = await client.post("/Patient", json={"resourceType": "Patient", "meta": {"source": "http://mine/"}})
        assert r.status_code == 201 and r.json()["meta"]["source"] == "http://mine/"
        assert "tag" not in r.json()["meta"]
        r = await client.get(f"/Patient/{w.ids['pB']}/Observation")
        assert r.status_code == 200
        r = await client.get("/Patient/never-there/Observation")
        assert r.status_code == 200 and ids_of(r.json()) == []  # an unknown owner's compartment is empty


async def test_open_principal_through_auth_is_open(store: Store) -> None:
    """An auth service answering OPEN (authorization off) gives the open grant: nothing hidden."""
    app = create_app(Settings(base_url=BASE, log_requests=False), store=store)

    class Open:
        async def principal(self, request: Request) -> Principal:
            return OPEN

    app.state.auth = Open()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE) as c:
        r = await c.post("/Patient", json={"resourceType": "Patient"})
        assert r.status_code == 201 and "source" not in r.json().get("meta", {})


pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("path", ["/Observation/_history", "/_history"])
async def test_history_scan_limit_pages_lose_nothing(world: World, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page that stops scanning early (many hidden versions) is shorter and continues where it
    stopped: following every link gives the same entries as large pages, none twice, and no cursor
    names a hidden resource."""
    w = world
    full = await history_ids(w, "a", path, 1000)
    from server.interactions import history

    monkeypatch.setattr(history, "SCAN_LIMIT", 1)
    monkeypatch.setattr(history, "SCAN_BATCH", 1)
    for count in (1, 2):
        stops: list[int] = []
        assert await history_ids(w, "a", path, count, stops) == full
        assert stops and min(stops) < count  # pages did stop early, some shorter

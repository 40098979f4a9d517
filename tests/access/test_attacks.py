"""Attacks on the access policy beyond the leak tests (issue 13 §3), on both stores: each test is
one way a caller tried to see or change what it may not, found while attacking the server from
outside; it stays as a regression test with the fix it came with.

Institution B writes what institution A must neither see nor change; the principals come from a
fake auth service (``Authorization: Bearer <name>``) as in :mod:`tests.access.test_leaks`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from server.access.principal import SOURCE_TAG_SYSTEM, Principal
from server.app import create_app
from server.settings import Settings
from server.stores.base import Store
from tests.access.test_leaks import FakeAuth, World, ids_of, institution
from tests.conftest import BASE, unique

pytestmark = pytest.mark.asyncio

SYS = "http://example.org/ids"
SEARCH_PARAMETER = {"resourceType": "SearchParameter", "url": "http://example.org/sp/tag-override", "name": "x",
                    "status": "active", "code": "xtag", "base": ["Patient"], "type": "token",
                    "expression": "Patient.gender", "description": "an attempt to redefine what the policy compiles"}


@pytest_asyncio.fixture(scope="module")
async def world(store: Store) -> AsyncIterator[World]:
    run = unique("at").replace("-", "")
    app = create_app(Settings(base_url=BASE, log_requests=False), store=store)
    inst_a, inst_b = f"A{run}", f"B{run}"
    principals = {"a": institution("a", inst_a), "b": institution("b", inst_b),
                  "p": Principal("p", "client", "platform", f"P{run}", ("system/*.*",), client_id="p"),
                  # an external issuer's institution claim with search syntax in it (a comma is an OR)
                  "comma": institution("comma", f"Z{run},{inst_b}"),
                  "escaped": institution("escaped", f"Z{run}%2C{inst_b}")}
    app.state.auth = FakeAuth(principals)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE)
    w = World(client, run)
    await w.create("b", {"resourceType": "Organization", "identifier": [{"value": f"orgB{run}"}],
                         "name": f"OrgB{run}"}, "orgB")
    await w.create("b", {"resourceType": "Patient", "identifier": [{"system": SYS, "value": f"pb{run}"}],
                         "managingOrganization": {"reference": f"Organization/{w.ids['orgB']}"}}, "pB")
    await w.create("a", {"resourceType": "Patient", "identifier": [{"system": SYS, "value": f"pa{run}"}]}, "pA")
    await w.create("b", obs(w.ids["pB"], "b"), "oB")
    await w.create("b", obs(w.ids["pB"], "b"), "oBdel")
    await w.create("a", obs(w.ids["pB"], "a"), "oAonB")  # A's observation of B's (hidden) patient
    r = await w.as_("b", "DELETE", f"/Observation/{w.ids['oBdel']}")
    assert r.status_code == 204
    yield w
    await client.aclose()


def obs(subject: str, text: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": text},
            "subject": {"reference": f"Patient/{subject}"}}


# --- writes -------------------------------------------------------------------------------------------


async def test_put_over_another_institutions_deleted_resource_is_refused(world: World) -> None:
    """Update-as-create on the id of B's deleted resource took it over: A's version 3 on top of B's
    history (its ETag telling that the id had two versions), and B could then neither read its
    history nor restore its resource. It is B's id: 403 as for B's live resources, nothing written."""
    w = world
    oid = w.ids["oBdel"]
    squat = {"resourceType": "Observation", "id": oid, "status": "final", "code": {"text": "squat"}}
    r = await w.as_("a", "PUT", f"/Observation/{oid}", json=squat)
    assert r.status_code == 403, r.text
    assert "etag" not in r.headers and "location" not in r.headers
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "PUT", "url": f"Observation/{oid}"}, "resource": squat}]}
    assert (await w.as_("a", "POST", "/", json=bundle)).status_code == 403
    history = await w.as_("b", "GET", f"/Observation/{oid}/_history")
    assert history.status_code == 200 and len(history.json()["entry"]) == 2  # B's two versions, nothing more
    back = {**squat, "code": {"text": "restored"}}
    r = await w.as_("b", "PUT", f"/Observation/{oid}", json=back)  # B re-creates its own
    assert r.status_code == 201, r.text
    assert r.json()["meta"]["versionId"] == "3"


async def test_delete_then_recreate_own_resource(world: World) -> None:
    w = world
    oid = await w.create("a", obs(w.ids["pA"], "mine"), "oAre")
    assert (await w.as_("a", "DELETE", f"/Observation/{oid}")).status_code == 204
    r = await w.as_("a", "PUT", f"/Observation/{oid}", json={**obs(w.ids["pA"], "again"), "id": oid})
    assert r.status_code == 201 and r.json()["meta"]["versionId"] == "3"
    assert (await w.as_("b", "GET", f"/Observation/{oid}")).status_code == 404


async def test_definitional_and_audit_types_are_written_by_the_platform_only(world: World) -> None:
    """A SearchParameter an institution could write would change how the policy's own criteria
    compile; AuditEvents and CodeSystems are the platform's too: 403, also inside a transaction."""
    w = world
    for body in (SEARCH_PARAMETER, {"resourceType": "AuditEvent"},
                 {"resourceType": "CodeSystem", "status": "active", "content": "complete"}):
        r = await w.as_("a", "POST", f"/{body['resourceType']}", json=body)
        assert r.status_code == 403, r.text
        tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "POST", "url": body["resourceType"]}, "resource": body}]}
        assert (await w.as_("a", "POST", "/", json=tx)).status_code == 403
    r = await w.as_("a", "GET", "/SearchParameter", params={"url": SEARCH_PARAMETER["url"], "_total": "accurate"})
    assert r.json()["total"] == 0


async def test_forged_source_in_patch_is_restamped(world: World) -> None:
    w = world
    pid = w.ids["pA"]
    patch = [{"op": "add", "path": "/meta/tag", "value": [{"system": SOURCE_TAG_SYSTEM, "code": w.inst_b}]},
             {"op": "add", "path": "/meta/source", "value": f"http://yidang.org/fhir/institution/{w.inst_b}"}]
    r = await w.as_("a", "PATCH", f"/Patient/{pid}", json=patch,
                    headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 200, r.text
    meta = r.json()["meta"]
    assert [t["code"] for t in meta["tag"] if t["system"] == SOURCE_TAG_SYSTEM] == [w.inst_a]
    assert meta["source"].endswith(w.inst_a)
    assert (await w.as_("b", "GET", f"/Patient/{pid}")).status_code == 404


# --- the principal's institution as search syntax ------------------------------------------------------


@pytest.mark.parametrize("who", ["comma", "escaped"])
async def test_institution_with_search_syntax_sees_only_its_own(world: World, who: str) -> None:
    """The institution is compiled into the policy's ``_tag`` criteria; an institution claim with a
    comma (an external issuer's, which nothing checks) made it ``…|Z OR B``: B's records."""
    w = world
    assert (await w.as_(who, "GET", f"/Patient/{w.ids['pB']}")).status_code == 404
    r = await w.as_(who, "GET", "/Observation", params={"_total": "accurate"})
    assert r.status_code == 200 and r.json()["total"] == 0
    r = await w.as_(who, "POST", "/Patient", json={"resourceType": "Patient"})
    assert r.status_code == 201, r.text
    created = r.json()["id"]
    assert (await w.as_(who, "GET", f"/Patient/{created}")).status_code == 200  # what it wrote, it sees
    assert (await w.as_("b", "GET", f"/Patient/{created}")).status_code == 404


# --- leak paths the leak tests do not walk ---------------------------------------------------------------


async def test_chain_through_a_visible_resource_to_a_hidden_one(world: World) -> None:
    w = world
    for name in ("subject.organization.name", "subject:Patient.organization:Organization.name"):
        r = await w.as_("a", "GET", "/Observation", params={name: f"OrgB{w.run}", "_total": "accurate"})
        assert r.status_code == 200 and r.json()["total"] == 0, name
    r = await w.as_("a", "GET", "/Organization", params={
        "_has:Patient:organization:_has:Observation:subject:status": "final", "_id": w.ids["orgB"]})
    assert ids_of(r.json()) == []  # two _has over hidden sources


async def test_includes_by_wildcard_skip_hidden_targets(world: World) -> None:
    w = world
    for include in ("*", "Observation:*", "Observation:subject"):
        for name in ("_include", "_include:iterate"):
            r = await w.as_("a", "GET", "/Observation", params={"_id": w.ids["oAonB"], name: include})
            assert r.status_code == 200 and ids_of(r.json()) == [w.ids["oAonB"]], (name, include)
    r = await w.as_("a", "GET", "/Patient", params={"_id": w.ids["pA"], "_revinclude:iterate": "Observation:subject",
                                                    "_include:iterate": "Observation:subject"})
    found = ids_of(r.json())
    assert w.ids["pA"] in found and not set(found) & {w.ids["pB"], w.ids["oB"], w.ids["oBdel"]}


async def test_counts_and_estimates_of_hidden_are_zero(world: World) -> None:
    w = world
    criteria = {"identifier": f"{SYS}|pb{w.run}"}
    for extra in ({"_total": "estimate"}, {"_count": "0"}, {"_summary": "count"}):
        r = await w.as_("a", "GET", "/Patient", params={**criteria, **extra})
        assert r.status_code == 200 and r.json()["total"] == 0, extra
    r = await w.as_("a", "GET", "/", params={"_type": "Patient,AuditEvent", **criteria, "_total": "accurate"})
    assert r.status_code == 200 and w.ids["pB"] not in r.text


async def test_if_none_exist_on_hidden_creates(world: World) -> None:
    w = world
    r = await w.as_("a", "POST", "/Patient", json={"resourceType": "Patient"},
                    headers={"If-None-Exist": f"identifier={SYS}|pb{w.run}", "Prefer": "return=representation"})
    assert r.status_code == 201 and w.ids["pB"] not in r.text and w.ids["pB"] not in r.headers["location"]


async def test_old_versions_of_a_resource_now_hidden_are_not_found(world: World) -> None:
    """A wrote Patient/P; the platform then gave it to B (its source tag). A's read and history
    answered 404, but the vread of A's own version 1 still answered 200: a hidden resource must look
    missing on every path, its old versions too."""
    w = world
    pid = await w.create("a", {"resourceType": "Patient", "identifier": [{"system": SYS, "value": unique("mv")}]},
                         "moved")
    assert (await w.as_("a", "GET", f"/Patient/{pid}/_history/1")).status_code == 200
    current = (await w.as_("p", "GET", f"/Patient/{pid}")).json()
    current["meta"] = {"tag": [{"system": SOURCE_TAG_SYSTEM, "code": w.inst_b}]}
    assert (await w.as_("p", "PUT", f"/Patient/{pid}", json=current)).status_code == 200
    for path in (f"/Patient/{pid}", f"/Patient/{pid}/_history", f"/Patient/{pid}/_history/1",
                 f"/Patient/{pid}/_history/2"):
        assert (await w.as_("a", "GET", path)).status_code == 404, path
    assert (await w.as_("b", "GET", f"/Patient/{pid}/_history/2")).status_code == 200

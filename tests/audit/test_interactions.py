"""Every interaction writes exactly one AuditEvent, of the BALP shape, on both stores; the chain
verifies; AuditEvents are append-only through the API; failed authentication is audited.

Each test counts the stored AuditEvents before and after one request (the writer drained), so a
missing or a doubled event shows as a wrong count.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.requests import Request

from server.access.principal import Principal
from server.app import create_app
from server.audit import ledger
from server.audit.chain import link_of
from server.audit.keys import load_key
from server.audit.log import AuditLog, spool_dir
from server.errors import Unauthenticated
from server.fhir.json import load_stored
from server.settings import Settings
from server.stores.base import Store
from tests.conftest import BASE, unique

USER = Principal("dr-wang", "user", "platform", "12440000455858436X", ("user/*.*",), purpose="TREAT",
                 client_id="emr-app")


class FakeAuth:
    """``Bearer user`` acts as :data:`USER`; no header acts as the backend client ``platform-svc``;
    anything else is refused (401)."""

    async def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        if header == "Bearer user":
            return USER
        if not header:
            return Principal("platform-svc", "client", "platform", "12440000455858436X", ("system/*.*",),
                             client_id="platform-svc")
        raise Unauthenticated("The bearer token is not valid")


@dataclass
class Audited:
    client: httpx.AsyncClient
    audit: AuditLog
    store: Store
    settings: Settings

    async def events(self) -> list[dict[str, Any]]:
        assert await self.audit.drain()
        return [load_stored(row.body) async for row in ledger.events(self.store) if row.body]

    async def one(self, method: str, url: str, **kwargs: Any) -> tuple[httpx.Response, dict[str, Any]]:
        """Send one request; assert it added exactly one event, and return both."""
        before = len(await self.events())
        response = await self.client.request(method, url, **kwargs)
        after = await self.events()
        assert len(after) == before + 1, f"{method} {url}: {len(after) - before} AuditEvents"
        return response, after[-1]


@pytest_asyncio.fixture(scope="module")
async def audited(store: Store, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Audited]:
    settings = Settings(base_url=BASE, log_requests=False, audit=True, data_dir=tmp_path_factory.mktemp("audit"),
                        audit_batch_interval=0.002)
    app = create_app(settings, store=store)
    app.state.auth = FakeAuth()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE) as c:
        yield Audited(c, app.state.audit, store, settings)
    await app.state.audit.stop()


def codes(event: dict[str, Any]) -> tuple[str, str, str]:
    return event["subtype"][0]["code"], event["action"], event["outcome"]


def references(event: dict[str, Any], role: str) -> list[str]:
    return [e["what"]["reference"] for e in event.get("entity", []) if e.get("role", {}).get("code") == role
            and "what" in e]


async def test_every_interaction_writes_one_event(audited: Audited) -> None:
    family = unique("audit")
    r, event = await audited.one("POST", "/Patient", json={"resourceType": "Patient", "name": [{"family": family}]})
    assert r.status_code == 201 and codes(event) == ("create", "C", "0")
    pid = r.json()["id"]
    assert references(event, "1") == [f"Patient/{pid}"]

    r, event = await audited.one("POST", "/Observation", json={
        "resourceType": "Observation", "status": "final", "code": {"text": "bp"},
        "subject": {"reference": f"Patient/{pid}"}})
    oid = r.json()["id"]
    assert codes(event) == ("create", "C", "0")
    assert references(event, "1") == [f"Patient/{pid}"]
    assert references(event, "4") == [f"Observation/{oid}/_history/1"]

    r, event = await audited.one("GET", f"/Observation/{oid}")
    assert r.status_code == 200 and codes(event) == ("read", "R", "0")
    assert references(event, "1") == [f"Patient/{pid}"]

    r, event = await audited.one("GET", f"/Observation/{oid}/_history/1")
    assert codes(event) == ("vread", "R", "0")

    r, event = await audited.one("GET", f"/Observation?subject=Patient/{pid}&status=final")
    assert r.status_code == 200 and codes(event) == ("search-type", "E", "0")
    query = [e for e in event["entity"] if e["role"]["code"] == "24"]
    assert base64.b64decode(query[0]["query"]).decode() == f"subject=Patient/{pid}&status=final"
    assert references(event, "1") == [f"Patient/{pid}"]

    r, event = await audited.one("GET", f"/Patient/{pid}/_history")
    assert codes(event) == ("history-instance", "R", "0")

    r, event = await audited.one("PUT", f"/Observation/{oid}", json={
        "resourceType": "Observation", "id": oid, "status": "amended", "code": {"text": "bp"},
        "subject": {"reference": f"Patient/{pid}"}})
    assert r.status_code == 200 and codes(event) == ("update", "U", "0")
    assert references(event, "4") == [f"Observation/{oid}/_history/2"]

    r, event = await audited.one("PATCH", f"/Observation/{oid}", content=b'[{"op": "replace", "path": "/status", '
                                 b'"value": "final"}]', headers={"content-type": "application/json-patch+json"})
    assert r.status_code == 200 and codes(event) == ("patch", "U", "0")

    r, event = await audited.one("POST", "/Patient/$validate", json={"resourceType": "Patient"})
    assert codes(event) == ("operation", "E", "0")
    assert event["subtype"][1]["code"] == "$validate"

    r, event = await audited.one("DELETE", f"/Observation/{oid}")
    assert r.status_code in (200, 204) and codes(event) == ("delete", "D", "0")

    r, event = await audited.one("GET", f"/Observation/{oid}")
    assert r.status_code == 410 and codes(event) == ("read", "R", "4")
    assert event["outcomeDesc"]

    r, event = await audited.one("GET", "/Observation/nope-" + unique())
    assert r.status_code == 404 and event["outcome"] == "4"


async def test_bundles_write_one_event_per_entry_and_one_naming_them_all(audited: Audited) -> None:
    """Each Bundle gets one event (subtype transaction or batch) whose entities name what every entry
    wrote, and each entry its own event (create, read …) as if it had been sent alone."""
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient"},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                      "subject": {"reference": "urn:uuid:p"}}, "request": {"method": "POST", "url": "Observation"}}]}
    before = len(await audited.events())
    r = await audited.client.post("/", json=bundle)
    assert r.status_code == 200
    added = (await audited.events())[before:]
    assert len(added) == 3, [codes(e) for e in added]
    whole = next(e for e in added if codes(e)[0] == "transaction")
    assert codes(whole) == ("transaction", "E", "0") and len(references(whole, "4")) == 2
    assert sorted(codes(e) for e in added if e is not whole) == [("create", "C", "0"), ("create", "C", "0")]
    patient = r.json()["entry"][0]["response"]["location"].split("/_history")[0]
    bundle["type"] = "batch"
    bundle["entry"] = [{"request": {"method": "GET", "url": patient}},
                       {"request": {"method": "GET", "url": "Patient/not-there"}}]
    before = len(await audited.events())
    r = await audited.client.post("/", json=bundle)
    added = (await audited.events())[before:]
    assert sorted(codes(e) for e in added) == [("batch", "E", "0"), ("read", "R", "0"), ("read", "R", "4")]


async def test_agents_name_client_user_institution_address_and_purpose(audited: Audited) -> None:
    r, event = await audited.one("GET", "/Patient?name=x", headers={"authorization": "Bearer user"})
    assert r.status_code == 200
    agents = event["agent"]
    client = next(a for a in agents if a["type"]["coding"][0]["code"] == "110153")
    assert client["who"]["identifier"]["value"] == "emr-app" and client["requestor"] is False
    assert client["network"]["address"]
    user = next(a for a in agents if a["type"]["coding"][0]["code"] == "IRCP")
    assert user["who"]["identifier"]["value"] == "dr-wang" and user["requestor"] is True
    assert user["purposeOfUse"][0]["coding"][0]["code"] == "TREAT"
    assert user["role"][0]["coding"][0]["code"] == "platform"
    org = next(a for a in agents if a["who"].get("type") == "Organization")
    assert org["who"]["identifier"]["value"] == "12440000455858436X"
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    assert event["source"]["type"][0]["code"] == "4"
    assert event["type"]["code"] == "rest"
    found = await audited.client.get("/AuditEvent?agent-name=dr-wang&purpose=TREAT&outcome=0")
    assert found.status_code == 200 and len(found.json().get("entry", [])) >= 1


async def test_failed_authentication_is_audited(audited: Audited) -> None:
    r, event = await audited.one("GET", "/Patient", headers={"authorization": "Bearer forged"})
    assert r.status_code == 401
    assert event["type"]["code"] == "110114" and event["subtype"][0]["code"] == "110122"
    assert event["outcome"] == "4" and "not valid" in event["outcomeDesc"]


async def test_authentication_api_for_the_token_endpoints(audited: Audited) -> None:
    before = len(await audited.events())
    await audited.audit.authentication(success=True, principal=USER, address="10.0.0.7")
    await audited.audit.authentication(success=False, subject="intruder", address="10.0.0.8",
                                       description="client assertion signature invalid")
    await audited.audit.authentication(success=True, principal=USER, logout=True)
    events = (await audited.events())[before:]
    assert [(e["subtype"][0]["code"], e["outcome"]) for e in events] == [
        ("110122", "0"), ("110122", "4"), ("110123", "0")]
    assert events[1]["agent"][0]["who"]["identifier"]["value"] == "intruder"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_audit_events_are_append_only(audited: Audited, method: str) -> None:
    events = await audited.events()
    target = events[0]["id"]
    url = "/AuditEvent" if method == "POST" else f"/AuditEvent/{target}"
    body = {"json": {**events[0], "outcome": "0"}} if method in ("POST", "PUT") else \
        {"content": b"[]", "headers": {"content-type": "application/json-patch+json"}} if method == "PATCH" else {}
    r, event = await audited.one(method, url, **body)
    assert r.status_code == 405
    assert r.json()["resourceType"] == "OperationOutcome" and "append-only" in r.text
    assert event["outcome"] == "4"
    assert (await audited.events())[0] == events[0]


@pytest.mark.parametrize("kind", ["transaction", "batch"])
async def test_bundle_entries_cannot_write_audit_events(audited: Audited, kind: str) -> None:
    """The Bundle path is held to the same rule as a direct request (the platform's token too)."""
    events = await audited.events()
    forged = {**events[0], "outcome": "0"}
    forged.pop("id", None)
    bundle = {"resourceType": "Bundle", "type": kind, "entry": [
        {"resource": forged, "request": {"method": "POST", "url": "AuditEvent"}},
        {"request": {"method": "DELETE", "url": f"AuditEvent/{events[0]['id']}"}}]}
    r = await audited.client.post("/", json=bundle)
    if kind == "transaction":
        assert r.status_code == 405, r.text
    else:
        assert [e["response"]["status"][:3] for e in r.json()["entry"]] == ["405", "405"]
    after = await audited.events()
    assert after[0] == events[0]
    assert not [e for e in after if e.get("outcome") == "0" and e.get("id") not in {x["id"] for x in events}
                and e["subtype"][0]["code"] == "create" and "AuditEvent" in str(e.get("entity"))]


async def test_the_chain_verifies(audited: Audited) -> None:
    await audited.events()
    report = await ledger.verify(audited.store, load_key(spool_dir(audited.settings)))
    assert report.ok, report.broken
    assert report.count == len(await audited.events())
    sequences = [link_of(e).sequence for e in await audited.events()]  # type: ignore[union-attr]
    assert sequences == list(range(1, len(sequences) + 1))


async def test_audit_off_writes_nothing(store: Store, tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = Settings(base_url=BASE, log_requests=False, data_dir=tmp_path_factory.mktemp("off"))
    app = create_app(settings, store=store)
    assert app.state.audit is None and not app.state.services.hooks.audit_sinks
    before = [row.id async for row in ledger.events(store)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE) as c:
        assert (await c.get("/Patient")).status_code == 200
    assert [row.id async for row in ledger.events(store)] == before


async def test_the_fast_indexer_matches_the_generic_one(audited: Audited) -> None:
    """The writer indexes our AuditEvents without FHIRPath (:mod:`server.audit.index`): exactly the
    entries the generic indexer (and so ``$reindex``) computes, for every event written above."""
    from server.audit.index import AuditIndexer
    from server.search.index import Indexer
    from server.search.registry import SearchRegistry

    registry = SearchRegistry()
    registry.add(ledger.PURPOSE)
    generic = Indexer(registry, base_url=BASE)
    fast = AuditIndexer(generic)
    events = await audited.events()
    assert len(events) > 20
    for event in events:
        assert set(fast.entries(event)) == set(generic.entries(event)), event["id"]
        assert set(fast.entries(event)) == set(generic.entries(event))  # from the cache too
    assert set(fast.entries({**events[0], "language": "zh"})) == set(generic.entries({**events[0], "language": "zh"}))

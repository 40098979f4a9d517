"""Consent honoured by the policy decision point (issue 14 §1), through HTTP with real tokens, on
both stores: a district commission reads its residents' records, which another institution (a
hospital) wrote; the residents' patient-privacy Consents permit or deny it.

Covered: permit, deny (403 naming the Consent, audited), nested provisions with security labels,
an expired period, purpose mismatch, actor by Organization and by role, break-glass overriding a
deny, opt-out vs opt-in defaults, searches leaving out the denied patients' resources with correct
totals, a resident creating and revoking his own Consent (the district's reads follow), a resident
refused another patient's Consent, and the purpose of use from header or token claim.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from server.consent.evaluate import ROLE_SYSTEM
from server.stores.base import Store
from tests.auth.conftest import AuthApp, get_token, make_auth_app, register
from tests.conftest import unique

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
SENSITIVE = ("http://example.org/fhir/sensitivity", "hiv")
LOINC = "http://loinc.org"


@dataclass
class World:
    apps: dict[str, AuthApp]
    clients: dict[str, httpx.AsyncClient]
    tokens: dict[str, str]
    run: str
    district: str
    org_d: str
    hospital: str
    ids: dict[str, str] = field(default_factory=dict)

    async def call(self, who: str, method: str, url: str, *, app: str = "opt-out", purpose: str | None = None,
                   **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}", **kw.pop("headers", {})}
        if purpose:
            headers["X-Purpose-Of-Use"] = purpose
        return await self.clients[app].request(method, url, headers=headers, **kw)

    async def create(self, who: str, resource: dict[str, Any]) -> str:
        r = await self.call(who, "POST", f"/{resource['resourceType']}", json=resource)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def resident(self, labelled: int = 0, plain: int = 2) -> tuple[str, list[str], list[str]]:
        """A Patient managed by the district, with Observations the hospital wrote: ``plain`` without
        and ``labelled`` with the sensitive security label."""
        patient = await self.create("hospital", {"resourceType": "Patient", "name": [{"family": unique("r")}],
                                                 "managingOrganization": {"reference": f"Organization/{self.org_d}"}})
        plain_ids: list[str] = []
        labelled_ids: list[str] = []
        for i in range(plain + labelled):
            obs: dict[str, Any] = {"resourceType": "Observation", "status": "final",
                                   "code": {"coding": [{"system": LOINC, "code": "2345-7"}]},
                                   "subject": {"reference": f"Patient/{patient}"}}
            if i >= plain:
                obs["meta"] = {"security": [{"system": SENSITIVE[0], "code": SENSITIVE[1]}]}
            (plain_ids if i < plain else labelled_ids).append(await self.create("hospital", obs))
        return patient, plain_ids, labelled_ids


def consent(patient: str, provision: dict[str, Any], status: str = "active") -> dict[str, Any]:
    return {"resourceType": "Consent", "status": status,
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{patient}"},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                       "code": "OPTOUT"}]},
            "provision": provision}


def org_actor(org: str) -> dict[str, Any]:
    return {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                 "code": "IRCP"}]}, "reference": {"reference": f"Organization/{org}"}}


def role_actor(role: str) -> dict[str, Any]:
    return {"role": {"coding": [{"system": ROLE_SYSTEM, "code": role}]}, "reference": {"display": role}}


def purpose(code: str) -> list[dict[str, str]]:
    return [{"system": ACT_REASON, "code": code}]


@pytest_asyncio.fixture(scope="module")
async def world(store: Store, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    keys: Path = tmp_path_factory.mktemp("keys")
    apps = {"opt-out": make_auth_app(store, keys),
            "opt-in": make_auth_app(store, keys, consent_default="opt-in"),
            "glass": make_auth_app(store, keys, consent_break_glass_roles=["institution", "district"]),
            "glass-unaudited": make_auth_app(store, keys, consent_break_glass_roles=["district"], audit=False)}
    clients = {name: app.client() for name, app in apps.items()}
    run = unique("cs").replace("-", "")
    district, hospital = f"D{run}", f"H{run}"
    platform = await register(store, role="platform", scope="system/*.cruds", institution=f"P{run}")
    hosp = await register(store, role="institution", scope="system/*.cruds", institution=hospital)
    dist = await register(store, role="district", scope="system/*.rs", institution=district)
    http = clients["opt-out"]
    tokens = {"platform": await get_token(http, platform), "hospital": await get_token(http, hosp),
              "district": await get_token(http, dist)}
    w = World(apps, clients, tokens, run, district, "", hospital)
    w.org_d = await w.create("platform", {"resourceType": "Organization", "identifier": [{"value": district}],
                                          "name": "区卫健委"})
    yield w
    for client in clients.values():
        await client.aclose()


async def status(w: World, url: str, **kw: Any) -> int:
    return (await w.call("district", "GET", url, **kw)).status_code


async def total(w: World, query: str, **kw: Any) -> int:
    r = await w.call("district", "GET", f"/Observation?{query}&_total=accurate", **kw)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body.get("entry", [])) == body["total"] or body["total"] > 20
    return int(body["total"])


async def test_deny_hides_the_patient_and_names_the_consent(world: World) -> None:
    w = world
    p1, obs1, _ = await w.resident()
    p2, obs2, _ = await w.resident()
    assert await status(w, f"/Observation/{obs1[0]}") == 200  # opt-out: no Consent, permitted
    cid = await w.create("platform", consent(p1, {"type": "deny", "actor": [org_actor(w.org_d)]}))
    r = await w.call("district", "GET", f"/Observation/{obs1[0]}")
    assert r.status_code == 403
    issue = r.json()["issue"][0]
    assert f"Consent/{cid}" in issue["diagnostics"] and "deny" not in issue["diagnostics"].split("Consent/")[1]
    assert await status(w, f"/Patient/{p1}") == 403
    assert await status(w, f"/Observation/{obs2[0]}") == 200
    both = f"subject=Patient/{p1},Patient/{p2}"
    assert await total(w, both) == len(obs2)
    ids = {e["resource"]["id"] for e in (await w.call("district", "GET", f"/Observation?{both}")).json()["entry"]}
    assert ids == set(obs2)
    assert await total(w, f"subject=Patient/{p2}") == 2
    # the hospital that holds the data is not subject to the Consent; nor is the platform
    assert (await w.call("hospital", "GET", f"/Observation/{obs1[0]}")).status_code == 200
    assert (await w.call("platform", "GET", f"/Observation/{obs1[0]}")).status_code == 200
    # a permit of another Consent does not outweigh the deny; a revoked deny no longer counts
    await w.create("platform", consent(p1, {"type": "permit"}))
    assert await status(w, f"/Observation/{obs1[0]}") == 403
    current = (await w.call("platform", "GET", f"/Consent/{cid}")).json()
    r = await w.call("platform", "PUT", f"/Consent/{cid}", json={**current, "status": "inactive"})
    assert r.status_code == 200, r.text
    assert await status(w, f"/Observation/{obs1[0]}") == 200
    assert await total(w, both) == 4


async def test_nested_provisions_with_security_labels(world: World) -> None:
    w = world
    p, plain, labelled = await w.resident(labelled=1, plain=2)
    # deny everyone; permit this district for treatment; within that, deny the sensitive data
    tree = {"type": "deny", "provision": [
        {"type": "permit", "actor": [org_actor(w.org_d)], "purpose": purpose("TREAT"), "provision": [
            {"type": "deny", "securityLabel": [{"system": SENSITIVE[0], "code": SENSITIVE[1]}]}]}]}
    cid = await w.create("platform", consent(p, tree))
    assert await status(w, f"/Observation/{plain[0]}", purpose="TREAT") == 200
    r = await w.call("district", "GET", f"/Observation/{labelled[0]}", purpose="TREAT")
    assert r.status_code == 403 and f"Consent/{cid}" in r.text
    assert await total(w, f"subject=Patient/{p}", purpose="TREAT") == 2
    assert await status(w, f"/Observation/{plain[0]}") == 403  # no purpose declared: the root deny
    assert await total(w, f"subject=Patient/{p}") == 0
    assert await status(w, f"/Observation/{plain[0]}", purpose="ETREAT") == 200  # a kind of TREAT


async def test_purpose_mismatch_period_and_actor_role(world: World) -> None:
    w = world
    p, obs, _ = await w.resident(plain=1)
    await w.create("platform", consent(p, {"type": "deny", "provision": [
        {"type": "permit", "purpose": purpose("HRESCH")}]}))
    assert await status(w, f"/Observation/{obs[0]}", purpose="TREAT") == 403
    assert await status(w, f"/Observation/{obs[0]}", purpose="HRESCH") == 200

    expired, eobs, _ = await w.resident(plain=1)
    await w.create("platform", consent(expired, {"type": "deny", "period": {"start": "2020-01-01",
                                                                              "end": "2021-12-31"}}))
    assert await status(w, f"/Observation/{eobs[0]}") == 200
    assert await total(w, f"subject=Patient/{expired}") == 1

    by_role, robs, _ = await w.resident(plain=1)
    await w.create("platform", consent(by_role, {"type": "deny", "actor": [role_actor("institution")]}))
    assert await status(w, f"/Observation/{robs[0]}") == 200  # the Consent names another role
    await w.create("platform", consent(by_role, {"type": "deny", "actor": [role_actor("district")]}))
    assert await status(w, f"/Observation/{robs[0]}") == 403
    other_org, oobs, _ = await w.resident(plain=1)
    await w.create("platform", consent(other_org, {"type": "deny", "actor": [org_actor("some-other-org")]}))
    assert await status(w, f"/Observation/{oobs[0]}") == 200


async def test_break_glass_overrides_a_deny(world: World) -> None:
    w = world
    p, obs, _ = await w.resident(plain=1)
    cid = await w.create("platform", consent(p, {"type": "deny"}))
    r = await w.call("district", "GET", f"/Observation/{obs[0]}", app="glass")
    assert r.status_code == 403 and f"Consent/{cid}" in r.text
    assert await status(w, f"/Observation/{obs[0]}", app="glass", purpose="TREAT") == 403
    assert await status(w, f"/Observation/{obs[0]}", app="glass", purpose="BTG") == 200
    assert await status(w, f"/Observation/{obs[0]}", app="glass", purpose="ETREAT") == 200
    assert await total(w, f"subject=Patient/{p}", app="glass", purpose="BTG") == 1
    # where the district may not break the glass (the default: institution clinicians only), BTG is no key
    assert await status(w, f"/Observation/{obs[0]}", purpose="BTG") == 403
    # break-glass is always audited: with the audit off it is not honoured
    assert await status(w, f"/Observation/{obs[0]}", app="glass-unaudited", purpose="BTG") == 403
    # the break-glass access is audited with its purpose
    found = await audit_events(w, f"purpose=BTG&entity=Observation/{obs[0]}")
    assert found, "no AuditEvent with purpose BTG"


async def audit_events(w: World, query: str) -> list[dict[str, Any]]:
    """AuditEvents matching ``query`` (the audit writer stores them in batches: polled briefly)."""
    deadline = time.monotonic() + 10
    while True:
        r = await w.call("platform", "GET", f"/AuditEvent?{query}")
        assert r.status_code == 200, r.text
        entries = [e["resource"] for e in r.json().get("entry", [])]
        if entries or time.monotonic() > deadline:
            return entries
        await asyncio.sleep(0.2)


async def test_a_denied_read_is_audited(world: World) -> None:
    w = world
    p, obs, _ = await w.resident(plain=1)
    cid = await w.create("platform", consent(p, {"type": "deny"}))
    assert await status(w, f"/Observation/{obs[0]}") == 403
    events = await audit_events(w, f"outcome=4&entity=Observation/{obs[0]}")
    if not events:  # the entity of a refused read may be left out: look for the outcome text
        events = [e for e in await audit_events(w, "outcome=4&_count=200&_sort=-date")
                  if f"Consent/{cid}" in e.get("outcomeDesc", "")]
    assert events and any(f"Consent/{cid}" in e.get("outcomeDesc", "") for e in events)


async def test_opt_in_default(world: World) -> None:
    w = world
    none, nobs, _ = await w.resident(plain=1)
    permitted, pobs, _ = await w.resident(plain=2)
    await w.create("platform", consent(permitted, {"type": "permit", "actor": [org_actor(w.org_d)]}))
    r = await w.call("district", "GET", f"/Observation/{nobs[0]}", app="opt-in")
    assert r.status_code == 403 and "opt-in" in r.text
    assert await status(w, f"/Observation/{pobs[0]}", app="opt-in") == 200
    both = f"subject=Patient/{none},Patient/{permitted}"
    assert await total(w, both, app="opt-in") == 2
    assert await total(w, both) == 3  # opt-out: everything
    # the district's own writes are its own data, never another institution's: no Consent needed
    assert await status(w, f"/Organization/{w.org_d}", app="opt-in") == 200


async def test_resident_creates_and_revokes_his_consent(world: World, store: Store) -> None:
    w = world
    p, obs, _ = await w.resident(plain=1)
    other, _, _ = await w.resident(plain=0)
    me = await register(store, role="resident", scope="patient/*.rs patient/Consent.cud", patient=p,
                        institution=w.hospital)
    w.tokens["me"] = await get_token(w.clients["opt-out"], me)
    r = await w.call("me", "POST", "/Consent", json=consent(p, {"type": "deny", "actor": [org_actor(w.org_d)]}))
    assert r.status_code == 201, r.text
    mine = r.json()
    assert await status(w, f"/Observation/{obs[0]}") == 403
    # never blocked by his own Consent; reads his Consents
    assert (await w.call("me", "GET", f"/Observation/{obs[0]}")).status_code == 200
    found = (await w.call("me", "GET", "/Consent?status=active")).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [mine["id"]]
    # revokes it (status inactive): the district reads again
    r = await w.call("me", "PUT", f"/Consent/{mine['id']}", json={**mine, "status": "inactive"})
    assert r.status_code == 200, r.text
    assert await status(w, f"/Observation/{obs[0]}") == 200
    # another, deleted
    r = await w.call("me", "POST", "/Consent", json=consent(p, {"type": "deny"}))
    assert r.status_code == 201
    assert await status(w, f"/Observation/{obs[0]}") == 403
    assert (await w.call("me", "DELETE", f"/Consent/{r.json()['id']}")).status_code == 204
    assert await status(w, f"/Observation/{obs[0]}") == 200
    # nothing else: another patient's Consent, moving his Consent to another patient, other types
    r = await w.call("me", "POST", "/Consent", json=consent(other, {"type": "permit"}))
    assert r.status_code == 403 and r.json()["resourceType"] == "OperationOutcome"
    r = await w.call("me", "PUT", f"/Consent/{mine['id']}", json={**mine, "patient": {
        "reference": f"Patient/{other}"}})
    assert r.status_code == 403
    r = await w.call("me", "POST", "/Observation", json={"resourceType": "Observation", "status": "final",
                                                         "code": {"text": "x"},
                                                         "subject": {"reference": f"Patient/{p}"}})
    assert r.status_code == 403
    theirs = await w.create("platform", consent(other, {"type": "deny"}))
    assert (await w.call("me", "DELETE", f"/Consent/{theirs}")).status_code in (403, 404)
    assert (await w.call("platform", "GET", f"/Consent/{theirs}")).status_code == 200


async def test_purpose_of_use_header_and_claim(world: World, store: Store) -> None:
    w = world
    client = await register(store, role="district", scope="system/*.rs", institution=w.district)
    r = await w.call("district", "GET", "/Observation?_count=1", purpose="NOT-A-CODE")
    assert r.status_code == 400 and "X-Purpose-Of-Use" in r.text
    assert (await w.call("district", "GET", "/Observation?_count=1", purpose="PUBHLTH")).status_code == 200
    p, obs, _ = await w.resident(plain=1)
    await w.create("platform", consent(p, {"type": "deny", "provision": [
        {"type": "permit", "purpose": purpose("PUBHLTH")}]}))
    app = w.apps["opt-out"]
    issued = await app.auth.tokens.issue(subject=client.id, client_id=client.id, kind="client", role="district",
                                         institution=w.district, scope="system/*.rs", patient=None, lifetime=300,
                                         audience=app.settings.base_url or "", purpose="PUBHLTH")
    w.tokens["claim"] = issued["access_token"]
    r = await w.call("claim", "GET", f"/Observation/{obs[0]}")
    assert r.status_code == 200, r.text
    assert (await w.call("claim", "GET", f"/Observation/{obs[0]}", purpose="PUBHLTH")).status_code == 200
    assert (await w.call("claim", "GET", f"/Observation/{obs[0]}", purpose="TREAT")).status_code == 403
    assert await status(w, f"/Observation/{obs[0]}") == 403

"""The cross-institution look-up (issue 15 §2) on both stores, in the world of :mod:`tests.lookup.world`:
every recognition status, the HR mark, includes and performers, newest first; another institution's
results only through the look-up (plain reads and searches still hide them); who may look up;
bad input; decisions; statistics reconciling with the audit trail; consent deny / permit / break-glass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from server.stores.base import Store
from tests.lookup.world import HEALTH_CARD, HR, ID_CARD, STATUS_EXT, World, build

STATUSES = {"recognized": "recognized", "expired": "expired", "lab-not-qualified": "lab-not-qualified",
            "imaging": "recognized", "not-in-catalogue": "not-in-catalogue", "not-applicable": "not-applicable",
            "panel": "recognized"}


@pytest_asyncio.fixture(scope="module")
async def world(store: Store, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    w = await build(store, tmp_path_factory.mktemp("lookup"))
    yield w
    await w.client.aclose()
    await w.app.state.audit.stop()


def matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def includes(bundle: dict[str, Any]) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
            if e["search"]["mode"] == "include"}


def status_of(report: dict[str, Any]) -> tuple[str, str]:
    ext = next(e for e in report["extension"] if e["url"] == STATUS_EXT)
    rule = next(e["valueString"] for e in ext["extension"] if e["url"] == "rule")
    return ext["valueCode"], rule


def by_key(w: World, bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    back = {v: k for k, v in w.ids.items()}
    return {back[r["id"]]: r for r in matches(bundle)}


async def test_import_summaries(world: World) -> None:
    catalog, quals = (dict_of(s) for s in world.import_summaries)
    assert (catalog["read"], catalog["rejected"]) == (7, 4)
    assert catalog["created"] + catalog["unchanged"] == 3
    assert (quals["read"], quals["rejected"]) == (7, 3)
    reasons = " ".join(r for s in world.import_summaries for r in rejection_reasons(s))
    for text in ("validity_days 'seven'", "category 'microscopy'", "already on line 2", "2 column(s)",
                 "unknown institution", "not a date", "not in the catalogue"):
        assert text in reasons


def dict_of(summary: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["valueInteger"] for p in summary["parameter"] if "valueInteger" in p}


def rejection_reasons(summary: dict[str, Any]) -> list[str]:
    return [part["valueString"] for p in summary["parameter"] if p["name"] == "rejection"
            for part in p["part"] if part["name"] == "reason"]


async def test_lookup_by_identifier_across_institutions(world: World) -> None:
    r = await world.lookup("h2", identifier=f"{ID_CARD}|{world.id_card}")
    assert r.status_code == 200, r.text
    bundle = r.json()
    found = by_key(world, bundle)
    assert set(found) == set(STATUSES)  # every institution's results of R1, none of R2
    for key, expected in STATUSES.items():
        code, rule = status_of(found[key])
        assert code == expected, (key, rule)
        tagged = any((t.get("system"), t.get("code")) == HR for t in found[key].get("meta", {}).get("tag", []))
        assert tagged == (expected == "recognized"), key
        assert found[key]["performer"][0]["reference"].startswith("Organization/")
    dates = [m["issued"] for m in matches(bundle)]
    assert dates == sorted(dates, reverse=True)  # newest first
    assert f"ImagingStudy/{world.ids['is-ct']}" in includes(bundle)
    assert {f"Observation/{world.ids['o-hba1c']}", f"Observation/{world.ids['o-other']}"} <= includes(bundle)
    assert {f"Organization/{world.org[k]}" for k in ("H1", "H2", "H3", "C1")} <= includes(bundle)
    assert "expired" in status_of(found["expired"])[1] or "window" in status_of(found["expired"])[1]


async def test_lookup_by_health_card_and_by_own_patient(world: World) -> None:
    by_card = await world.lookup("c1", identifier=f"{HEALTH_CARD}|{world.health_card}")
    own = await world.lookup("h3", patient=f"Patient/{world.ids['p-H3']}")
    for r in (by_card, own):
        assert r.status_code == 200, r.text
        assert set(by_key(world, r.json())) == set(STATUSES)


async def test_filters(world: World) -> None:
    ident = f"{ID_CARD}|{world.id_card}"
    r = await world.lookup("h2", identifier=ident, category="imaging")
    assert set(by_key(world, r.json())) == {"imaging"}
    r = await world.lookup("h2", identifier=ident, recognizable="true")
    assert set(by_key(world, r.json())) == {"recognized", "imaging", "panel"}
    r = await world.lookup("h2", identifier=ident, category="other")
    assert set(by_key(world, r.json())) == {"not-applicable"}
    r = await world.lookup("h2", identifier=ident, code="http://loinc.org|2345-7")
    assert set(by_key(world, r.json())) == {"recognized", "expired", "lab-not-qualified"}
    r = await world.lookup("h2", identifier=ident, _count="2")
    bundle = r.json()
    assert len(matches(bundle)) == 2
    following = next(link["url"] for link in bundle["link"] if link["relation"] == "next")
    r2 = await world.as_("h2", "GET", following.split("/fhir", 1)[1])
    assert r2.status_code == 200, r2.text
    assert not {m["id"] for m in matches(r2.json())} & {m["id"] for m in matches(bundle)}
    # as of 40 days later the 5-day-old glucose (30-day window) has expired
    from datetime import UTC, datetime, timedelta
    later = (datetime.now(UTC) + timedelta(days=40)).isoformat(timespec="seconds")
    r = await world.lookup("h2", identifier=ident, **{"as-of": later})
    assert status_of(by_key(world, r.json())["recognized"])[0] == "expired"


async def test_other_institutions_results_stay_hidden_outside_the_lookup(world: World) -> None:
    await world.lookup("h2", identifier=f"{ID_CARD}|{world.id_card}")
    r = await world.as_("h2", "GET", f"/DiagnosticReport/{world.ids['recognized']}")
    assert r.status_code == 404
    r = await world.as_("h2", "GET", "/DiagnosticReport", params={"patient": f"Patient/{world.ids['p-H1']}"})
    assert r.status_code == 200 and not r.json().get("entry")
    r = await world.as_("h2", "GET", "/DiagnosticReport", params={"_id": world.ids["lab-not-qualified"]})
    assert len(r.json().get("entry", [])) == 1  # its own


@pytest.mark.parametrize(("who", "status"), [("h2-nopurpose", 403), ("district", 403)])
async def test_who_may_look_up(world: World, who: str, status: int) -> None:
    r = await world.lookup(who, identifier=f"{ID_CARD}|{world.id_card}")
    assert r.status_code == status, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_platform_may_look_up(world: World) -> None:
    r = await world.lookup("platform", identifier=f"{ID_CARD}|{world.id_card}")
    assert r.status_code == 200 and set(by_key(world, r.json())) == set(STATUSES)


@pytest.mark.parametrize("params", [
    {"identifier": "http://example.org/unknown|123"},
    {"identifier": "no-bar"},
    {},
    {"identifier": f"{ID_CARD}|1", "category": "pathology"},
    {"identifier": f"{ID_CARD}|1", "recognizable": "maybe"},
    {"identifier": f"{ID_CARD}|1", "as-of": "yesterday"},
    {"identifier": f"{ID_CARD}|1", "date": "soon"},
    {"identifier": f"{ID_CARD}|1", "colour": "red"},
])
async def test_bad_input(world: World, params: dict[str, str]) -> None:
    r = await world.lookup("h2", **params)
    assert r.status_code == 400, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_another_institutions_patient_id_is_not_known(world: World) -> None:
    r = await world.lookup("h2", patient=f"Patient/{world.ids['p-H1']}")
    assert r.status_code == 404


async def test_unknown_person_is_empty(world: World) -> None:
    r = await world.lookup("h2", identifier=f"{ID_CARD}|110101190001011234")
    assert r.status_code == 200 and matches(r.json()) == []


def decision(result: str, value: str, reason: str | None = None) -> dict[str, Any]:
    params: list[dict[str, Any]] = [{"name": "result", "valueReference": {"reference": result}},
                                    {"name": "decision", "valueCode": value}]
    if reason is not None:
        params.append({"name": "reason", "valueString": reason})
    return {"resourceType": "Parameters", "parameter": params}


async def test_decisions(world: World) -> None:
    await world.lookup("h2", identifier=f"{ID_CARD}|{world.id_card}")
    report = f"DiagnosticReport/{world.ids['recognized']}"
    r = await world.as_("h2", "POST", "/$recognition-decision", json=decision(report, "recognized"))
    assert r.status_code == 201, r.text
    record = r.json()
    assert record["subject"]["reference"] == report and record["created"]
    assert any(e["url"].endswith("recognition-decided-by") for e in record["extension"])
    r = await world.as_("h2", "POST", "/$recognition-decision", json=decision(report, "repeated"))
    assert r.status_code == 400 and "reason" in r.text
    r = await world.as_("h2", "POST", "/$recognition-decision", json=decision(report, "maybe"))
    assert r.status_code == 400
    r = await world.as_("h2", "POST", "/$recognition-decision",
                        json=decision(f"DiagnosticReport/{world.ids['expired']}", "repeated", "病情变化"))
    assert r.status_code == 201, r.text
    # C2 never looked R1 up: nothing was shown to it
    r = await world.as_("c2", "POST", "/$recognition-decision", json=decision(report, "recognized"))
    assert r.status_code == 422 and "never shown" in r.text
    r = await world.as_("h2", "POST", "/$recognition-decision", json=decision("Observation/x", "recognized"))
    assert r.status_code == 400


def stat(params: list[dict[str, Any]], name: str) -> int:
    return next(p["valueInteger"] for p in params if p["name"] == name)


async def test_statistics_reconcile_with_the_audit_trail(world: World) -> None:
    month = __import__("datetime").datetime.now(__import__("datetime").UTC).strftime("%Y-%m")
    before = await world.as_("platform", "GET", "/$recognition-stats", params={"period": month,
                                                                               "institution": world.inst["H3"]})
    assert before.status_code == 200, before.text
    r = await world.lookup("h3", identifier=f"{ID_CARD}|{world.id_card}")
    shown = len(matches(r.json()))
    await world.as_("h3", "POST", "/$recognition-decision",
                    json=decision(f"DiagnosticReport/{world.ids['recognized']}", "repeated", "患者要求"))
    await world.drain()
    after = await world.as_("h3", "GET", "/$recognition-stats", params={"period": month})
    assert after.status_code == 200, after.text
    a, b = after.json()["parameter"], before.json()["parameter"]
    assert stat(a, "lookups") - stat(b, "lookups") == 1
    assert stat(a, "resultsShown") - stat(b, "resultsShown") == shown
    assert stat(a, "repeats") - stat(b, "repeats") == 1
    # the same numbers, counted from the AuditEvents directly
    events = await world.as_("platform", "GET", "/AuditEvent", params={
        "subtype": "http://yidang.org/fhir/CodeSystem/operation|\\$cross-lookup", "date": month, "_count": "1000"})
    mine = [e["resource"] for e in events.json().get("entry", []) if e["resource"]["outcome"] == "0" and any(
        a.get("who", {}).get("identifier", {}).get("value") == world.inst["H3"] for a in e["resource"]["agent"])]
    assert len(mine) == stat(a, "lookups")
    assert sum(1 for e in mine for x in e.get("entity", []) if x.get("what", {}).get("reference", "").startswith(
        "DiagnosticReport/")) == stat(a, "resultsShown")
    assert stat(a, "persons") == 1
    named = {x["what"]["reference"] for x in mine[-1]["entity"] if x.get("role", {}).get("code") == "1"}
    assert {f"Patient/{world.ids[k]}" for k in ("p-H1", "p-H2", "p-H3", "p-C1")} <= named
    # an institution reads only its own; bad input
    r = await world.as_("h3", "GET", "/$recognition-stats", params={"period": month, "institution": world.inst["H1"]})
    assert r.status_code == 403
    r = await world.as_("platform", "GET", "/$recognition-stats", params={"period": "2024-13"})
    assert r.status_code == 400
    r = await world.as_("platform", "GET", "/$recognition-stats", params={"period": month, "institution": "nobody"})
    assert r.status_code == 400 and "unknown institution" in r.text


def consent(patient: str, actor_value: str) -> dict[str, Any]:
    return {"resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{patient}"},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                       "code": "OPTOUT"}]},
            "provision": {"type": "deny", "actor": [{
                "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                     "code": "IRCP"}]},
                "reference": {"identifier": {"value": actor_value}}}]}}


async def test_consent_deny_permit_break_glass(world: World) -> None:
    ident = f"{HEALTH_CARD}|{world.r2_card}"
    before = await world.lookup("h1", identifier=ident)
    assert before.status_code == 200 and set(by_key(world, before.json())) == {"r2-report"}
    await world.create("platform", consent(world.ids["p-R2"], world.inst["H1"]), "consent-r2")
    denied = await world.lookup("h1", identifier=ident)
    assert denied.status_code == 403 and world.ids["consent-r2"] in denied.text
    permitted = await world.lookup("h2", identifier=ident)  # the Consent denies H1 only
    assert permitted.status_code == 200 and set(by_key(world, permitted.json())) == {"r2-report"}
    glass = await world.lookup("h1-btg", identifier=ident)
    assert glass.status_code == 200, glass.text
    assert set(by_key(world, glass.json())) == {"r2-report"}
    outcome = [e for e in glass.json()["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome and "Break-glass" in outcome[0]["resource"]["issue"][0]["diagnostics"]

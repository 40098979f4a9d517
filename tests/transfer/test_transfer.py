"""Patient/$transfer (issue 16 §1) on both stores: effects, idempotence, refusals, access before and
after for two districts, $transfer-history, and all-or-nothing on a failure mid-transfer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from server.stores.base import Store
from server.transfer import record as record_module
from tests.transfer.helpers import RECORD, USCC, World, make_world, out, params


@pytest_asyncio.fixture(scope="module")
async def w(store: Store) -> AsyncIterator[World]:
    world = await make_world(store)
    yield world
    await world.client.aclose()


def to_org2(w: World, *extra: tuple[str, str, Any]) -> dict[str, Any]:
    return params(("target-organization", "valueIdentifier", {"system": USCC, "value": w.d2}),
                  ("reason", "valueString", "居民迁居至二区"), *extra)


async def test_transfer_moves_the_record(w: World) -> None:
    pid, eid, number = await w.resident()
    assert (await w.as_("d1", "GET", f"/Patient/{pid}")).status_code == 200
    assert (await w.as_("d2", "GET", f"/Patient/{pid}")).status_code == 404
    r = await w.as_("d1", "POST", f"/Patient/{pid}/$transfer",
                    json=to_org2(w, ("effective-date", "valueDate", "2026-06-01")))
    assert r.status_code == 200, r.text
    body = r.json()
    patient = out(body, "result")[0]
    assert patient["managingOrganization"]["reference"] == f"Organization/{w.org2}"
    stored = await w.get("platform", f"/Patient/{pid}")  # the district's answer is masked (level 3)
    assert [i["value"] for i in stored["identifier"] if i["system"] == RECORD] == [number]  # kept
    assert patient["meta"]["versionId"] == "2"
    provenance_ref = out(body, "provenance")[0]["reference"]
    [closed] = out(body, "closed")
    [opened] = out(body, "opened")
    assert closed["reference"] == f"EpisodeOfCare/{eid}"
    # the old episode is closed with reason 迁出, the new one opened under the target
    old = await w.get("platform", f"/EpisodeOfCare/{eid}")
    assert old["status"] == "finished" and old["period"]["end"] == "2026-06-01"
    assert old["statusHistory"][-1]["status"] == "active"
    [reason] = [e for e in old["extension"] if e["url"].endswith("episode-end-reason")]
    assert reason["valueCodeableConcept"]["coding"][0]["display"] == "迁出"
    new = await w.get("platform", f"/{opened['reference']}")
    assert new["status"] == "active" and new["period"] == {"start": "2026-06-01"}
    assert new["managingOrganization"]["reference"] == f"Organization/{w.org2}"
    assert new["type"] == old["type"]
    # the Provenance names every version written
    prov = await w.get("platform", f"/{provenance_ref}")
    targets = {t["reference"] for t in prov["target"]}
    assert targets == {f"Patient/{pid}/_history/2", f"EpisodeOfCare/{eid}/_history/2",
                       f"{opened['reference']}/_history/1"}
    assert prov["activity"]["coding"][0]["code"] == "transfer"
    assert prov["reason"][0]["text"] == "居民迁居至二区"
    assert prov["agent"][0]["who"]["identifier"]["value"] == "d1"
    # history keeps the previous version; the Patient's source institution is unchanged
    hist = await w.get("platform", f"/Patient/{pid}/_history")
    assert len(hist["entry"]) == 2
    v1 = await w.get("platform", f"/Patient/{pid}/_history/1")
    assert v1["managingOrganization"]["reference"] == f"Organization/{w.clinic1}"
    assert patient["meta"]["source"].endswith(w.inst)
    # after: the new district reads and manages the record, the old one no longer does
    assert (await w.as_("d1", "GET", f"/Patient/{pid}")).status_code == 404
    assert (await w.as_("d1", "GET", f"/EpisodeOfCare/{eid}")).status_code == 404
    assert (await w.as_("d2", "GET", f"/Patient/{pid}")).status_code == 200
    found = await w.get("d2", f"/EpisodeOfCare?patient=Patient/{pid}")
    assert {e["resource"]["id"] for e in found["entry"]} == {eid, opened["reference"].split("/")[1]}
    assert not (await w.get("d1", f"/Patient?_id={pid}")).get("entry")
    # ... and may move it on (it manages it now); the old district may not
    back = await w.as_("d1", "POST", f"/Patient/{pid}/$transfer", json=params(
        ("target-organization", "valueReference", {"reference": f"Organization/{w.org1}"}),
        ("reason", "valueString", "x")))
    assert back.status_code == 404, back.text


async def test_repeating_a_transfer_writes_nothing(w: World) -> None:
    pid, _, _ = await w.resident()
    first = await w.as_("d1", "POST", f"/Patient/{pid}/$transfer", json=to_org2(w))
    assert first.status_code == 200, first.text
    prov = out(first.json(), "provenance")[0]
    again = await w.as_("d1", "POST", f"/Patient/{pid}/$transfer", json=to_org2(w))  # the sender, blind now
    assert again.status_code == 200, again.text
    assert out(again.json(), "provenance")[0] == prov and not out(again.json(), "result")
    by_platform = await w.as_("platform", "POST", f"/Patient/{pid}/$transfer", json=to_org2(w))
    assert by_platform.status_code == 200, by_platform.text
    assert out(by_platform.json(), "provenance")[0] == prov
    assert len((await w.get("platform", f"/Patient/{pid}/_history"))["entry"]) == 2
    assert len((await w.get("platform", f"/Provenance?target=Patient/{pid}")).get("entry", [])) == 1
    # not a repeat (another effective date): to the current organization → 400
    other = await w.as_("platform", "POST", f"/Patient/{pid}/$transfer",
                        json=to_org2(w, ("effective-date", "valueDate", "2020-01-01")))
    assert other.status_code == 400 and "already" in other.text


async def test_to_the_current_organization_is_400(w: World) -> None:
    pid, _, _ = await w.resident()
    r = await w.as_("platform", "POST", f"/Patient/{pid}/$transfer", json=params(
        ("target-organization", "valueReference", {"reference": f"Organization/{w.clinic1}"}),
        ("reason", "valueString", "x")))
    assert r.status_code == 400 and "already" in r.text
    assert (await w.get("platform", f"/Patient/{pid}"))["meta"]["versionId"] == "1"


@pytest.mark.parametrize(("values", "status", "text"), [
    ([("target-organization", "valueReference", {"reference": "Organization/nope"}), ("reason", "valueString", "x")],
     404, "not known"),
    ([("target-organization", "valueIdentifier", {"system": USCC, "value": "nobody"}),
      ("reason", "valueString", "x")], 404, "no Organization"),
    ([("target-organization", "valueReference", {"reference": "Patient/x"}), ("reason", "valueString", "x")],
     400, "Organization"),
    ([("target-organization", "valueString", "42"), ("reason", "valueString", "x")], 400, "Organization"),
    ([("reason", "valueString", "x")], 400, "target-organization"),
    ([("target-organization", "valueIdentifier", {"value": "x"})], 400, "reason"),
    ([("target-organization", "valueIdentifier", {"value": "x"}), ("reason", "valueString", "x"),
      ("effective-date", "valueString", "June")], 400, "effective-date"),
    ([("bogus", "valueString", "x")], 400, "bogus"),
])
async def test_bad_input(w: World, values: list[tuple[str, str, Any]], status: int, text: str) -> None:
    pid, _, _ = await w.resident()
    r = await w.as_("d1", "POST", f"/Patient/{pid}/$transfer", json=params(*values))
    assert r.status_code == status, r.text
    assert r.json()["resourceType"] == "OperationOutcome" and text in r.text
    assert (await w.get("platform", f"/Patient/{pid}"))["meta"]["versionId"] == "1"


async def test_who_may_transfer(w: World) -> None:
    pid, _, _ = await w.resident()
    assert (await w.as_("inst", "POST", f"/Patient/{pid}/$transfer", json=to_org2(w))).status_code == 403
    assert (await w.as_("d2", "POST", f"/Patient/{pid}/$transfer", json=to_org2(w))).status_code == 404
    assert (await w.as_("d1read", "POST", f"/Patient/{pid}/$transfer", json=to_org2(w))).status_code == 403
    assert (await w.as_("d1", "GET", f"/Patient/{pid}/$transfer")).status_code == 405
    # a district's own Patient that it does not manage: it sees it, but is not its sending district
    mine = await w.create("platform", {"resourceType": "Patient", "name": [{"text": "李四"}],
                                       "managingOrganization": {"reference": f"Organization/{w.org2}"}})
    assert (await w.as_("d1", "POST", f"/Patient/{mine}/$transfer", json=to_org2(w))).status_code in (400, 404)
    assert (await w.as_("d1", "POST", "/Patient/nope/$transfer", json=to_org2(w))).status_code == 404
    # the platform may move any record
    r = await w.as_("platform", "POST", f"/Patient/{pid}/$transfer", json=to_org2(w))
    assert r.status_code == 200, r.text


async def test_general_practitioner(w: World) -> None:
    pid, _, _ = await w.resident()
    doctor = await w.create("platform", {"resourceType": "Practitioner", "name": [{"text": "王医生"}]})
    r = await w.as_("d1", "POST", f"/Patient/{pid}/$transfer", json=to_org2(
        w, ("general-practitioner", "valueReference", {"reference": f"Practitioner/{doctor}"})))
    assert r.status_code == 200, r.text
    assert out(r.json(), "result")[0]["generalPractitioner"] == [{"reference": f"Practitioner/{doctor}"}]
    opened = await w.get("platform", f"/{out(r.json(), 'opened')[0]['reference']}")
    assert opened["careManager"] == {"reference": f"Practitioner/{doctor}"}


async def test_transfer_history(w: World) -> None:
    pid, _, _ = await w.resident()
    r = await w.as_("d1", "POST", f"/Patient/{pid}/$transfer", json=to_org2(w))
    assert r.status_code == 200, r.text
    r = await w.as_("d2", "POST", f"/Patient/{pid}/$transfer", json=params(
        ("target-organization", "valueReference", {"reference": f"Organization/{w.org1}"}),
        ("reason", "valueString", "回迁"), ("effective-date", "valueDateTime", "2026-07-01T08:00:00+08:00")))
    assert r.status_code == 200, r.text
    hist = await w.get("d1", f"/Patient/{pid}/$transfer-history")
    moves = [{p["name"]: p.get("valueReference", p.get("valueString", p.get("valueDateTime")))
              for p in t["part"]} for t in hist["parameter"]]
    assert [m["to"]["reference"] for m in moves] == [f"Organization/{w.org2}", f"Organization/{w.org1}"]
    assert moves[0]["from"]["reference"] == f"Organization/{w.clinic1}"
    assert moves[1]["reason"] == "回迁" and moves[1]["effective"] == "2026-07-01T08:00:00+08:00"
    assert (await w.as_("d2", "GET", f"/Patient/{pid}/$transfer-history")).status_code == 404
    assert (await w.as_("d1", "GET", "/Patient/nope/$transfer-history")).status_code == 404
    none = await w.get("platform", f"/Patient/{(await w.resident())[0]}/$transfer-history")
    assert none.get("parameter", []) == []


async def test_a_failure_mid_transfer_leaves_nothing(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    pid, eid, _ = await w.resident()

    def broken(*args: Any, **kw: Any) -> dict[str, Any]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(record_module, "provenance", broken)  # after the Patient and episode writes
    r = await w.as_("d1", "POST", f"/Patient/{pid}/$transfer", json=to_org2(w))
    assert r.status_code == 500
    monkeypatch.undo()
    assert (await w.get("platform", f"/Patient/{pid}"))["meta"]["versionId"] == "1"
    episode = await w.get("platform", f"/EpisodeOfCare/{eid}")
    assert episode["status"] == "active" and episode["meta"]["versionId"] == "1"
    found = await w.get("platform", f"/EpisodeOfCare?patient=Patient/{pid}")
    assert len(found["entry"]) == 1
    assert (await w.as_("d1", "GET", f"/Patient/{pid}")).status_code == 200


async def test_record_number_reissued(store: Store) -> None:
    w = await make_world(store, transfer_record_number="reissue")
    try:
        pid, _, number = await w.resident()
        r = await w.as_("d1", "POST", f"/Patient/{pid}/$transfer", json=to_org2(w))
        assert r.status_code == 200, r.text
        idents = [i for i in (await w.get("platform", f"/Patient/{pid}"))["identifier"] if i["system"] == RECORD]
        assert {"use": "old", "system": RECORD, "value": number} in idents
        assert {"use": "official", "system": RECORD, "value": f"{w.d2}-{number}"} in idents
        pid2, _, _ = await w.resident()
        r = await w.as_("d1", "POST", f"/Patient/{pid2}/$transfer",
                        json=to_org2(w, ("record-number", "valueString", "44010600001")))
        assert r.status_code == 200, r.text
        found = await w.get("d2", f"/Patient?identifier={RECORD}|44010600001")
        assert found["entry"][0]["resource"]["id"] == pid2
    finally:
        await w.client.aclose()

"""The transfer-record Task (issue 16 §1) on both stores: requested → accepted → completed by
Patient/$transfer with the task, rejection changes nothing, and who may move which status (the policy)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from server.stores.base import Store
from tests.transfer.helpers import World, make_world, out, params


@pytest_asyncio.fixture(scope="module")
async def w(store: Store) -> AsyncIterator[World]:
    world = await make_world(store)
    yield world
    await world.client.aclose()


async def put_status(w: World, who: str, task: dict[str, Any], status: str) -> Any:
    body = {**task, "status": status}
    return await w.as_(who, "PUT", f"/Task/{task['id']}", json=body)


async def test_requested_accepted_completed(w: World) -> None:
    pid, eid, _ = await w.resident()
    # the receiving district asks; the institution and the sending district may not ask in its name
    assert (await w.as_("inst", "POST", "/Task", json=w.transfer_task(pid))).status_code == 403
    assert (await w.as_("d1", "POST", "/Task", json=w.transfer_task(pid))).status_code == 403
    assert (await w.as_("d2", "POST", "/Task", json={**w.transfer_task(pid), "status": "accepted"})).status_code \
        == 403
    tid = await w.create("d2", w.transfer_task(pid))
    task = await w.get("d2", f"/Task/{tid}")
    # both parties see it; a third does not
    assert (await w.as_("d1", "GET", f"/Task/{tid}")).status_code == 200
    assert (await w.as_("inst", "GET", f"/Task/{tid}")).status_code == 404
    found = await w.get("d1", f"/Task?_id={tid}")
    assert len(found["entry"]) == 1
    # only the owner (sending district) accepts; the requester cannot
    assert (await put_status(w, "d2", task, "accepted")).status_code == 403
    r = await put_status(w, "d1", task, "accepted")
    assert r.status_code == 200, r.text
    task = r.json()
    # completing by a write of the Task is refused: $transfer with the task completes it
    assert (await put_status(w, "d1", task, "completed")).status_code == 403
    assert (await put_status(w, "platform", task, "completed")).status_code == 403
    # nobody changes what the Task asks for
    moved = {**task, "owner": {"identifier": {"value": w.d2}}}
    assert (await w.as_("d1", "PUT", f"/Task/{tid}", json=moved)).status_code == 403
    r = await w.as_("d1", "POST", f"/Patient/{pid}/$transfer",
                    json=params(("task", "valueReference", {"reference": f"Task/{tid}"})))
    assert r.status_code == 200, r.text
    assert len(out(r.json(), "opened")) == 1
    done = await w.get("d2", f"/Task/{tid}")
    assert done["status"] == "completed"
    assert done["output"][0]["valueReference"] == out(r.json(), "provenance")[0]
    patient = await w.get("d2", f"/Patient/{pid}")
    assert patient["managingOrganization"]["reference"] == f"Organization/{w.org2}"
    assert (await w.as_("d1", "GET", f"/Patient/{pid}")).status_code == 404
    episode = await w.get("platform", f"/EpisodeOfCare/{eid}")
    assert episode["status"] == "finished"
    prov = await w.get("platform", f"/{out(r.json(), 'provenance')[0]['reference']}")
    assert f"Task/{tid}/_history/3" in {t["reference"] for t in prov["target"]}
    hist = await w.get("d2", f"/Patient/{pid}/$transfer-history")
    parts = {p["name"]: p for p in hist["parameter"][0]["part"]}
    assert parts["task"]["valueReference"] == {"reference": f"Task/{tid}"}
    # a completed Task does not move again, nor complete twice
    assert (await put_status(w, "platform", done, "accepted")).status_code == 409
    again = await w.as_("platform", "POST", f"/Patient/{pid}/$transfer",
                        json=params(("task", "valueReference", {"reference": f"Task/{tid}"})))
    assert again.status_code == 409, again.text


async def test_rejection_changes_nothing(w: World) -> None:
    pid, eid, _ = await w.resident()
    tid = await w.create("d2", w.transfer_task(pid))
    task = await w.get("d1", f"/Task/{tid}")
    # a transfer with a Task that is only requested is refused
    early = await w.as_("d1", "POST", f"/Patient/{pid}/$transfer",
                        json=params(("task", "valueReference", {"reference": f"Task/{tid}"})))
    assert early.status_code == 409, early.text
    assert (await put_status(w, "inst", task, "rejected")).status_code == 403
    assert (await put_status(w, "d2", task, "rejected")).status_code == 403
    r = await put_status(w, "d1", {**task, "statusReason": {"text": "居民未迁出"}}, "rejected")
    assert r.status_code == 200, r.text
    refused = await w.as_("d1", "POST", f"/Patient/{pid}/$transfer",
                          json=params(("task", "valueReference", {"reference": f"Task/{tid}"})))
    assert refused.status_code == 409
    assert (await w.get("platform", f"/Patient/{pid}"))["meta"]["versionId"] == "1"
    assert (await w.get("platform", f"/EpisodeOfCare/{eid}"))["status"] == "active"
    assert (await w.get("d1", f"/Patient/{pid}/$transfer-history")).get("parameter", []) == []
    # rejected is final
    assert (await put_status(w, "d1", r.json(), "accepted")).status_code == 409


async def test_requester_cancels_and_nobody_deletes(w: World) -> None:
    pid, _, _ = await w.resident()
    tid = await w.create("d2", w.transfer_task(pid))
    task = await w.get("d2", f"/Task/{tid}")
    assert (await put_status(w, "d1", task, "cancelled")).status_code == 403
    assert (await w.as_("d2", "DELETE", f"/Task/{tid}")).status_code == 403
    r = await put_status(w, "d2", task, "cancelled")
    assert r.status_code == 200, r.text


async def test_task_for_another_patient_or_organization(w: World) -> None:
    pid, _, _ = await w.resident()
    other, _, _ = await w.resident()
    tid = await w.create("d2", w.transfer_task(pid))
    r = await put_status(w, "d1", await w.get("d1", f"/Task/{tid}"), "accepted")
    assert r.status_code == 200, r.text
    wrong = await w.as_("d1", "POST", f"/Patient/{other}/$transfer",
                        json=params(("task", "valueReference", {"reference": f"Task/{tid}"})))
    assert wrong.status_code == 400 and "another Patient" in wrong.text
    # a requester that names itself as owner is refused at creation
    bad = w.transfer_task(pid, owner=w.d2)
    assert (await w.as_("d2", "POST", "/Task", json=bad)).status_code == 403
    # a Task without identifiers is no workflow party's
    nameless = w.transfer_task(pid)
    del nameless["requester"]["identifier"]
    assert (await w.as_("d2", "POST", "/Task", json=nameless)).status_code == 403


async def test_ordinary_tasks_unchanged(w: World) -> None:
    pid, _, _ = await w.resident()
    plain = {"resourceType": "Task", "status": "requested", "intent": "order", "for": {"reference": f"Patient/{pid}"}}
    assert (await w.as_("inst", "POST", "/Task", json=plain)).status_code == 201
    assert (await w.as_("d1", "POST", "/Task", json=plain)).status_code == 403

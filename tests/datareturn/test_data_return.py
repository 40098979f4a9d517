"""Data return to districts (数据回流, issue 16 §3) on both stores: a district applies with a data-return
Task, the platform approves or rejects it, and on approval Task/$data-return runs a Bulk Data export of
the district's own residents that only the district (and the platform) may download; refusals are 403."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from server.stores.base import Store
from tests.bulk.helpers import ASYNC, everything, wait
from tests.transfer.helpers import TASKS, USCC, World, make_world


@pytest_asyncio.fixture(scope="module")
async def w(store: Store, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    world = await make_world(store, bulk_dir=tmp_path_factory.mktemp("bulk"))
    yield world
    await world.client.aclose()


def application(w: World, district: str, *inputs: tuple[str, str]) -> dict[str, Any]:
    task: dict[str, Any] = {"resourceType": "Task", "status": "requested", "intent": "order",
                            "code": {"coding": [{"system": TASKS, "code": "data-return"}]},
                            "requester": {"identifier": {"system": USCC, "value": district}},
                            "reasonCode": {"text": "辖区慢病管理质量评估"}}
    if inputs:
        task["input"] = [{"type": {"text": name}, "valueString": value} for name, value in inputs]
    return task


async def kick(w: World, who: str, tid: str) -> Any:
    return await w.as_(who, "POST", f"/Task/{tid}/$data-return", headers=ASYNC)


async def test_request_approve_download(w: World) -> None:
    mine, _, _ = await w.resident()  # managed by district 1 (its clinic)
    theirs, _, _ = await w.resident(org=w.org2)
    since = "2000-01-01T00:00:00Z"
    assert (await w.as_("d1", "POST", "/Task", json=application(w, w.d2))).status_code == 403  # not in its name
    assert (await w.as_("inst", "POST", "/Task", json=application(w, w.inst))).status_code == 403
    tid = await w.create("d1", application(w, w.d1, ("_type", "Patient,EpisodeOfCare"), ("_since", since)))
    task = await w.get("d1", f"/Task/{tid}")
    # without approval: 403, and a district's own $export is refused
    assert (await kick(w, "d1", tid)).status_code == 403
    assert (await w.as_("d1", "GET", "/Patient/$export", headers=ASYNC)).status_code == 403
    # the district cannot approve its own application; the platform does
    assert (await w.as_("d1", "PUT", f"/Task/{tid}", json={**task, "status": "accepted"})).status_code == 403
    r = await w.as_("platform", "PUT", f"/Task/{tid}", json={**task, "status": "accepted"})
    assert r.status_code == 200, r.text
    # only the requesting district starts it
    assert (await kick(w, "d2", tid)).status_code in (403, 404)
    assert (await kick(w, "platform", tid)).status_code == 403
    started = await kick(w, "d1", tid)
    assert started.status_code == 202, started.text
    status_url = started.headers["Content-Location"]
    assert (await w.get("d1", f"/Task/{tid}"))["output"][-1]["valueUrl"] == status_url
    manifest = await _wait(w, status_url, "d1")
    got = await _everything(w, manifest, "d1")
    patients = {p["id"] for p in got.get("Patient", [])}
    assert mine in patients and theirs not in patients
    assert {e["patient"]["reference"] for e in got.get("EpisodeOfCare", [])} <= {f"Patient/{p}" for p in patients}
    assert set(got) <= {"Patient", "EpisodeOfCare"}
    # the other district cannot poll or download it
    url = manifest["output"][0]["url"]
    assert (await w.as_("d2", "GET", status_url)).status_code == 404
    assert (await w.as_("d2", "GET", url)).status_code == 404
    assert (await w.as_("d1", "GET", url)).status_code == 200


async def _wait(w: World, url: str, who: str) -> dict[str, Any]:
    w.client.headers["Authorization"] = f"Bearer {who}"
    try:
        return await wait(w.client, url)
    finally:
        del w.client.headers["Authorization"]


async def _everything(w: World, manifest: dict[str, Any], who: str) -> dict[str, list[dict[str, Any]]]:
    w.client.headers["Authorization"] = f"Bearer {who}"
    try:
        return await everything(w.client, manifest)
    finally:
        del w.client.headers["Authorization"]


async def test_rejected_or_cancelled_is_403(w: World) -> None:
    tid = await w.create("d1", application(w, w.d1, ("_type", "Patient")))
    task = await w.get("d1", f"/Task/{tid}")
    r = await w.as_("platform", "PUT", f"/Task/{tid}", json={**task, "status": "rejected",
                                                               "statusReason": {"text": "用途不明"}})
    assert r.status_code == 200, r.text
    assert (await kick(w, "d1", tid)).status_code == 403
    assert (await w.as_("platform", "PUT", f"/Task/{tid}", json={**r.json(), "status": "accepted"})).status_code \
        == 409
    other = await w.create("d1", application(w, w.d1))
    task = await w.get("d1", f"/Task/{other}")
    assert (await w.as_("d1", "PUT", f"/Task/{other}", json={**task, "status": "cancelled"})).status_code == 200
    assert (await kick(w, "d1", other)).status_code == 403


async def test_bad_requests(w: World) -> None:
    tid = await w.create("d1", application(w, w.d1, ("_type", "NoSuchType")))
    task = await w.get("d1", f"/Task/{tid}")
    assert (await w.as_("platform", "PUT", f"/Task/{tid}", json={**task, "status": "accepted"})).status_code == 200
    bad = await kick(w, "d1", tid)
    assert bad.status_code == 400 and "NoSuchType" in bad.text
    assert (await kick(w, "d1", "nope")).status_code == 404
    pid, _, _ = await w.resident()
    transfer = await w.create("d2", w.transfer_task(pid))
    assert (await kick(w, "d2", transfer)).status_code == 400
    assert (await w.as_("d1", "POST", f"/Task/{tid}/$data-return")).status_code == 400  # no Prefer: respond-async

"""``$reindex`` and the background job runner, on both stores.

A SearchParameter created after resources were stored finds them only once they are reindexed:
at instance level at once (200), at type and system level as a background job (202 Accepted with
``Content-Location`` naming a ``Task`` that shows status and ``processed``/``total``). Jobs are
persisted as Tasks, so a restart resumes them from their saved cursor; a stopped runner releases
its jobs, a dead one's are taken over after the lease, and a client cancels one through its Task.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from server.app import create_app
from server.jobs import reindex
from server.jobs.runner import Job, JobRunner
from server.jobs.tasks import JOB_CODES, JOB_PARAMETERS
from server.settings import Settings
from server.stores.base import Store
from server.stores.mongo import MongoStore
from server.stores.sqlite import SqliteStore
from tests.conftest import BASE, database_uri

STRICT = {"Prefer": "handling=strict"}


def nickname_parameter(code: str) -> dict:
    return {"resourceType": "SearchParameter", "url": f"http://example.org/fhir/SearchParameter/{code}",
            "name": code, "status": "active", "description": code, "code": code, "base": ["Patient"],
            "type": "string", "expression": "Patient.name.where(use='nickname').given"}


def patient(nickname: str) -> dict:
    return {"resourceType": "Patient", "name": [{"use": "nickname", "given": [nickname]}]}


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE)  # type: ignore[arg-type]


@pytest_asyncio.fixture(scope="module")
async def app(store: Store) -> object:
    return create_app(Settings(base_url=BASE, log_requests=False), store=store)


@pytest_asyncio.fixture(scope="module")
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


async def create(client: httpx.AsyncClient, resource: dict) -> str:
    r = await client.post(f"/{resource['resourceType']}", json=resource)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def matches(client: httpx.AsyncClient, params: dict) -> set[str]:
    r = await client.get("/Patient", params={**params, "_count": "1000"}, headers=STRICT)
    assert r.status_code == 200, r.text
    return {e["resource"]["id"] for e in r.json().get("entry", ())}


def outputs(task: dict) -> dict[str, object]:
    out: dict[str, object] = {}
    for o in task.get("output", ()):
        name = o["type"]["coding"][0]["code"]
        out[name] = next(v for k, v in o.items() if k.startswith("value"))
    return out


async def finished(client: httpx.AsyncClient, location: str, timeout: float = 30.0) -> dict:
    """Poll the job's Task until it is no longer requested/in progress."""
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(location)
        assert r.status_code == 200, r.text
        task = r.json()
        if task["status"] not in ("requested", "in-progress"):
            return task
        assert time.monotonic() < deadline, task
        await asyncio.sleep(0.02)


async def test_instance_reindex_is_synchronous(client: httpx.AsyncClient) -> None:
    code = f"inst{uuid.uuid4().hex[:6]}"
    pid = await create(client, patient("Guanyu"))
    await create(client, nickname_parameter(code))
    assert await matches(client, {code: "Guan"}) == set()
    r = await client.post(f"/Patient/{pid}/$reindex")
    assert r.status_code == 200, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert await matches(client, {code: "Guan"}) == {pid}
    version = (await client.get(f"/Patient/{pid}")).json()["meta"]["versionId"]
    assert version == "1"  # reindexing makes no new version


async def test_type_level_reindex_job_in_pages(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reindex, "PAGE", 4)  # several pages, so the cursor moves
    code = f"type{uuid.uuid4().hex[:6]}"
    created = {await create(client, patient(f"Zhuge{n}")) for n in range(10)}
    await create(client, nickname_parameter(code))
    assert await matches(client, {code: "Zhuge"}) == set()
    r = await client.post("/Patient/$reindex")
    assert r.status_code == 202, r.text
    location = r.headers["Content-Location"]
    assert location.startswith(f"{BASE}/Task/")
    assert r.json()["resourceType"] == "OperationOutcome"
    task = await finished(client, location.removeprefix(BASE))
    assert task["status"] == "completed", task
    progress = outputs(task)
    total = (await client.get("/Patient", params={"_summary": "count"})).json()["total"]
    assert progress["processed"] == progress["total"] == total
    assert "cursor" not in progress and "runner" not in progress
    assert task["code"]["coding"][0] == {"system": JOB_CODES, "code": "reindex"}
    assert task["input"] == [{"type": {"coding": [{"system": JOB_PARAMETERS, "code": "type"}], "text": "type"},
                              "valueString": "Patient"}]
    assert {"start", "end"} <= set(task["executionPeriod"])
    assert await matches(client, {code: "Zhuge"}) == created


@pytest.mark.parametrize("params", [{"_type": "Patient,Observation"}, {}])
async def test_system_level_reindex(client: httpx.AsyncClient, params: dict) -> None:
    await create(client, {"resourceType": "Observation", "status": "final", "code": {"text": "x"}})
    r = await client.post("/$reindex", params=params)
    assert r.status_code == 202, r.text
    task = await finished(client, r.headers["Content-Location"].removeprefix(BASE))
    assert task["status"] == "completed"
    types = [i["valueString"] for i in task["input"]]
    if params:
        assert types == ["Patient", "Observation"]
    else:
        assert {"Patient", "Observation", "SearchParameter", "Task"} <= set(types)
    progress = outputs(task)
    assert progress["processed"] == progress["total"]


@pytest.mark.parametrize(
    ("method", "path", "params", "status"),
    [
        ("GET", "/Patient/$reindex", {}, 405),  # changes data: POST only
        ("GET", "/$reindex", {}, 405),
        ("POST", "/Foo/$reindex", {}, 404),
        ("POST", "/Patient/does-not-exist/$reindex", {}, 404),
        ("POST", "/Patient/{gone}/$reindex", {}, 410),
        ("POST", "/$reindex", {"_type": "Foo"}, 400),
        ("POST", "/$reindex", {"_type": "Patient,"}, 400),
        ("POST", "/Patient/$reindex", {"_type": "Observation"}, 400),
        ("GET", "/Task/no-such-job", {}, 404),
    ],
)
async def test_reindex_failures(client: httpx.AsyncClient, method: str, path: str, params: dict,
                                status: int) -> None:
    gone = await create(client, patient("Gone"))
    assert (await client.delete(f"/Patient/{gone}")).status_code == 204
    r = await client.request(method, path.format(gone=gone), params=params)
    assert r.status_code == status, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


# --- the runner: stop/release, restart/resume, lease take-over, cancel --------------------------


class Steps:
    """A test job kind: ``steps`` steps, each saved at once; it waits on ``gate`` before ``block_at``."""

    def __init__(self, code: str, steps: int, *, block_at: int | None = None, delay: float = 0.0) -> None:
        self.code = code
        self.steps = steps
        self.block_at = block_at
        self.delay = delay
        self.ran: list[int] = []
        self.gate = asyncio.Event()
        self.blocked = asyncio.Event()

    async def run(self, job: Job) -> None:
        for step in range(job.state.cursor or 0, self.steps):
            if step == self.block_at:
                self.blocked.set()
                await self.gate.wait()
            await asyncio.sleep(self.delay)
            self.ran.append(step)
            await job.progress(processed=step + 1, cursor=step + 1, total=self.steps, force=True)


async def test_stop_releases_and_start_resumes(app: object, client: httpx.AsyncClient) -> None:
    code = f"steps-{uuid.uuid4().hex[:6]}"
    svc = app.state.services  # type: ignore[attr-defined]
    blocking = Steps(code, 5, block_at=2)
    first = JobRunner(svc, [blocking])
    task_id = await first.submit(code, [], "test job")
    await asyncio.wait_for(blocking.blocked.wait(), 10)
    await first.stop()
    task = (await client.get(f"/Task/{task_id}")).json()
    assert task["status"] == "in-progress"
    assert outputs(task) == {"processed": 2, "total": 5, "cursor": "2"}  # released: no runner
    free = Steps(code, 5)
    second = JobRunner(svc, [free])
    assert await second.start() == 1
    await second.wait(task_id)
    await second.stop()
    assert free.ran == [2, 3, 4]  # resumed from the saved cursor, not from the start
    task = (await client.get(f"/Task/{task_id}")).json()
    assert task["status"] == "completed" and outputs(task) == {"processed": 5, "total": 5}


async def test_dead_runners_job_is_taken_over_after_the_lease(app: object, client: httpx.AsyncClient) -> None:
    code = f"steps-{uuid.uuid4().hex[:6]}"
    held = {"resourceType": "Task", "status": "in-progress", "intent": "order",
            "code": {"coding": [{"system": JOB_CODES, "code": code}]},
            "output": [{"type": {"coding": [{"system": JOB_PARAMETERS, "code": "runner"}]},
                        "valueString": "a-runner-that-died"}]}
    task_id = await create(client, held)
    kind = Steps(code, 2)
    runner = JobRunner(app.state.services, [kind], lease_s=0.6)  # type: ignore[attr-defined]
    assert await runner.resume() == 0  # its holder saved it just now
    await asyncio.sleep(0.7)
    assert await runner.resume() == 1
    await runner.wait(task_id)
    assert (await client.get(f"/Task/{task_id}")).json()["status"] == "completed"
    assert kind.ran == [0, 1]


async def test_client_cancels_a_job_through_its_task(app: object, client: httpx.AsyncClient) -> None:
    code = f"steps-{uuid.uuid4().hex[:6]}"
    kind = Steps(code, 10_000, delay=0.005)
    runner = JobRunner(app.state.services, [kind])  # type: ignore[attr-defined]
    task_id = await runner.submit(code, [], "long test job")
    deadline = time.monotonic() + 10
    while True:
        task = (await client.get(f"/Task/{task_id}")).json()
        if task["status"] == "in-progress" and outputs(task).get("processed", 0):
            task["status"] = "cancelled"
            r = await client.put(f"/Task/{task_id}", json=task, headers={"If-Match": task["meta"]["versionId"]})
            if r.status_code == 200:
                break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await asyncio.wait_for(runner.wait(task_id), 10)
    task = (await client.get(f"/Task/{task_id}")).json()
    assert task["status"] == "cancelled"
    assert len(kind.ran) < 10_000


class Broken:
    def __init__(self, code: str) -> None:
        self.code = code

    async def run(self, job: Job) -> None:
        await job.progress(processed=1, cursor=1, total=2, force=True)
        raise RuntimeError("the disk is on fire")


async def test_a_failing_job_is_recorded_on_its_task(app: object, client: httpx.AsyncClient) -> None:
    code = f"broken-{uuid.uuid4().hex[:6]}"
    runner = JobRunner(app.state.services, [Broken(code)])  # type: ignore[attr-defined]
    task_id = await runner.submit(code, [], "a job that fails")
    await asyncio.wait_for(runner.wait(task_id), 10)
    task = (await client.get(f"/Task/{task_id}")).json()
    assert task["status"] == "failed"
    assert "the disk is on fire" in task["statusReason"]["text"]
    assert outputs(task) == {"processed": 1, "total": 2}
    assert await runner.resume() == 0  # a failed job is not picked up again


async def test_restart_resumes_a_reindex_from_its_cursor(  # type: ignore[no-untyped-def]
        store, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
    if store.kind == "sqlite":
        path = tmp_path_factory.mktemp("restart")
        before, after = SqliteStore(path), SqliteStore(path)
    else:
        uri = database_uri(request.getfixturevalue("mongo_server_uri"), f"t_{uuid.uuid4().hex[:12]}")
        before, after = MongoStore(uri), MongoStore(uri)
    await before.open()
    try:
        async with client_for(create_app(Settings(base_url=BASE, log_requests=False), store=before)) as c:
            ids = sorted([await create(c, patient(f"Sunquan{n}")) for n in range(6)])
            await create(c, nickname_parameter("resumenick"))
            # the Task a process left behind after reindexing the first three patients
            task_id = await create(c, {
                "resourceType": "Task", "status": "in-progress", "intent": "order",
                "code": {"coding": [{"system": JOB_CODES, "code": "reindex"}]},
                "input": [{"type": {"coding": [{"system": JOB_PARAMETERS, "code": "type"}]},
                           "valueString": "Patient"}],
                "output": [
                    {"type": {"coding": [{"system": JOB_PARAMETERS, "code": "processed"}]}, "valueInteger": 3},
                    {"type": {"coding": [{"system": JOB_PARAMETERS, "code": "total"}]}, "valueInteger": 6},
                    {"type": {"coding": [{"system": JOB_PARAMETERS, "code": "cursor"}]},
                     "valueString": f'{{"type": 0, "after": ["Patient", "{ids[2]}"]}}'},
                ]})
    finally:
        await before.close()
    restarted = create_app(Settings(base_url=BASE, log_requests=False), store=after)
    async with restarted.router.lifespan_context(restarted), client_for(restarted) as c:
        task = await finished(c, f"/Task/{task_id}")
        assert task["status"] == "completed"
        assert outputs(task) == {"processed": 6, "total": 6}
        # the three before the cursor were not redone: the job resumed where it stopped
        assert await matches(c, {"resumenick": "Sunquan"}) == set(ids[3:])

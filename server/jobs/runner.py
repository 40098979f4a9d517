"""The job runner: runs background jobs in the server's event loop, persisted as Tasks.

Owned by the application lifespan (:func:`server.app.create_app`): ``start()`` resumes the jobs
a previous process left unfinished and polls for orphans; ``stop()`` cancels the running ones and
*releases* their Tasks (status stays ``in-progress``, the ``runner`` output is removed), so the
next start resumes them at once from their saved cursor. A job whose process died without
releasing it is taken over when its Task has not been saved for ``lease_s`` seconds (running
jobs save progress at least every ``save_interval_s``); the take-over is a compare-and-set update
of the Task, so of several processes exactly one wins. See :mod:`server.jobs.tasks` for the shape.

A job kind is an object with a ``code`` and ``async run(job)``; it reads its inputs and cursor
from :class:`Job` and calls :meth:`Job.progress` after each unit of work. Work must be
idempotent from the last saved cursor on, because a crash repeats what followed it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol
from urllib.parse import urlencode
from uuid import uuid4

from server.errors import Conflict, FhirError, PreconditionFailed
from server.interactions import create, update
from server.interactions.services import Services
from server.jobs import tasks
from server.jobs.tasks import JobState
from server.search.model import Query
from server.search.parse import parse_criteria

log = logging.getLogger(__name__)

LEASE_S = 60.0
"""A job whose Task was not saved for this long (and still names a runner) is taken over."""
SAVE_INTERVAL_S = 1.0
"""Progress is persisted at most this often (and always at the end): a restart repeats at most
this much work, and the Task history grows by about one version per second of running."""
PAGE = 100


class JobStopped(Exception):
    """Raised inside a job when its Task was cancelled, deleted or taken over by another runner."""


class JobKind(Protocol):
    code: str

    async def run(self, job: Job) -> None: ...


class Job:
    """One running job: its inputs, its saved progress, and how to save more."""

    def __init__(self, runner: JobRunner, state: JobState) -> None:
        self._runner = runner
        self.state = state
        self._saved_at = time.monotonic()

    @property
    def svc(self) -> Services:
        return self._runner.svc

    @property
    def id(self) -> str:
        return self.state.id

    async def progress(self, *, processed: int, cursor: Any, total: int | None = None, force: bool = False) -> None:
        """Record progress; persisted when ``force`` or :data:`SAVE_INTERVAL_S` has passed.
        Raises :class:`JobStopped` when the Task no longer belongs to this runner."""
        self.state = _with(self.state, processed=processed, cursor=cursor, total=total)
        if force or time.monotonic() - self._saved_at >= self._runner.save_interval_s:
            await self.save()

    async def save(self, **changes: Any) -> None:
        self.state = await self._runner.save(self.state, **changes)
        self._saved_at = time.monotonic()


def _with(state: JobState, *, processed: int, cursor: Any, total: int | None) -> JobState:
    return replace(state, processed=processed, cursor=cursor, total=state.total if total is None else total)


class JobRunner:
    """Runs the jobs of ``kinds`` for ``svc``; see the module docstring for the life cycle."""

    def __init__(self, svc: Services, kinds: Sequence[JobKind], *, lease_s: float = LEASE_S,
                 save_interval_s: float = SAVE_INTERVAL_S, clock: Callable[[], int] | None = None) -> None:
        self.svc = svc
        self.kinds = {k.code: k for k in kinds}
        self.id = uuid4().hex
        self.lease_s = lease_s
        self.save_interval_s = min(save_interval_s, lease_s / 3)
        self._clock = clock or svc.clock
        """Microseconds since the epoch, the clock Task ``meta.lastUpdated`` is stamped with."""
        self._running: dict[str, asyncio.Task[None]] = {}
        self._poller: asyncio.Task[None] | None = None

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> int:
        """Resume unfinished jobs and start watching for orphans; returns how many resumed."""
        resumed = await self.resume()
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="yidang-job-poller")
        return resumed

    async def stop(self) -> None:
        """Cancel the poller and every running job; their Tasks are released for the next start."""
        poller, self._poller = self._poller, None
        running = list(self._running.values())
        for task in [poller, *running]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in [poller, *running] if t is not None), return_exceptions=True)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 2)
            try:
                await self.resume()
            except FhirError as exc:
                log.warning("looking for orphaned jobs failed: %s", exc.message)

    async def resume(self) -> int:
        """Start every active job of a known kind that no live runner holds."""
        count = 0
        for state in await self.active():
            if state.id in self._running or state.code not in self.kinds:
                continue
            expired = self._clock() - state.last_updated > self.lease_s * 1_000_000
            if state.runner is None or state.runner == self.id or expired:
                self._spawn(state.id)
                count += 1
        return count

    async def active(self) -> list[JobState]:
        """Jobs (of any kind) whose Task is requested or in progress."""
        criteria = urlencode({"status": ",".join(tasks.ACTIVE), "code": f"{tasks.JOB_CODES}|"})
        where = parse_criteria("Task", criteria, self.svc.registry)
        found: list[JobState] = []
        after: tuple[object, ...] | None = None
        while True:
            result = await self.svc.store.search(Query(("Task",), where, count=PAGE, after=after))
            found += [s for v in result.rows if (s := tasks.parse(v)) is not None]
            if result.next_after is None:
                return found
            after = result.next_after

    # --- jobs ---------------------------------------------------------------------------------

    async def submit(self, code: str, inputs: list[tuple[str, str]], description: str) -> str:
        """Persist a new job as a ``requested`` Task and start it; returns the Task id."""
        if code not in self.kinds:
            raise ValueError(f"no job kind {code!r}")
        result = await create.create(self.svc, "Task", tasks.new_task(code, inputs, description, self._clock()))
        assert result.version is not None
        self._spawn(result.version.id)
        return result.version.id

    async def wait(self, task_id: str) -> None:
        """Until the job ``task_id`` stops running in this process (tests, CLI)."""
        task = self._running.get(task_id)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    def _spawn(self, task_id: str) -> None:
        self._running[task_id] = asyncio.create_task(self._run(task_id), name=f"yidang-job-{task_id}")

    async def save(self, state: JobState, **changes: Any) -> JobState:
        """Write the next version of the job's Task (compare-and-set on ``state.version``).

        A concurrent change by someone else is merged when the job is still ours and active (a
        client added a note); otherwise :class:`JobStopped`."""
        while True:
            body = tasks.updated(state, self._clock(), runner=self.id, **changes)
            try:
                result = await update.update(self.svc, "Task", state.id, body, if_match=state.version)
            except (PreconditionFailed, Conflict):
                current = await self.svc.store.read("Task", state.id)
                fresh = tasks.parse(current) if current is not None else None
                if fresh is None or fresh.status not in tasks.ACTIVE or fresh.runner not in (None, self.id):
                    raise JobStopped(state.id) from None
                state = _with(fresh, processed=state.processed, cursor=state.cursor, total=state.total)
                continue
            assert result.version is not None
            parsed = tasks.parse(result.version)
            assert parsed is not None
            return parsed

    async def _claim(self, task_id: str) -> JobState | None:
        current = await self.svc.store.read("Task", task_id)
        state = tasks.parse(current) if current is not None else None
        if state is None or state.status not in tasks.ACTIVE:
            return None
        body = tasks.updated(state, self._clock(), status="in-progress", runner=self.id)
        try:
            result = await update.update(self.svc, "Task", task_id, body, if_match=state.version)
        except (PreconditionFailed, Conflict):
            return None  # another runner claimed it first
        assert result.version is not None
        return tasks.parse(result.version)

    async def _run(self, task_id: str) -> None:
        job: Job | None = None
        try:
            state = await self._claim(task_id)
            if state is None or state.code is None:
                return
            job = Job(self, state)
            await self.kinds[state.code].run(job)
            await job.save(status="completed")
            log.info("job Task/%s (%s) completed: %s processed", task_id, state.code, job.state.processed)
        except JobStopped:
            log.info("job Task/%s stopped: cancelled, deleted or taken over", task_id)
        except asyncio.CancelledError:
            if job is not None:
                await self._release(job)
            raise
        except Exception as exc:  # a failed job is recorded on its Task, never lost silently
            log.exception("job Task/%s failed", task_id)
            reason = exc.message if isinstance(exc, FhirError) else f"{type(exc).__name__}: {exc}"
            try:
                if job is None:
                    current = await self.svc.store.read("Task", task_id)
                    state = tasks.parse(current) if current is not None else None
                    if state is None:
                        return
                    job = Job(self, state)
                await job.save(status="failed", reason=reason)
            except (JobStopped, FhirError):
                log.warning("could not record the failure of job Task/%s", task_id)
        finally:
            self._running.pop(task_id, None)

    async def _release(self, job: Job) -> None:
        try:
            await job.save(release=True)
        except (JobStopped, FhirError) as exc:
            log.warning("could not release job Task/%s (%s); it is resumed after the lease", job.id, exc)

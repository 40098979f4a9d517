"""Expiry of bulk jobs: a finished job is removed — its files and its Task — ``bulk_retention``
seconds after it ended (cancelled ones at once). Swept when a bulk job starts and on every status
call, so nothing waits for a client to come back."""

from __future__ import annotations

import contextlib
from urllib.parse import urlencode

from server.access.grant import OPEN_GRANT
from server.bulk import files
from server.bulk.request import EXPORT, IMPORT
from server.errors import FhirError
from server.interactions import delete
from server.interactions.services import Services
from server.jobs import tasks
from server.jobs.tasks import JobState
from server.search.model import Query
from server.search.parse import parse_criteria

CODES = (EXPORT, IMPORT)


def ended_at(state: JobState) -> int | None:
    end = state.resource.get("executionPeriod", {}).get("end")
    return None if end is None else state.last_updated


def expired(svc: Services, state: JobState) -> bool:
    if state.status not in tasks.FINAL:
        return False
    end = ended_at(state)
    return end is not None and svc.clock() - end > svc.settings.bulk_retention * 1_000_000


async def remove(svc: Services, job_id: str) -> None:
    """Files and Task of a job, gone."""
    files.remove(files.job_dir(svc.settings, job_id))
    with contextlib.suppress(FhirError):  # already gone
        await delete.delete(svc.for_grant(OPEN_GRANT), "Task", job_id)


async def sweep(svc: Services) -> int:
    """Remove the expired bulk jobs (files and Tasks); returns how many."""
    codes = ",".join(f"{tasks.JOB_CODES}|{c}" for c in CODES)
    where = parse_criteria("Task", urlencode({"code": codes, "status": ",".join(tasks.FINAL)}), svc.registry)
    removed = 0
    after: tuple[object, ...] | None = None
    while True:
        result = await svc.store.search(Query(("Task",), where, count=200, after=after))
        for version in result.rows:
            state = tasks.parse(version)
            if state is not None and (expired(svc, state) or state.status == "cancelled"):
                await remove(svc, state.id)
                removed += 1
        if result.next_after is None:
            return removed
        after = result.next_after

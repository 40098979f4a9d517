"""A background job as a FHIR ``Task`` (http://hl7.org/fhir/R4/task.html) in the store itself. Pure.

Keeping the job in the store makes it visible (``GET [base]/Task/{id}`` is the status URL a
``202 Accepted`` points to), durable (a restart resumes it from its cursor) and shared (every
process on the store sees it; compare-and-set on the Task's version decides which one runs it)::

    {"resourceType": "Task", "status": "requested | in-progress | completed | failed | cancelled",
     "intent": "order",
     "code": {"coding": [{"system": JOB_CODES, "code": "reindex"}]},
     "description": "$reindex of Observation, Patient",
     "authoredOn": …, "lastModified": …, "executionPeriod": {"start": …, "end": …},
     "input":  [{"type": {"coding": [{"system": JOB_PARAMETERS, "code": "type"}]},
                 "valueString": "Observation"}, …],
     "output": [{"type": …"processed"}, "valueInteger": 1200},
                {"type": …"total"},     "valueInteger": 5000},
                {"type": …"cursor"},    "valueString": "<JSON: where to continue>"},
                {"type": …"runner"},    "valueString": "<id of the process running it>"}],
     "statusReason": {"text": "why it failed"}}

``processed``/``total`` are the progress; ``cursor`` is the job kind's own resume point; ``runner``
is present while a process holds the job. A client may cancel a job by updating its Task to
``status: cancelled`` (or deleting it): the runner notices at its next progress save and stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from server.fhir.instant import to_instant
from server.stores.base import Version

JOB_CODES = "http://yidang.org/fhir/CodeSystem/job"
"""Code system of job kinds (``reindex``)."""
JOB_PARAMETERS = "http://yidang.org/fhir/CodeSystem/job-parameter"
"""Code system naming Task.input / Task.output entries."""
ACTIVE = ("requested", "in-progress")
"""Statuses of a job that still has work to do."""
FINAL = ("completed", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class JobState:
    """What a runner needs from one stored version of a job's Task."""

    id: str
    version: int
    last_updated: int
    code: str | None
    status: str
    inputs: tuple[tuple[str, str], ...]
    processed: int
    total: int | None
    cursor: Any
    runner: str | None
    resource: dict[str, Any]

    def input(self, name: str) -> list[str]:
        return [value for key, value in self.inputs if key == name]


def _concept(code: str) -> dict[str, Any]:
    return {"coding": [{"system": JOB_PARAMETERS, "code": code}], "text": code}


def _name(item: dict[str, Any]) -> str | None:
    for coding in item.get("type", {}).get("coding", ()):
        if coding.get("system") == JOB_PARAMETERS:
            return coding.get("code")
    return None


def new_task(code: str, inputs: list[tuple[str, str]], description: str, now: int) -> dict[str, Any]:
    """A ``requested`` Task for a job of kind ``code`` with string ``inputs``."""
    task: dict[str, Any] = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": JOB_CODES, "code": code}], "text": f"${code}"},
        "description": description,
        "authoredOn": to_instant(now),
        "lastModified": to_instant(now),
    }
    if inputs:
        task["input"] = [{"type": _concept(name), "valueString": value} for name, value in inputs]
    return task


def parse(version: Version) -> JobState | None:
    """The job in a stored Task version; None when deleted or not one of ours."""
    if version.deleted or version.body is None:
        return None
    task = orjson.loads(version.body)
    code = next((c.get("code") for c in task.get("code", {}).get("coding", ()) if c.get("system") == JOB_CODES), None)
    if code is None:
        return None
    outputs = {_name(o): o for o in task.get("output", ())}
    processed = outputs.get("processed", {}).get("valueInteger")
    total = outputs.get("total", {}).get("valueInteger")
    return JobState(
        id=version.id,
        version=version.version,
        last_updated=version.last_updated,
        code=code,
        status=task.get("status", ""),
        inputs=tuple((n, i["valueString"]) for i in task.get("input", ())
                     if (n := _name(i)) is not None and isinstance(i.get("valueString"), str)),
        processed=processed if isinstance(processed, int) else 0,
        total=total if isinstance(total, int) else None,
        cursor=_cursor(outputs.get("cursor", {}).get("valueString")),
        runner=outputs.get("runner", {}).get("valueString"),
        resource=task,
    )


def _cursor(raw: object) -> Any:
    """The saved cursor; one that is not JSON (an edited Task) restarts the job from the beginning,
    which is always safe because job work is idempotent."""
    if not isinstance(raw, str):
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def updated(
    state: JobState,
    now: int,
    *,
    status: str | None = None,
    processed: int | None = None,
    total: int | None = None,
    cursor: Any = None,
    runner: str | None = None,
    release: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    """The next Task body: ``state``'s with the given fields changed (``release`` drops the runner)."""
    task = {k: v for k, v in state.resource.items() if k not in ("meta", "output")}
    new_status = status or state.status
    task["status"] = new_status
    task["lastModified"] = to_instant(now)
    period = dict(task.get("executionPeriod", {}))
    if new_status == "in-progress" and "start" not in period:
        period["start"] = to_instant(now)
    if new_status in FINAL:
        period["end"] = to_instant(now)
        period.setdefault("start", to_instant(now))
    if period:
        task["executionPeriod"] = period
    if reason is not None:
        task["statusReason"] = {"text": reason}
    values: list[tuple[str, str, Any]] = [("processed", "valueInteger", state.processed if processed is None
                                           else processed)]
    new_total = state.total if total is None else total
    if new_total is not None:
        values.append(("total", "valueInteger", new_total))
    new_cursor = state.cursor if cursor is None else cursor
    if new_cursor is not None and new_status not in FINAL:
        values.append(("cursor", "valueString", orjson.dumps(new_cursor).decode()))
    holder = None if release or new_status in FINAL else (runner or state.runner)
    if holder is not None:
        values.append(("runner", "valueString", holder))
    task["output"] = [{"type": _concept(name), key: value} for name, key, value in values]
    return task

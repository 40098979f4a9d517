"""Status, manifest, cancel, download and expiry of bulk jobs, for the HTTP layer.

A job is its Task (:mod:`server.jobs.tasks`); the status URL is ``[base]/_bulk/{task id}`` and the
files ``[base]/_bulk/{task id}/{Type}-{n}.ndjson``. Only the requesting client (the same Principal
subject and issuer) or the platform reaches them; anyone else gets the 404 of a job that does not
exist. A finished job expires ``bulk_retention`` seconds after it ended: its files and its Task are
removed (looked at on every status call and kick-off), and its URLs answer 404.

Status answers (IG 2.0 "Bulk Data Status Request"): 202 with ``X-Progress`` and ``Retry-After``
while it runs; 200 with the manifest when complete; 500 with an OperationOutcome naming the reason
when it failed (or when its files are gone) — never a manifest that is not true.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson

from server.access.principal import Principal
from server.bulk import files
from server.bulk.jobs.expiry import ended_at, expired, remove, sweep
from server.bulk.jobs.export import MANIFEST
from server.bulk.request import EXPORT, IMPORT, BulkRequest, file_url
from server.errors import Issue, NotFound
from server.fhir.instant import to_instant
from server.interactions.result import Result
from server.interactions.services import Services
from server.jobs import tasks
from server.jobs.tasks import JobState

CODES = (EXPORT, IMPORT)
RETRY_AFTER = "2"
NDJSON = "application/fhir+ndjson"


def _outcome(severity: str, code: str, text: str) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [Issue(severity, code, text).to_fhir()]}  # type: ignore[arg-type]


def may_reach(caller: Principal, owner: Principal) -> bool:
    """The requesting client itself, or the platform (authorization off: everyone is)."""
    if caller.is_open or caller.role == "platform":
        return True
    return caller.subject == owner.subject and caller.issuer == owner.issuer and caller.kind == owner.kind


async def job(svc: Services, job_id: str) -> tuple[JobState, BulkRequest]:
    """The caller's bulk job ``job_id`` (404 when there is none, it is someone else's, or expired)."""
    if not files.JOB_ID.match(job_id):
        raise NotFound(f"No bulk data job {job_id}")
    version = await svc.store.read("Task", job_id)
    state = tasks.parse(version) if version is not None else None
    raw = state.input("request") if state is not None else []
    if state is None or state.code not in CODES or not raw:
        raise NotFound(f"No bulk data job {job_id}")
    req = BulkRequest.from_json(raw[0])
    if not may_reach(svc.grant.principal, req.principal):
        raise NotFound(f"No bulk data job {job_id}")
    if expired(svc, state) or state.status == "cancelled":
        await remove(svc, job_id)
        raise NotFound(f"No bulk data job {job_id} (it expired)")
    return state, req


def read_manifest(directory: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = orjson.loads((directory / MANIFEST).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data


def manifest(svc: Services, state: JobState, req: BulkRequest, saved: dict[str, Any], base: str) -> dict[str, Any]:
    """The Bulk Data manifest (IG 2.0 "Complete Status", and the ``$import`` draft's)."""
    body: dict[str, Any] = {
        "transactionTime": to_instant(req.transaction_time),
        "request": req.request,
        "requiresAccessToken": not req.principal.is_open,
    }
    if state.code == EXPORT:
        body["output"] = [{"type": o["type"], "url": file_url(base, state.id, o["name"]), "count": o["count"]}
                          for o in saved.get("output", ())]
    else:
        body["output"] = [{"type": t, "count": n} for t, n in sorted(saved.get("counts", {}).items())]
    body["error"] = [{"type": "OperationOutcome", "url": file_url(base, state.id, o["name"]), "count": o["count"]}
                     for o in saved.get("errors", ())]
    end = ended_at(state)
    if end is not None:
        body["extension"] = {"http://yidang.org/fhir/bulk/expires":
                             to_instant(end + int(svc.settings.bulk_retention * 1_000_000))}
    return body


async def status(svc: Services, job_id: str, base: str) -> Result:
    await sweep(svc)
    state, req = await job(svc, job_id)
    if state.status in tasks.ACTIVE:
        done = state.processed
        progress = f"{done} resources {'exported' if state.code == EXPORT else 'read'}"
        if state.total:
            progress += f" of {state.total}"
        return Result(202, resource=_outcome("information", "informational", f"In progress: {progress}"),
                      headers={"X-Progress": progress, "Retry-After": RETRY_AFTER})
    if state.status == "failed":
        reason = state.resource.get("statusReason", {}).get("text", "unknown error")
        return Result(500, resource=_outcome("error", "exception", f"The bulk {req.kind} failed: {reason}"))
    saved = read_manifest(files.job_dir(svc.settings, job_id))
    if saved is None:
        return Result(500, resource=_outcome("error", "exception",
                                             f"The bulk {req.kind} completed but its files are gone"))
    return Result(200, resource=manifest(svc, state, req, saved, base))


async def cancel(svc: Services, job_id: str) -> Result:
    """DELETE on the status URL: the job stops at its next page, its files and Task are removed."""
    await job(svc, job_id)
    await remove(svc, job_id)
    return Result(202, resource=_outcome("information", "informational", f"Bulk data job {job_id} was cancelled "
                                         "and its files removed"))


async def download(svc: Services, job_id: str, name: str, accepts_gzip: bool) -> Result:
    """One output or error file of a completed job."""
    state, req = await job(svc, job_id)
    saved = read_manifest(files.job_dir(svc.settings, job_id)) if state.status == "completed" else None
    listed = {o["name"] for o in [*(saved or {}).get("output", ()), *(saved or {}).get("errors", ())]}
    if saved is None or not files.NAME.match(name) or name not in listed:
        raise NotFound(f"No file {name} in bulk data job {job_id}")
    gzipped = req.gzip and not name.startswith("OperationOutcome")
    path = files.on_disk(files.job_dir(svc.settings, job_id), name, gzipped)
    if not path.is_file():
        raise NotFound(f"The file {name} of bulk data job {job_id} is gone")
    headers = {"Content-Encoding": "gzip"} if gzipped and accepts_gzip else {}
    chunks: AsyncIterator[bytes] = files.read(path, gzipped, decompress=not accepts_gzip)
    return Result(200, headers=headers, stream=(NDJSON, chunks))

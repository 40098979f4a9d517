"""The ``$import`` job: NDJSON lines upserted with their ids, through the ordinary write path.

Every line is a PUT of ``Type/id`` (:func:`server.interactions.update.update`), written
:data:`SAVE_EVERY` lines to a store session (:func:`upsert_many`), under the grant of
the Principal that asked (rebuilt when the job runs): validated, stamped, checked by the grant,
indexed and versioned like any update. A line that is not JSON, not a resource of the input's type,
has no id, or is refused by the write path is reported — one OperationOutcome line naming the input
and the line number — and the import goes on. The cursor (input, line, counts, error file size) is
saved as the job runs; a restart resumes after the last saved line (PUT is idempotent, so lines
repeated after a crash change nothing).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from server.bulk import files
from server.bulk.files import UPLOAD, incoming
from server.bulk.jobs.expiry import sweep
from server.bulk.jobs.export import Acting, write_manifest
from server.bulk.request import IMPORT as CODE
from server.bulk.request import BulkRequest
from server.errors import FhirError
from server.fhir.ids import is_valid_id
from server.fhir.json import dumps
from server.interactions import update
from server.interactions.services import Services
from server.jobs.runner import Job

ERRORS = "OperationOutcome-1.ndjson"
SAVE_EVERY = 200
MAX_LINE = 64 * 1024 * 1024


def source_path(directory: Path, source: str) -> Path:
    """The file of an input; an upload is moved from :func:`incoming` into the job's directory
    the first time (so it goes with the job's files)."""
    if not source.startswith(UPLOAD):
        return Path(source)
    name = source[len(UPLOAD):]
    target = directory / name
    waiting = incoming(directory) / name
    if not target.exists() and waiting.exists():
        directory.mkdir(parents=True, exist_ok=True)
        waiting.replace(target)
    return target


def lines(path: Path, skip: int) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) after the first ``skip`` lines; blank lines are passed over."""
    with path.open("rb") as source:
        for number, raw in enumerate(source, start=1):
            if number <= skip:
                continue
            line = raw.strip()
            yield number, line


def error_line(source: str, number: int, message: str) -> bytes:
    return dumps({"resourceType": "OperationOutcome", "issue": [{
        "severity": "error", "code": "processing",
        "diagnostics": f"{source} line {number}: {message}",
        "location": [f"line {number}"],
    }]})


def parse_line(svc: Services, expected: str | None, line: bytes) -> dict[str, Any]:
    """One NDJSON line as a resource to PUT. Raises ValueError naming the problem."""
    if len(line) > MAX_LINE:
        raise ValueError(f"the line is longer than {MAX_LINE} bytes")
    try:
        resource: Any = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error})") from None
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise ValueError("not a FHIR resource (no resourceType)")
    type_ = resource["resourceType"]
    if expected is not None and type_ != expected:
        raise ValueError(f"a {type_} in an input of type {expected}")
    if type_ not in svc.resource_types:
        raise ValueError(f"'{type_}' is not a resource type")
    if not is_valid_id(resource.get("id")):
        raise ValueError("the resource has no valid id (an import keeps ids)")
    return resource


async def upsert(svc: Services, expected: str | None, line: bytes) -> str:
    """Store one NDJSON line as a PUT; returns its type. Raises ValueError/FhirError naming the problem."""
    resource = parse_line(svc, expected, line)
    await update.update(svc, resource["resourceType"], resource["id"], resource)
    return str(resource["resourceType"])


async def upsert_many(svc: Services, expected: str | None, batch: list[tuple[int, bytes]]
                      ) -> list[tuple[int, str | None, str | None]]:
    """Store a run of lines: (line number, type stored or None, error message or None) for each.

    The lines that parse are written in one store session (one commit instead of one per line: the
    commit is most of an import's cost); when that session fails — a line the write path refuses, a
    lost race — it is rolled back whole and its lines are written one by one, so only the bad line
    fails and is named, as if each had been sent alone."""
    out: list[tuple[int, str | None, str | None]] = []
    parsed: list[tuple[int, dict[str, Any]]] = []
    for number, line in batch:
        try:
            parsed.append((number, parse_line(svc, expected, line)))
        except ValueError as error:
            out.append((number, None, str(error)))
    if len(parsed) > 1:
        try:
            async with svc.session() as session:
                for _, resource in parsed:
                    await update.update(svc, resource["resourceType"], resource["id"], dict(resource),
                                        session=session)
            out.extend((number, str(resource["resourceType"]), None) for number, resource in parsed)
            return sorted(out, key=lambda item: item[0])
        except FhirError:
            pass  # below, line by line
    for number, resource in parsed:
        try:
            await update.update(svc, resource["resourceType"], resource["id"], resource)
            out.append((number, str(resource["resourceType"]), None))
        except FhirError as error:
            out.append((number, None, error.message))
    return sorted(out, key=lambda item: item[0])


class ImportJob:
    """The ``bulk-import`` job kind (Task input ``request``: a :class:`BulkRequest` as JSON)."""

    code = CODE

    def __init__(self, acting: Acting) -> None:
        self.acting = acting

    @staticmethod
    async def _store(svc: Services, expected: str | None, batch: list[tuple[int, bytes]], shown: str,
                     counts: dict[str, int]) -> list[bytes]:
        """Write a run of lines, counting what was stored per type; the error lines of the rest."""
        failed: list[bytes] = []
        for number, type_, message in await upsert_many(svc, expected, batch):
            if type_ is not None:
                counts[type_] = counts.get(type_, 0) + 1
            else:
                failed.append(error_line(shown, number, message or "refused"))
        return failed

    async def run(self, job: Job) -> None:
        await sweep(job.svc)
        req = BulkRequest.from_json(job.state.input("request")[0])
        svc = await self.acting.services(job.svc, req.principal)
        directory = files.job_dir(svc.settings, job.id)
        cursor: dict[str, Any] = job.state.cursor if isinstance(job.state.cursor, dict) else \
            {"i": 0, "line": 0, "counts": {}, "errors": 0, "size": 0}
        counts: dict[str, int] = dict(cursor["counts"])
        errors, size = int(cursor["errors"]), int(cursor["size"])
        processed = job.state.processed
        if (directory / ERRORS).exists():  # error lines written after the last saved cursor
            with (directory / ERRORS).open("r+b") as out:
                out.truncate(size)
        for i in range(int(cursor["i"]), len(req.inputs)):
            expected, source = req.inputs[i]
            shown = source[len(UPLOAD):] if source.startswith(UPLOAD) else source
            skip = int(cursor["line"]) if i == cursor["i"] else 0
            failed: list[bytes] = []
            number = skip
            path = source_path(directory, source)
            if not path.is_file():
                failed.append(error_line(shown, 0, "the input file cannot be read"))
            else:
                batch: list[tuple[int, bytes]] = []
                for number, line in lines(path, skip):
                    if line:
                        batch.append((number, line))
                    if number % SAVE_EVERY == 0:
                        failed += await self._store(svc, expected or None, batch, shown, counts)
                        processed += len(batch)
                        batch = []
                        size = files.append(directory / ERRORS, failed, size, False)[0] if failed else size
                        errors += len(failed)
                        failed = []
                        await job.progress(processed=processed, cursor={"i": i, "line": number, "counts": counts,
                                                                        "errors": errors, "size": size})
                failed += await self._store(svc, expected or None, batch, shown, counts)
                processed += len(batch)
            if failed:
                size = files.append(directory / ERRORS, failed, size, False)[0]
                errors += len(failed)
            await job.progress(processed=processed, cursor={"i": i + 1, "line": 0, "counts": counts,
                                                            "errors": errors, "size": size})
        directory.mkdir(parents=True, exist_ok=True)
        write_manifest(directory, {"counts": counts, "processed": processed,
                                   "errors": [{"name": ERRORS, "count": errors}] if errors else []})
        await job.progress(processed=processed, cursor={"i": len(req.inputs), "line": 0, "counts": counts,
                                                        "errors": errors, "size": size}, force=True)

"""The ``$export`` job: every requested type in keyset pages of the store, as the caller may see it.

For each type the query is the level's condition (a patient compartment, the Group members' or
the ``patient`` parameter's compartments), ``_since``, and the ``_typeFilter`` queries (any of
them), compiled by the search parser; the caller's grant — rebuilt from the Policy for the
Principal stored with the job, with the patients' Consents where they apply — restricts it with
:meth:`~server.access.grant.Grant.restrict`, exactly as a search would. Each page is masked above
the caller's clearance (:mod:`server.grading`, as every response is), subset by ``_elements``, and
appended to the type's file; then the cursor (type, patient chunk, keyset, file sizes) is saved.

Memory is bounded by one page (``bulk_page_size`` resources) whatever the data's size. A restart
resumes after the last saved cursor (files truncated to their saved sizes), so no resource is
written twice or lost; the manifest (``manifest.json`` beside the files) is written only when
every type is done.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from profiles.definitions import core
from profiles.model import core_model
from server.access.grant import OPEN_GRANT
from server.access.policy import Policy
from server.access.principal import Principal
from server.bulk import files
from server.bulk.jobs.expiry import sweep
from server.bulk.request import EXPORT as CODE
from server.bulk.request import BulkRequest
from server.fhir.json import dumps, load_stored
from server.fhir.summary import elements as subset_elements
from server.grading.body import mask_body
from server.interactions.masking import policy_of, reader_clearance
from server.interactions.services import Services
from server.jobs.runner import Job, JobStopped
from server.search.compartment import OWNER, compartment, membership
from server.search.model import Always, And, Condition, FieldTest, Match, Or, Query, ResourceTest
from server.search.parse import parse_criteria
from server.stores.base import Version

PATIENT_CHUNK = 500
"""Patients per query of a Group or ``patient`` export (an ``in`` list the stores bind)."""
MANIFEST = "manifest.json"
NOTES = "OperationOutcome-1.ndjson"

Prepare = Callable[[Services], Awaitable[Services]]
"""Adds what a request's grant needs besides the policy (the patients' Consents)."""


class Acting:
    """Services acting for a stored Principal: the grant the Policy gives it now."""

    def __init__(self, prepare: Prepare | None = None) -> None:
        self._prepare = prepare
        self._policy: Policy | None = None

    async def services(self, svc: Services, principal: Principal) -> Services:
        if principal.is_open:
            return svc.for_grant(OPEN_GRANT)
        if self._policy is None:
            self._policy = Policy(svc.registry, core(), svc.resource_types)
        acting = svc.for_grant(self._policy.grant(principal))
        return await self._prepare(acting) if self._prepare is not None else acting


def patients_condition(svc: Services, type_: str, ids: Sequence[str]) -> Condition:
    """Resources of ``type_`` in the Patient compartment of any of ``ids``."""
    comp = compartment(svc.registry.definitions, "Patient")
    assert comp is not None
    branches: list[Condition] = []
    for param in comp.members.get(type_, ()):
        if param == OWNER:
            branches.append(ResourceTest("id", "in", tuple(ids)))
        else:
            branches.append(Match("reference", param, (FieldTest("ref_type", "eq", "Patient"),
                                                       FieldTest("ref_id", "in", tuple(ids)))))
    if not branches:
        return ResourceTest("id", "in", ())
    return branches[0] if len(branches) == 1 else Or(tuple(branches))


def type_condition(svc: Services, req: BulkRequest, type_: str, chunk: Sequence[str] | None) -> Condition:
    """What of ``type_`` the request selects (before the grant restricts it)."""
    items: list[Condition] = []
    if chunk is not None:
        items.append(patients_condition(svc, type_, chunk))
    elif req.level != "system":
        comp = compartment(svc.registry.definitions, "Patient")
        assert comp is not None
        items.append(membership(comp, None, (type_,)))
    if req.since is not None:
        items.append(ResourceTest("last_updated", "gt", req.since))
    filters = [parse_criteria(type_, q, svc.registry) for q in req.type_filters.get(type_, ())]
    if filters:
        items.append(filters[0] if len(filters) == 1 else Or(tuple(filters)))
    if not items:
        return Always()
    return items[0] if len(items) == 1 else And(tuple(items))


def chunks(req: BulkRequest) -> list[list[str] | None]:
    if req.patients is None:
        return [None]
    ids = list(req.patients)
    return [ids[i:i + PATIENT_CHUNK] for i in range(0, len(ids), PATIENT_CHUNK)] or [[]]


class Renderer:
    """A stored version as one NDJSON line for this caller: masked, then subset by ``_elements``."""

    def __init__(self, svc: Services, req: BulkRequest) -> None:
        self.svc = svc
        self.masking = not svc.grant.open and svc.settings.grading
        self.policy = policy_of(svc) if self.masking else None
        self.clearance = reader_clearance(svc) if self.masking else 0
        self.elements = req.elements

    def names(self, type_: str) -> list[str]:
        return [n for n in self.elements if "." not in n or n.startswith(type_ + ".")]

    def line(self, version: Version) -> bytes:
        body: bytes | dict[str, Any] = version.body or b"{}"
        if self.policy is not None:
            masked = mask_body(body, self.policy, self.clearance, self.svc.grant.lifts)
            if masked is not None:
                body = masked
        names = self.names(version.type) if self.elements else []
        if names:
            resource = body if isinstance(body, dict) else load_stored(body)
            body = subset_elements(resource, names, core_model())
        if isinstance(body, dict):
            return dumps(body)
        return body if b"\n" not in body else dumps(load_stored(body))


def close(directory: Path, cur: dict[str, Any], gzipped: bool, done: list[dict[str, Any]]) -> None:
    """The file being written is complete: its gzip trailer, and it joins ``done``."""
    files.finish(files.on_disk(directory, cur["name"], gzipped), cur["size"], gzipped, cur["crc"], cur["raw"])
    done.append({"type": cur["type"], "name": cur["name"], "count": cur["count"]})


def write_manifest(directory: Path, data: dict[str, Any]) -> None:
    """Atomically: a reader sees the whole manifest or none."""
    directory.mkdir(parents=True, exist_ok=True)
    temp = directory / (MANIFEST + ".tmp")
    temp.write_bytes(orjson.dumps(data))
    os.replace(temp, directory / MANIFEST)


class ExportJob:
    """The ``bulk-export`` job kind (Task input ``request``: a :class:`BulkRequest` as JSON)."""

    code = CODE

    def __init__(self, acting: Acting) -> None:
        self.acting = acting

    async def run(self, job: Job) -> None:
        directory = files.job_dir(job.svc.settings, job.id)
        await sweep(job.svc)  # other jobs' expired files go as a new one starts
        try:
            await self._run(job, directory)
        except JobStopped:
            files.remove(directory)  # cancelled or deleted: nothing of it stays
            raise

    async def _run(self, job: Job, directory: Path) -> None:
        req = BulkRequest.from_json(job.state.input("request")[0])
        svc = await self.acting.services(job.svc, req.principal)
        settings = svc.settings
        page = max(1, settings.bulk_page_size)
        per_file = max(1, settings.bulk_file_resources)
        cursor: dict[str, Any] = job.state.cursor if isinstance(job.state.cursor, dict) else \
            {"t": 0, "k": 0, "after": None, "done": [], "cur": None}
        done: list[dict[str, Any]] = cursor["done"]
        cur: dict[str, Any] | None = cursor["cur"]
        keep = {files.on_disk(directory, d["name"], req.gzip).name for d in done}
        if cur is not None:
            keep.add(files.on_disk(directory, cur["name"], req.gzip).name)
        files.keep_only(directory, keep)  # files begun after the last saved cursor
        renderer = Renderer(svc, req)
        processed = job.state.processed
        groups = chunks(req)
        for t in range(int(cursor["t"]), len(req.types)):
            type_ = req.types[t]
            if svc.grant.visible(type_, "search") is None:
                continue
            first_k = int(cursor["k"]) if t == cursor["t"] else 0
            for k in range(first_k, len(groups)):
                after = cursor["after"] if (t == cursor["t"] and k == cursor["k"]) else None
                where = type_condition(svc, req, type_, groups[k])
                while True:
                    query = Query((type_,), where, count=page, after=tuple(after) if after is not None else None)
                    result = await svc.store.search(svc.grant.restrict(query))
                    rows = [v for v in result.rows if v.body is not None and not v.deleted]
                    start = 0
                    while start < len(rows):
                        if cur is None or cur["type"] != type_ or cur["count"] >= per_file:
                            if cur is not None and cur["count"]:
                                close(directory, cur, req.gzip, done)
                            part = 1 + sum(1 for d in done if d["type"] == type_)
                            cur = {"type": type_, "name": files.file_name(type_, part), "count": 0, "size": 0,
                                   "crc": 0, "raw": 0}
                        room = per_file - cur["count"]
                        batch = rows[start:start + room]
                        path = files.on_disk(directory, cur["name"], req.gzip)
                        cur["size"], cur["crc"], cur["raw"] = files.append(
                            path, (renderer.line(v) for v in batch), cur["size"], req.gzip, cur["crc"], cur["raw"])
                        cur["count"] += len(batch)
                        start += len(batch)
                    processed += len(rows)
                    after = None if result.next_after is None else list(result.next_after)
                    cursor = {"t": t, "k": k, "after": after, "done": done, "cur": cur}
                    if after is None:
                        cursor = {"t": t, "k": k + 1, "after": None, "done": done, "cur": cur} if k + 1 < len(groups) \
                            else {"t": t + 1, "k": 0, "after": None, "done": done, "cur": cur}
                    await job.progress(processed=processed, cursor=cursor)
                    if after is None:
                        break
        if cur is not None and cur["count"]:
            close(directory, cur, req.gzip, done)
            cur = None
        errors = []
        if req.notes:  # parameters ignored at kick-off, as informational OperationOutcomes
            notes = [dumps({"resourceType": "OperationOutcome", "issue": [
                {"severity": "information", "code": "informational", "diagnostics": n}]}) for n in req.notes]
            files.append(directory / NOTES, notes, 0, False)
            errors.append({"name": NOTES, "count": len(notes)})
        write_manifest(directory, {"output": done, "errors": errors, "processed": processed})
        await job.progress(processed=processed, cursor={"t": len(req.types), "k": 0, "after": None,
                                                        "done": done, "cur": None}, force=True)

"""Bulk Data kick-off (IG 2.0, http://hl7.org/fhir/uv/bulkdata/export.html): ``$export`` at system,
``Patient`` and ``Group/[id]`` level, and ``$import`` (the draft / HAPI form), as background jobs
(:mod:`server.bulk`).

Kick-off needs ``Prefer: respond-async`` (400 otherwise) and answers 202 with ``Content-Location``
naming the status URL. ``$export`` parameters: ``_type``, ``_since``, ``_typeFilter``,
``_outputFormat`` (``application/fhir+ndjson``, ``application/ndjson``, ``ndjson``), ``_elements``,
``patient`` (Patient and Group level; POST with Parameters). Unknown parameters are a 400 under
``Prefer: handling=strict``, else ignored and named in the manifest's ``error`` file. The export
holds exactly what the caller may search (its grant is rebuilt for the job), masked like every
response.

``$import``: ``POST [base]/$import`` with an NDJSON body (``Content-Type: application/fhir+ndjson``),
or with Parameters ``inputFormat`` (``application/fhir+ndjson``) and ``input`` parts of ``type`` and
``url`` — a ``file://`` URL or path inside a directory of ``bulk_import_dirs``.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

from server.bulk import files
from server.bulk.files import UPLOAD, incoming
from server.bulk.request import EXPORT, IMPORT, BulkRequest, Level, status_url
from server.errors import BadRequest, Forbidden, InvalidSearch, Issue, NotFound, NotSupported
from server.fhir.instant import from_datetime
from server.fhir.json import load_resource
from server.interactions.result import Result
from server.interactions.visibility import can_see
from server.operations.parameters import from_parameters
from server.operations.registry import Invocation, Operation
from server.search.compartment import compartment
from server.search.parse import parse_criteria
from server.search.results import elements as parse_elements

FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
EXPORT_PARAMS = frozenset({"_type", "_since", "_typeFilter", "_outputFormat", "_elements", "patient"})
ASYNC = re.compile(r"(^|[,;\s])respond-async($|[,;\s])")
FILTERS = re.compile(r",(?=[A-Z][A-Za-z]*\?)")
"""Where one ``_typeFilter`` value lists several queries (a comma before ``Type?``)."""
NDJSON_TYPES = frozenset({"application/fhir+ndjson", "application/ndjson", "application/x-ndjson"})


def _outcome(text: str) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [Issue("information", "informational", text).to_fhir()]}


def check_async(inv: Invocation) -> None:
    if not ASYNC.search(inv.headers.get("prefer", "")):
        raise BadRequest(f"${inv.name} runs asynchronously: send the header 'Prefer: respond-async'")
    accept = inv.headers.get("accept")
    if accept and "json" not in accept and "*/*" not in accept:
        raise BadRequest(f"${inv.name} answers application/fhir+json (Accept: {accept})")


def _strings(inv: Invocation, name: str) -> list[str]:
    out: list[str] = []
    for value in inv.all(name):
        if not isinstance(value, str):
            raise BadRequest(f"{name} takes a string value", expression=(name,))
        out += [v.strip() for v in value.split(",") if v.strip()]
    return out


def _since(inv: Invocation) -> int | None:
    raw = inv.all("_since")
    if not raw:
        return None
    value = raw[-1]
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"_since: '{value}' is not an instant", expression=("_since",)) from None
    if parsed.tzinfo is None:
        raise BadRequest(f"_since: '{value}' has no time zone (an instant has one)", expression=("_since",))
    return from_datetime(parsed)


def _patients(inv: Invocation) -> list[str] | None:
    values = inv.all("patient")
    if not values:
        return None
    if inv.level == "system":
        raise BadRequest("patient is a parameter of Patient and Group level $export", expression=("patient",))
    ids: list[str] = []
    for value in values:
        ref = value.get("reference") if isinstance(value, dict) else value
        if not isinstance(ref, str) or not ref.startswith("Patient/"):
            raise BadRequest("patient takes references to Patients (Patient/id)", expression=("patient",))
        ids += [r.strip().removeprefix("Patient/") for r in ref.split(",") if r.strip()]
    return ids


async def _group_members(inv: Invocation) -> list[str]:
    svc = inv.svc
    group = await svc.store.read("Group", inv.id or "")
    if group is None or group.deleted or group.body is None or not (svc.grant.open or await can_see(svc, group)):
        raise NotFound(f"Group/{inv.id} is not known")
    resource = load_resource(group.body)
    members: list[str] = []
    for member in resource.get("member", ()):
        ref = member.get("entity", {}).get("reference", "") if isinstance(member, dict) else ""
        if isinstance(ref, str) and "Patient/" in ref:
            members.append(ref.rsplit("Patient/", 1)[1].split("/")[0])
    return list(dict.fromkeys(members))


def _request_url(inv: Invocation) -> str:
    path = "/".join(p for p in (inv.type, inv.id) if p)
    query = [(k, v) for k, v in inv.params if isinstance(v, str)]
    return f"{inv.base}/{path + '/' if path else ''}${inv.name}" + (f"?{urlencode(query)}" if query else "")


async def export(inv: Invocation) -> Result:
    svc = inv.svc
    check_async(inv)
    if svc.jobs is None:
        raise NotSupported("Background jobs are not running on this server")
    notes: list[str] = []
    for name, _ in inv.params:
        if name not in EXPORT_PARAMS:
            if inv.strict:
                raise BadRequest(f"$export does not support the parameter '{name}'", expression=(name,))
            notes.append(f"Parameter {name} was ignored: not supported by $export here")
    formats = [v for v in inv.all("_outputFormat") if v is not None]
    for value in formats:
        if value not in FORMATS:
            raise BadRequest(f"_outputFormat '{value}' is not supported; use application/fhir+ndjson",
                             expression=("_outputFormat",))
    level: Level = "system" if inv.level == "system" else "group" if inv.type == "Group" else "patient"
    comp = compartment(svc.registry.definitions, "Patient")
    assert comp is not None
    explicit = list(dict.fromkeys(_strings(inv, "_type")))
    for name in explicit:
        if name not in svc.resource_types:
            raise BadRequest(f"_type: '{name}' is not a resource type", expression=("_type",))
        if level != "system" and not comp.contains_type(name):
            raise BadRequest(f"_type: {name} resources are never in a Patient compartment", expression=("_type",))
        if svc.grant.visible(name, "search") is None:
            raise Forbidden(f"The token's scopes and role {svc.grant.principal.role} do not allow reading {name}")
    if explicit:
        types = explicit
    elif level == "system":
        types = sorted(t for t in (await svc.store.stats())["resources"] if t in svc.resource_types)
    else:
        types = list(comp.types())
    types = [t for t in types if svc.grant.visible(t, "search") is not None]
    filters: dict[str, list[str]] = {}
    for value in (part for raw in inv.all("_typeFilter") if isinstance(raw, str) for part in FILTERS.split(raw)):
        type_, sep, query = value.partition("?")
        if not sep or type_ not in svc.resource_types:
            raise BadRequest(f"_typeFilter '{value}' is not Type?search-parameters", expression=("_typeFilter",))
        try:
            parse_criteria(type_, query, svc.registry)
        except InvalidSearch as error:
            raise BadRequest(f"_typeFilter '{value}': {error.message}", expression=("_typeFilter",)) from None
        if type_ in types:
            filters.setdefault(type_, []).append(query)
        else:
            notes.append(f"_typeFilter {value} was ignored: {type_} is not exported")
    names = tuple(n for value in inv.all("_elements") if isinstance(value, str) for n in parse_elements(value))
    patients = _patients(inv)
    if level == "group":
        members = await _group_members(inv)
        patients = members if patients is None else [p for p in patients if p in set(members)]
    req = BulkRequest(
        kind="export", request=_request_url(inv), transaction_time=svc.clock(), principal=svc.grant.principal,
        level=level, types=tuple(types), since=_since(inv), type_filters=filters, elements=names,
        patients=None if patients is None else tuple(patients), group=inv.id if level == "group" else None,
        gzip=svc.settings.bulk_gzip, notes=tuple(notes),
    )
    where = f"Group/{inv.id}" if level == "group" else "Patient" if level == "patient" else "system"
    task_id = await svc.jobs.submit(EXPORT, [("request", req.to_json())], f"$export ({where}) of {len(types)} types")
    location = status_url(inv.base, task_id)
    return Result(202, resource=_outcome(f"Export accepted; its status is at {location}"),
                  headers={"Content-Location": location})


def _allowed_path(inv: Invocation, url: str) -> str:
    """The file an ``input`` url names, when it lies inside a directory the server may read."""
    if url.startswith(("http://", "https://")):
        raise BadRequest(f"input url {url}: only files the server may read (file://) are imported",
                         expression=("input",))
    path = Path(url.removeprefix("file://"))
    if not path.is_absolute():
        raise BadRequest(f"input url {url} is not an absolute file path", expression=("input",))
    resolved = path.resolve()
    allowed = [Path(d).resolve() for d in inv.svc.settings.bulk_import_dirs]
    if not any(resolved.is_relative_to(d) for d in allowed):
        raise Forbidden(f"input url {url} is outside the directories this server imports from (bulk_import_dirs)")
    if not resolved.is_file():
        raise BadRequest(f"input url {url} is not a readable file", expression=("input",))
    return str(resolved)


def _import_inputs(inv: Invocation) -> list[tuple[str, str]]:
    media = inv.content_type.split(";", 1)[0].strip().lower()
    if media in NDJSON_TYPES:
        if not inv.body.strip():
            raise BadRequest("The NDJSON body is empty")
        name = f"upload-{uuid4().hex}.ndjson"
        folder = incoming(files.root(inv.svc.settings) / "x")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(inv.body)
        return [("", UPLOAD + name)]
    if not inv.body.strip():
        raise BadRequest("$import takes an NDJSON body or Parameters with input parts (type, url)")
    body = load_resource(inv.body)
    if body.get("resourceType") != "Parameters":
        raise BadRequest("$import takes an NDJSON body or Parameters with input parts (type, url)")
    params = from_parameters(body)
    formats = [v for k, v in params if k == "inputFormat"]
    if any(f not in FORMATS for f in formats):
        raise BadRequest(f"inputFormat {formats[0]} is not supported; use application/fhir+ndjson",
                         expression=("inputFormat",))
    inputs: list[tuple[str, str]] = []
    for key, value in params:
        if key != "input":
            continue
        parts = dict(value) if isinstance(value, list) else {}
        type_, url = parts.get("type"), parts.get("url")
        if not isinstance(url, str):
            raise BadRequest("every input needs a url", expression=("input",))
        if type_ is not None and type_ not in inv.svc.resource_types:
            raise BadRequest(f"input type '{type_}' is not a resource type", expression=("input",))
        inputs.append((type_ or "", _allowed_path(inv, url)))
    if not inputs:
        raise BadRequest("$import needs at least one input (type, url)", expression=("input",))
    return inputs


async def import_(inv: Invocation) -> Result:
    svc = inv.svc
    check_async(inv)
    if svc.jobs is None:
        raise NotSupported("Background jobs are not running on this server")
    inputs = _import_inputs(inv)
    req = BulkRequest(kind="import", request=_request_url(inv), transaction_time=svc.clock(),
                      principal=svc.grant.principal, inputs=tuple(inputs))
    task_id = await svc.jobs.submit(IMPORT, [("request", req.to_json())], f"$import of {len(inputs)} inputs")
    location = status_url(inv.base, task_id)
    return Result(202, resource=_outcome(f"Import accepted; its status is at {location}"),
                  headers={"Content-Location": location})


OPERATIONS = [
    Operation(name="export", levels=frozenset({"system"}), handler=export,
              definition="http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
              documentation="Bulk Data export of everything the caller may read (asynchronous)"),
    Operation(name="export", levels=frozenset({"type"}), handler=export, types=frozenset({"Patient"}),
              definition="http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
              documentation="Bulk Data export of the Patient compartments the caller may read (asynchronous)"),
    Operation(name="export", levels=frozenset({"instance"}), handler=export, types=frozenset({"Group"}),
              definition="http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
              documentation="Bulk Data export of the Group members' Patient compartments (asynchronous)"),
    Operation(name="import", levels=frozenset({"system"}), handler=import_, affects_state=True, raw_body=True,
              documentation="Bulk Data import of NDJSON (upload or files the server may read; asynchronous)"),
]

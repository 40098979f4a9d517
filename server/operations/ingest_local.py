"""``$ingest-local`` and ``$convert-local``: local data sets (CSV/JSON/XML) pushed over HTTP.

``POST [base]/$ingest-local?dataset=NAME&source=CODE`` with the file as the body (``raw_body``: not
parsed as FHIR) checks and converts it (:mod:`profiles.datasets`), stores each person atomically,
several persons per transaction (:mod:`profiles.datasets.delivery`; identifiers of stored Patients
merged, see :func:`profiles.datasets.run.prepare`), and answers a Parameters with the counts
(``records_*``: total, accepted and rejected by QC, stored, failed = refused by the server; ``persons``,
``transactions``, ``persons_failed``, ``created``) and the QC report, built after delivery
(``report``, JSON text).
``POST [base]/$convert-local?dataset=NAME`` answers the transaction Bundle of every accepted record
without storing it (interface testing), with the counts in ``X-Records-*`` headers.
Both are custom operations in the sense of http://hl7.org/fhir/R4/operations.html.
"""

from __future__ import annotations

from typing import Any

import orjson

from profiles.datasets import readers, spec
from profiles.datasets.delivery import deliver, diagnostics
from profiles.datasets.run import Run, finish, run
from server.bundles.transaction import process
from server.errors import BadRequest, FhirError
from server.fhir.json import dumps, load_stored
from server.interactions.conditional import matches
from server.interactions.result import Result
from server.operations.registry import Invocation, Operation

_KINDS = {"text/csv": "csv", "application/json": "json", "application/xml": "xml", "text/xml": "xml"}


def _convert(inv: Invocation) -> Run:
    name = inv.get("dataset")
    if not isinstance(name, str) or not name:
        raise BadRequest("dataset is required (person, encounter, diagnosis, lab-report)", expression=("dataset",))
    try:
        dataset = spec.load(name)
    except KeyError as exc:
        raise BadRequest(str(exc.args[0]), expression=("dataset",)) from exc
    if not inv.body.strip():
        raise BadRequest("the request body must hold the data set (CSV, JSON array or XML)")
    kind = _KINDS.get(inv.content_type.split(";")[0].strip().lower()) or readers.sniff(inv.body)
    source = inv.get("source")
    try:
        return run(dataset, inv.body, kind=kind, source=source if isinstance(source, str) else None,
                   terminology=inv.svc.terminology)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc


def _counts(report: dict[str, Any]) -> dict[str, str]:
    return {f"X-Records-{k.split('_')[1].capitalize()}": str(report[k])
            for k in ("records_total", "records_accepted", "records_rejected")}


async def convert_local(inv: Invocation) -> Result:
    result = _convert(inv)
    entries: dict[str, dict[str, Any]] = {}
    for bundle in result.conversion.iter_bundles():
        for entry in bundle["entry"]:
            entries.setdefault(entry["fullUrl"], entry)
    return Result(200, resource={"resourceType": "Bundle", "type": "transaction", "entry": list(entries.values())},
                  headers=_counts(result.report))


async def ingest_local(inv: Invocation) -> Result:
    result = _convert(inv)
    svc = inv.svc

    async def search(type_: str, criteria: str, limit: int = 5) -> list[dict[str, Any]]:
        async with svc.session() as session:
            ids = await matches(svc, session, type_, criteria, limit=limit)
        versions = [await svc.store.read(type_, id_) for id_ in ids]
        return [load_stored(v.body) for v in versions if v is not None and v.body is not None]

    async def find(type_: str, criteria: list[str]) -> dict[str, dict[str, Any] | None]:
        found: dict[str, dict[str, Any] | None] = {}
        for c in criteria:
            stored = await search(type_, c, limit=2)
            found[c] = stored[0] if len(stored) == 1 else None
        return found

    async def submit(bundle: dict[str, Any]) -> list[str] | str:
        try:  # the transaction rewrites references in place: give it a copy, the batch may be retried
            response = await process(svc, load_stored(dumps(bundle)), base=inv.base)
        except FhirError as error:  # the OperationOutcome the server answers, for the report
            return diagnostics({"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in error.issues]})
        return [e.get("response", {}).get("status", "") for e in (response.resource or {}).get("entry", [])]

    delivery = await deliver(result.conversion.iter_bundles(), find=find, submit=submit, search=search)
    finish(result, delivery.failures, delivery.conflicts)  # the report says what was stored, per record
    report = result.report
    parameters = [{"name": k, "valueInteger": report[k]} for k in ("records_total", "records_accepted",
                                                                   "records_rejected", "records_stored",
                                                                   "records_failed")]
    parameters += [{"name": "persons", "valueInteger": delivery.persons},
                   {"name": "transactions", "valueInteger": delivery.transactions},
                   {"name": "persons_failed", "valueInteger": delivery.failed},
                   {"name": "created", "valueInteger": delivery.created},
                   *({"name": "failure", "valueString": f} for f in delivery.errors[:20]),
                   {"name": "report", "valueString": orjson.dumps(report).decode()}]
    return Result(200, resource={"resourceType": "Parameters", "parameter": parameters}, headers=_counts(report))


OPERATIONS = [
    Operation(name="ingest-local", levels=frozenset({"system"}), handler=ingest_local, affects_state=True,
              raw_body=True, documentation="Check, convert and store a local WS 363 data set (CSV/JSON/XML)"),
    Operation(name="convert-local", levels=frozenset({"system"}), handler=convert_local, affects_state=True,
              raw_body=True, documentation="Convert a local WS 363 data set to a transaction Bundle, storing nothing"),
]

"""``$ingest-local`` and ``$convert-local``: local data sets (CSV/JSON/XML) pushed over HTTP.

``POST [base]/$ingest-local?dataset=NAME&source=CODE`` with the file as the body (``raw_body``: not
parsed as FHIR) checks and converts it (:mod:`profiles.datasets`), stores one transaction per
person (identifiers of stored Patients merged, see :func:`profiles.datasets.run.prepare`) and
answers a Parameters with the counts and the QC report (``report``, JSON text).
``POST [base]/$convert-local?dataset=NAME`` answers the transaction Bundle of every accepted record
without storing it (interface testing), with the counts in ``X-Records-*`` headers.
Both are custom operations in the sense of http://hl7.org/fhir/R4/operations.html.
"""

from __future__ import annotations

from typing import Any

import orjson

from profiles.datasets import readers, spec
from profiles.datasets.run import Run, prepare, run
from server.bundles.transaction import process
from server.errors import BadRequest, FhirError
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
    for bundle in result.conversion.bundles:
        for entry in bundle["entry"]:
            entries.setdefault(entry["fullUrl"], entry)
    return Result(200, resource={"resourceType": "Bundle", "type": "transaction", "entry": list(entries.values())},
                  headers=_counts(result.report))


async def ingest_local(inv: Invocation) -> Result:
    result = _convert(inv)
    svc = inv.svc

    async def lookup(type_: str, criteria: str) -> dict[str, Any] | None:
        async with svc.session() as session:
            found = await matches(svc, session, type_, criteria)
        if len(found) != 1:
            return None
        version = await svc.store.read(type_, found[0])
        return orjson.loads(version.body) if version is not None and version.body is not None else None

    failed: list[str] = []
    for bundle in result.conversion.bundles:
        try:
            await process(svc, await prepare(bundle, lookup), base=inv.base)
        except FhirError as error:
            failed.append(str(error))
    report = result.report
    parameters = [{"name": k, "valueInteger": report[k]} for k in ("records_total", "records_accepted",
                                                                   "records_rejected")]
    parameters += [{"name": "transactions", "valueInteger": len(result.conversion.bundles)},
                   {"name": "transactions_failed", "valueInteger": len(failed)},
                   *({"name": "failure", "valueString": f} for f in failed[:20]),
                   {"name": "report", "valueString": orjson.dumps(report).decode()}]
    return Result(200, resource={"resourceType": "Parameters", "parameter": parameters}, headers=_counts(report))


OPERATIONS = [
    Operation(name="ingest-local", levels=frozenset({"system"}), handler=ingest_local, affects_state=True,
              raw_body=True, documentation="Check, convert and store a local WS 363 data set (CSV/JSON/XML)"),
    Operation(name="convert-local", levels=frozenset({"system"}), handler=convert_local, affects_state=True,
              raw_body=True, documentation="Convert a local WS 363 data set to a transaction Bundle, storing nothing"),
]

"""The mutual-recognition operations (issue 15 §3):

- ``POST [base]/$recognition-import?kind=catalog|qualifications`` with a ``text/csv`` body: the
  catalogue or the qualifications imported (idempotent); answers a Parameters summary (read,
  created, updated, unchanged, rejected and each rejected row with its reason). Platform only.
- ``POST [base]/$recognition-decision`` (Parameters ``result`` Reference to a DiagnosticReport,
  ``decision`` recognized | repeated, ``reason`` — required when repeated): recorded as a ``Basic``
  (:mod:`server.recognition.decisions`) with who and when; only on a result a look-up showed to the
  caller's institution (422 otherwise); 201 with the record.
- ``GET [base]/$recognition-stats?period=YYYY-MM[&institution=…]``: look-ups, persons, results
  shown, recognitions and repeats by reason, in total and by institution
  (:mod:`server.recognition.stats`). An institution sees its own.
"""

from __future__ import annotations

from typing import Any

from server.errors import BadRequest, Forbidden, Gone, NotFound, Unprocessable, UnsupportedMediaType
from server.fhir.json import load_stored
from server.interactions.result import Result
from server.operations.cross_lookup import _performer, was_shown
from server.operations.registry import Invocation, Operation
from server.recognition import decisions, reference, stats

KINDS = ("catalog", "qualifications")
CSV_TYPES = ("text/csv", "text/plain", "application/csv")


def _one(inv: Invocation, name: str) -> Any | None:
    found = inv.all(name)
    if len(found) > 1:
        raise BadRequest(f"Parameter {name} is given more than once", expression=(name,))
    return found[0] if found else None


async def run_import(inv: Invocation) -> Result:
    kind = _one(inv, "kind")
    if kind not in KINDS:
        raise BadRequest(f"kind '{kind or ''}' is not catalog or qualifications", expression=("kind",))
    media = inv.content_type.split(";")[0].strip().lower()
    if media not in CSV_TYPES:
        raise UnsupportedMediaType(f"$recognition-import reads a text/csv body, not '{media or 'none'}'")
    if kind == "catalog":
        summary = await reference.import_catalog(inv.svc, inv.body)
    else:
        summary = await reference.import_qualifications(inv.svc, inv.body)
    return Result(200, resource=summary.to_parameters())


def _reason(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return {"text": value} if value.strip() else None
    if isinstance(value, dict) and ("coding" in value or "text" in value):
        return value
    if isinstance(value, dict) and "code" in value:
        return {"coding": [value]}
    raise BadRequest("reason must be a string, a Coding or a CodeableConcept", expression=("reason",))


def _report_id(value: Any) -> str:
    ref = value.get("reference") if isinstance(value, dict) else value
    if not isinstance(ref, str):
        raise BadRequest("result must be a Reference to the DiagnosticReport decided on", expression=("result",))
    parts = [p for p in ref.split("/_history/")[0].split("/") if p]
    if len(parts) < 2 or parts[-2] != "DiagnosticReport":
        raise BadRequest(f"result '{ref}' is not a DiagnosticReport reference", expression=("result",))
    return parts[-1]


async def run_decision(inv: Invocation) -> Result:
    svc = inv.svc
    result = _one(inv, "result")
    if result is None:
        raise BadRequest("result (a Reference to a DiagnosticReport) is required", expression=("result",))
    report_id = _report_id(result)
    decision = _one(inv, "decision")
    if decision not in decisions.DECISIONS:
        raise BadRequest(f"decision '{decision or ''}' is not recognized or repeated", expression=("decision",))
    reason = _reason(_one(inv, "reason"))
    if decision == "repeated" and reason is None:
        raise BadRequest("reason is required when the test is repeated (国卫医发〔2022〕6号: the physician explains "
                         "why)", expression=("reason",))
    principal = svc.grant.principal
    if not await was_shown(svc, principal.institution, report_id):
        raise Unprocessable(f"DiagnosticReport/{report_id} was never shown to "
                            f"{principal.institution or 'this caller'} by $cross-lookup; only results shown can be "
                            "recognised or repeated")
    version = await svc.store.read("DiagnosticReport", report_id)
    if version is None:
        raise NotFound(f"DiagnosticReport/{report_id} is not known")
    if version.deleted or version.body is None:
        raise Gone(f"DiagnosticReport/{report_id} was deleted")
    org, value = _performer(load_stored(version.body))
    if value is None and org is not None:
        found = await svc.store.read("Organization", org)
        idents = load_stored(found.body).get("identifier") or [] if found is not None and found.body else []
        value = next((i.get("value") for i in idents if isinstance(i, dict) and i.get("value")), None)
    organization = (await reference.organizations_by_identifier(svc, [principal.institution])).get(
        principal.institution) if principal.institution else None
    made = decisions.Decision(report_id, str(decision), reason, principal.institution, principal.subject,
                              principal.kind, value or "")
    return await decisions.record(svc, made, organization)


async def run_stats(inv: Invocation) -> Result:
    svc = inv.svc
    period = stats.check_period(_one(inv, "period"))
    institution = _one(inv, "institution")
    principal = svc.grant.principal
    if not svc.grant.open and principal.role == "institution":
        if institution is not None and institution != principal.institution:
            raise Forbidden("An institution reads only its own recognition statistics")
        institution = principal.institution
    if institution is not None:
        if not isinstance(institution, str) or not institution.strip():
            raise BadRequest("institution must be an identifier value", expression=("institution",))
        if not await reference.organizations_by_identifier(svc, [institution]):
            raise BadRequest(f"unknown institution '{institution}': no Organization has this identifier",
                             expression=("institution",))
    return Result(200, resource=await stats.compute(svc, period, institution))


OPERATIONS = [
    Operation(name="recognition-import", levels=frozenset({"system"}), handler=run_import, affects_state=True,
              raw_body=True, definition="http://yidang.org/fhir/OperationDefinition/recognition-import",
              documentation="Import the recognition catalogue or qualifications from CSV (issue 15 §3)"),
    Operation(name="recognition-decision", levels=frozenset({"system"}), handler=run_decision, affects_state=True,
              definition="http://yidang.org/fhir/OperationDefinition/recognition-decision",
              documentation="Record that a result shown by $cross-lookup was recognised or repeated (with reason)"),
    Operation(name="recognition-stats", levels=frozenset({"system"}), handler=run_stats,
              definition="http://yidang.org/fhir/OperationDefinition/recognition-stats",
              documentation="Look-ups, persons, results shown, recognitions and repeats of a month"),
]

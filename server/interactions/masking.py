"""Data grading on the request path (issue 14 §3): the stamp every write gets, and the mask every
response gets (:mod:`server.grading` does the work; this module only finds the policy, the reader's
clearance and the consent hook for one request).

Responses are masked in one place, on the :class:`Result` an interaction returns to the HTTP layer:
a single resource (read, vread, create/update with ``Prefer: return=representation``, a
``_summary``), and every entry of a Bundle — search matches and includes, history, compartments,
``$everything``, batch/transaction responses (nested Bundles too). With the open grant, grading off,
or a clearance that covers the policy's highest level, nothing runs; a stored body whose stamped
level is within the clearance is passed on as its bytes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from server.access.redact import in_body
from server.fhir.json import dumps, load_stored
from server.grading.body import mask_body
from server.grading.clearance import clearance
from server.grading.grade import stamp as stamp_grade
from server.grading.policy import Policy, load_policy
from server.interactions.result import Result
from server.interactions.services import Services


def policy_of(svc: Services) -> Policy:
    """The grading policy in force (read once per path)."""
    return load_policy(svc.settings.grading_policy)


def reader_clearance(svc: Services) -> int:
    principal = svc.grant.principal
    settings = svc.settings
    return clearance(principal.role, principal.client_id, settings.clearance, settings.clearance_clients)


def stamp(svc: Services, resource: dict[str, Any]) -> None:
    """Everything a write stamps on ``resource`` before it is validated and indexed: the source
    institution (the grant's) and the grading labels; 409 for a masked (``REDACTED``) resource."""
    svc.grant.stamp(resource)
    if svc.settings.grading:
        stamp_grade(resource, policy_of(svc))


def mask_result(svc: Services, result: Result) -> Result:
    """``result`` with what is above the caller's clearance masked (the same object when nothing is)."""
    if svc.grant.open or result.status >= 300:
        return result
    if svc.grant.redacts_audit:
        result = _redact_audit(result)
    if not svc.settings.grading:
        return result
    body = result.body()
    if body is None:
        return result
    policy = policy_of(svc)
    masked = mask_body(body, policy, reader_clearance(svc), svc.grant.lifts)
    if masked is None:
        return result
    if result.resource is None and result.version is not None:  # keeps ETag, Location, Last-Modified
        return replace(result, version=replace(result.version, body=dumps(masked)))
    return replace(result, resource=masked)


def _redact_audit(result: Result) -> Result:
    """``result`` with the AuditEvents in it as a resident may read them (the clinicians masked)."""
    body = result.body()
    if isinstance(body, bytes):
        if b'"AuditEvent"' not in body:
            return result
        body = load_stored(body)
    redacted = in_body(body) if body is not None else None
    if redacted is None:
        return result
    if result.resource is None and result.version is not None:
        return replace(result, version=replace(result.version, body=dumps(redacted)))
    return replace(result, resource=redacted)

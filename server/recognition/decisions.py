"""Recognition decisions (issue 15 §3): the treating institution recognises a result it was shown,
or repeats the test and says why. Recorded as a ``Basic`` (``code`` = ``recognition|decision``):

- ``subject``: the DiagnosticReport decided on; ``author``: the deciding institution (its
  Organization, or by identifier); ``created``: the day (searchable: ``Basic?created=2025-03``);
- extensions ``recognition-decision`` (recognized | repeated), ``recognition-reason``
  (valueCodeableConcept: the reason's text and code), ``recognition-decided`` (the instant),
  ``recognition-decided-by`` (the client or user, as an Identifier), ``recognition-result-institution``
  (who performed the result), ``recognition-status`` (the status the look-up showed);
- ``meta.tag``: ``recognition|decision`` and the deciding institution's source tag (so it reads its own).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from server.access.grant import OPEN_GRANT
from server.access.principal import SOURCE_TAG_SYSTEM, SOURCE_URI_PREFIX
from server.fhir.instant import now_us, to_instant
from server.interactions.create import create
from server.interactions.result import Result
from server.interactions.services import Services
from server.recognition.model import RECOGNITION, SD

DECISION_EXT = SD + "recognition-decision"
REASON_EXT = SD + "recognition-reason"
DECIDED_EXT = SD + "recognition-decided"
DECIDED_BY_EXT = SD + "recognition-decided-by"
RESULT_INSTITUTION_EXT = SD + "recognition-result-institution"
CLIENT_SYSTEM = "http://yidang.org/fhir/sid/client-id"
USER_SYSTEM = "http://yidang.org/fhir/sid/user"
INSTITUTION_SYSTEM = "http://yidang.org/fhir/sid/institution"
DECISIONS = ("recognized", "repeated")


@dataclass(frozen=True, slots=True)
class Decision:
    report: str
    """The DiagnosticReport id."""
    decision: str
    reason: dict[str, Any] | None
    """A CodeableConcept (required when repeated)."""
    institution: str
    """Who decided (the caller's institution)."""
    decided_by: str
    kind: str
    """client | user | external | anonymous."""
    result_institution: str


def to_resource(d: Decision, organization: str | None, at: int) -> dict[str, Any]:
    author: dict[str, Any] = {"reference": f"Organization/{organization}"} if organization else \
        {"type": "Organization", "identifier": {"system": INSTITUTION_SYSTEM, "value": d.institution}}
    who_system = USER_SYSTEM if d.kind in ("user", "external") else CLIENT_SYSTEM
    extensions: list[dict[str, Any]] = [{"url": DECISION_EXT, "valueCode": d.decision}]
    if d.reason is not None:
        extensions.append({"url": REASON_EXT, "valueCodeableConcept": d.reason})
    extensions += [
        {"url": DECIDED_EXT, "valueDateTime": to_instant(at)},
        {"url": DECIDED_BY_EXT, "valueIdentifier": {"system": who_system, "value": d.decided_by}},
        {"url": RESULT_INSTITUTION_EXT, "valueIdentifier": {"system": INSTITUTION_SYSTEM,
                                                            "value": d.result_institution}},
    ]
    tags = [{"system": RECOGNITION, "code": "decision"}]
    meta: dict[str, Any] = {"tag": tags}
    if d.institution:
        tags.append({"system": SOURCE_TAG_SYSTEM, "code": d.institution})
        meta["source"] = SOURCE_URI_PREFIX + d.institution
    return {
        "resourceType": "Basic",
        "id": str(uuid.uuid4()),
        "meta": meta,
        "extension": extensions,
        "code": {"coding": [{"system": RECOGNITION, "code": "decision", "display": "互认决定"}]},
        "subject": {"reference": f"DiagnosticReport/{d.report}"},
        "created": to_instant(at)[:10],
        "author": author,
    }


def read(resource: dict[str, Any]) -> dict[str, Any]:
    """The fields of a stored decision the statistics count (decision, reason text, institutions, day)."""
    ext = {e.get("url"): e for e in resource.get("extension") or () if isinstance(e, dict)}
    reason = (ext.get(REASON_EXT) or {}).get("valueCodeableConcept") or {}
    codings = reason.get("coding") or []
    label = reason.get("text") or (codings[0].get("display") or codings[0].get("code") if codings else None)
    tags = (resource.get("meta") or {}).get("tag") or ()
    by = next((t.get("code") for t in tags if isinstance(t, dict) and t.get("system") == SOURCE_TAG_SYSTEM), "")
    return {
        "decision": (ext.get(DECISION_EXT) or {}).get("valueCode"),
        "reason": label,
        "institution": by or "",
        "result_institution": ((ext.get(RESULT_INSTITUTION_EXT) or {}).get("valueIdentifier") or {}).get("value", ""),
        "day": resource.get("created", ""),
        "report": ((resource.get("subject") or {}).get("reference") or ""),
    }


async def record(svc: Services, decision: Decision, organization: str | None) -> Result:
    """Store ``decision`` (as the platform: institutions do not write Basic themselves; the source tag
    names the deciding institution)."""
    resource = to_resource(decision, organization, now_us())
    return await create(svc.for_grant(OPEN_GRANT), "Basic", resource)

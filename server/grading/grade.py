"""Grading a resource (pure): its GB/T 39725 category and level under a :class:`~.policy.Policy`, and
stamping them in ``meta.security`` on every write.

The stamp is three codings, replacing any the client sent for the two Yidang systems and for
v3-Confidentiality: ``data-level|L1..L5``, ``data-category|<类别>`` and the v3-Confidentiality code the
policy maps the level to. A resource carrying the v3 ``REDACTED`` label was masked for a reader and
is refused (409): writing it back would store the masks over the real data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.errors import Conflict
from server.fhir.json import dumps
from server.grading.policy import Policy

LEVEL_SYSTEM = "http://yidang.org/fhir/CodeSystem/data-level"
CATEGORY_SYSTEM = "http://yidang.org/fhir/CodeSystem/data-category"
CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
OBSERVATION_VALUE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
REDACTED = {"system": OBSERVATION_VALUE_SYSTEM, "code": "REDACTED", "display": "redacted"}
STAMPED_SYSTEMS = frozenset({LEVEL_SYSTEM, CATEGORY_SYSTEM, CONFIDENTIALITY_SYSTEM})
LEVEL_DISPLAY = {1: "第1级", 2: "第2级", 3: "第3级", 4: "第4级", 5: "第5级"}
CONFIDENTIALITY_DISPLAY = {"U": "unrestricted", "L": "low", "M": "moderate", "N": "normal", "R": "restricted",
                           "V": "very restricted"}
CONFIDENTIALITY_ORDER = ("U", "L", "M", "N", "R", "V")
_STAMP_PREFIX = b'"system":"' + LEVEL_SYSTEM.encode() + b'","code":"L'


@dataclass(frozen=True)
class Grade:
    level: int
    category: str
    sensitive: bool = False
    """A code of the policy's sensitive lists raised the level."""


def _codings(node: Any, out: list[tuple[str, str]]) -> None:
    """Collect the (system, code) of every Coding-shaped object in ``node`` (a dict with ``system`` and
    ``code``), meta excluded."""
    if isinstance(node, dict):
        system, code = node.get("system"), node.get("code")
        if isinstance(code, str) and isinstance(system, str):
            out.append((system, code))
        for key, value in node.items():
            if key != "meta" and isinstance(value, dict | list):
                _codings(value, out)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                _codings(item, out)


_SENSITIVE_SYSTEMS = (b"icd", b"ICD", b"snomed.info", b"loinc.org")


def is_sensitive(resource: dict[str, Any], policy: Policy) -> bool:
    """Whether a coding of ``resource`` is on the policy's sensitive lists (ICD-10 by prefix, any
    system naming ICD; SNOMED CT and LOINC exactly). A resource naming none of those systems is
    decided from its serialised form (no walk)."""
    text = dumps(resource)
    if not any(marker in text for marker in _SENSITIVE_SYSTEMS):
        return False
    sens = policy.sensitive
    found: list[tuple[str, str]] = []
    _codings(resource, found)
    for system, code in found:
        system = system.lower()
        if "icd" in system:
            upper = code.upper()
            if any(upper.startswith(prefix) for prefix in sens.icd10):
                return True
        elif system == "http://snomed.info/sct":
            if code in sens.snomed:
                return True
        elif system == "http://loinc.org" and code in sens.loinc:
            return True
    return False


def present(node: Any, path: tuple[str, ...]) -> bool:
    """Whether ``node`` has data at ``path`` (arrays walked)."""
    if not path:
        return node not in (None, "", [], {})
    if isinstance(node, list):
        return any(present(item, path) for item in node)
    if not isinstance(node, dict):
        return False
    return present(node.get(path[0]), path[1:])


def grade(resource: dict[str, Any], policy: Policy) -> Grade:
    """The category and level of ``resource``: its type's, raised by the element rules it has data
    for and by a sensitive code (the category stays the type's)."""
    type_ = str(resource.get("resourceType", ""))
    base = policy.grading(type_)
    level = base.level
    for rule in policy.rules(type_):
        if rule.level > level and present(resource, rule.path):
            level = rule.level
    sensitive = policy.sensitive.level > level and is_sensitive(resource, policy)
    if sensitive:
        level = policy.sensitive.level
    contained = resource.get("contained")
    if isinstance(contained, list):  # a contained Patient is as sensitive as a stored one
        level = max([level, *(grade(c, policy).level for c in contained if isinstance(c, dict))])
    return Grade(level, base.category, sensitive)


def security(resource: dict[str, Any]) -> list[Any]:
    meta = resource.get("meta")
    labels = meta.get("security") if isinstance(meta, dict) else None
    return labels if isinstance(labels, list) else []


def is_redacted(resource: dict[str, Any]) -> bool:
    return any(isinstance(c, dict) and c.get("system") == OBSERVATION_VALUE_SYSTEM and c.get("code") == "REDACTED"
               for c in security(resource))


def refuse_redacted(resource: dict[str, Any]) -> None:
    """409 for a resource a reader got masked: its masks must never replace the real data."""
    if is_redacted(resource):
        type_ = resource.get("resourceType", "resource")
        raise Conflict(f"This {type_} carries the REDACTED security label: it was masked for a reader and "
                       "cannot be written back; read it with a clearance that shows it whole and change that",
                       expression=("meta.security",))


def stamp(resource: dict[str, Any], policy: Policy) -> Grade:
    """Set the level, category and confidentiality labels in ``resource.meta.security`` (in place),
    replacing the client's labels of those systems (a stricter v3-Confidentiality code the client sent
    is kept); other labels stay. 409 for a REDACTED resource."""
    refuse_redacted(resource)
    found = grade(resource, policy)
    meta = resource.get("meta")
    if not isinstance(meta, dict):
        if "meta" in resource:
            return found  # not an object (null too): validation reports it (or write.store_version refuses it)
        meta = resource["meta"] = {}
    labels = security(resource)
    kept = [c for c in labels if not (isinstance(c, dict) and c.get("system") in STAMPED_SYSTEMS)]
    sent = [c.get("code") for c in labels if isinstance(c, dict) and c.get("system") == CONFIDENTIALITY_SYSTEM]
    # the stricter of the level's and the client's own (a clinician may mark a record R; never lower)
    confidentiality = max([policy.confidentiality[found.level], *(c for c in sent if c in CONFIDENTIALITY_ORDER)],
                          key=CONFIDENTIALITY_ORDER.index)
    meta["security"] = [
        *kept,
        {"system": LEVEL_SYSTEM, "code": f"L{found.level}", "display": LEVEL_DISPLAY[found.level]},
        {"system": CATEGORY_SYSTEM, "code": found.category},
        {"system": CONFIDENTIALITY_SYSTEM, "code": confidentiality,
         "display": CONFIDENTIALITY_DISPLAY[confidentiality]},
    ]
    return found


def stamped_level(body: bytes) -> int | None:
    """The level stamped in a stored body (found in its bytes, without parsing: the stamp is written
    by :func:`stamp` with ``system`` before ``code``); None when it carries none. The highest one
    found: a look-alike coding elsewhere in the body can only raise it (and so cost a parse), never
    lower it below the real stamp."""
    best = 0
    at = body.find(_STAMP_PREFIX)
    while at >= 0:  # byte searches: several times cheaper than a regex over the body
        digit = body[at + len(_STAMP_PREFIX):at + len(_STAMP_PREFIX) + 2]
        if len(digit) == 2 and digit[1:] == b'"' and 0x31 <= digit[0] <= 0x35:
            best = max(best, digit[0] - 0x30)
        at = body.find(_STAMP_PREFIX, at + 1)
    return best or None

"""``Patient/$match`` (http://hl7.org/fhir/R4/patient-operation-match.html, IHE PDQm-compatible).

Input: ``resource`` (a Patient: the demographics to look for), ``onlyCertainMatches`` (boolean:
only ``certain`` grades), ``count`` (most results, 1–100, default 10). Output: a ``searchset``
Bundle ordered by score, each entry with ``search.mode = match``, ``search.score`` and the
``match-grade`` extension (certain | probable | possible). Scoring: :mod:`server.identity.score`;
candidates: :mod:`server.identity.match` (indexed searches through the caller's grant).

Identifier systems in the input: one without ``system`` or ``value``, a system that is not an
absolute URI, or a ``urn:oid:2.16.156.10011.1.N`` under the national identifier root with an ``N``
that root does not define is a 400 naming it (an unknown system would silently match nothing).
Other absolute URIs (an institution's own record numbers) are searched as given.
"""

from __future__ import annotations

from typing import Any

from server.errors import BadRequest
from server.identity.match import ranked
from server.interactions.bundles import bundle, full_url, resource_value
from server.interactions.result import Result
from server.operations.registry import Invocation, Operation

GRADE_URL = "http://hl7.org/fhir/StructureDefinition/match-grade"
NATIONAL_ROOT = "urn:oid:2.16.156.10011.1."
NATIONAL_IDS = frozenset({1, 2, 3, 4, 5, 7, 11, 12, 13, 14, 19, 20, 21, 22, 24, 26, 27, 32, 33})
"""The identifier roots 2.16.156.10011.1.N the national standards define (fact sheet §4)."""
DEFAULT_COUNT, MAX_COUNT = 10, 100


def _flag(value: Any, name: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    raise BadRequest(f"{name} must be true or false, not {value!r}", expression=(name,))


def _count(value: Any) -> int:
    if value is None:
        return DEFAULT_COUNT
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 6:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest(f"count must be a positive integer, not {value!r}", expression=("count",))
    return min(value, MAX_COUNT)


def check_systems(patient: dict[str, Any]) -> set[str]:
    """The input's identifier systems, each known or well-formed; 400 naming the first that is not."""
    systems: set[str] = set()
    idents = patient.get("identifier") or []
    if not isinstance(idents, list):
        raise BadRequest("Patient.identifier must be an array", expression=("Patient.identifier",))
    for n, ident in enumerate(idents):
        where = f"Patient.identifier[{n}]"
        system = ident.get("system") if isinstance(ident, dict) else None
        value = ident.get("value") if isinstance(ident, dict) else None
        if not isinstance(system, str) or not isinstance(value, str) or not value.strip():
            raise BadRequest(f"{where} needs a system and a value to be matched", expression=(where,))
        if ":" not in system:
            raise BadRequest(f"{where}.system '{system}' is not an absolute URI", expression=(f"{where}.system",))
        if system.startswith(NATIONAL_ROOT):
            arc = system[len(NATIONAL_ROOT):]
            if not (arc.isdigit() and int(arc) in NATIONAL_IDS):
                raise BadRequest(f"{where}.system '{system}' is not an identifier system of the national root "
                                 f"{NATIONAL_ROOT[8:-1]} (known: .1.3 居民身份证号, .1.19 健康卡号 …)",
                                 expression=(f"{where}.system",))
        systems.add(system)
    return systems


async def run(inv: Invocation) -> Result:
    patient = inv.get("resource") if inv.resource is None else inv.resource
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise BadRequest("$match needs the parameter 'resource': a Patient", expression=("resource",))
    only_certain = _flag(inv.get("onlyCertainMatches"), "onlyCertainMatches")
    limit = _count(inv.get("count"))
    systems = check_systems(patient)
    found = await ranked(inv.svc, patient, systems)
    if only_certain:
        found = [(v, m) for v, m in found if m.grade == "certain"]
    entries = [{
        "fullUrl": full_url(inv.base, version),
        "resource": resource_value(version),
        "search": {"extension": [{"url": GRADE_URL, "valueCode": match.grade}],
                   "mode": "match", "score": match.score},
    } for version, match in found[:limit]]
    return Result(200, resource=bundle("searchset", entries, total=len(entries),
                                       links=[("self", f"{inv.base}/Patient/$match")]))


OPERATION = Operation(
    name="match",
    levels=frozenset({"type"}),
    handler=run,
    types=frozenset({"Patient"}),
    definition="http://hl7.org/fhir/OperationDefinition/Patient-match",
    documentation="Patients like the given one, scored and graded (certain | probable | possible).",
)

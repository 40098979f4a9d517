"""``Patient/$merge`` (the parameters of the FHIR R5/R6 Patient merge,
http://hl7.org/fhir/OperationDefinition/Patient-merge) and ``Patient/$unmerge`` (Yidang's).

``$merge`` input: ``source-patient`` (Reference) or ``source-patient-identifier`` (Identifier),
``target-patient`` or ``target-patient-identifier``, optional ``result-patient`` (the target as it
should be, with the target's id), ``preview`` (boolean: compute, write nothing). Output: a Parameters
with ``input`` (the input), ``outcome`` (an OperationOutcome: a summary, and one issue per
resource re-pointed, up to 100), ``result`` (the target Patient as it is, or would be, after the
merge) and, when written, ``provenance`` (the Reference of the Provenance that records it; Yidang's
addition, the handle for ``$unmerge``). ``delete-source`` is not supported (the source is kept
inactive): true is a 400.

``$unmerge`` input: ``provenance`` (Reference to the merge's Provenance) or ``source-patient``
(the newest merge of that source). Output: Parameters with ``outcome``, ``result`` (the source
Patient restored) and ``provenance`` (the unmerge's). What they do: :mod:`server.identity.merge`.
Both are platform operations (the policy: :mod:`server.access.policy`).
"""

from __future__ import annotations

from typing import Any

from server.errors import BadRequest, Issue
from server.identity.merge import latest_merge, merge, unmerge
from server.interactions.result import Result
from server.operations.parameters import to_parameters
from server.operations.registry import Invocation, Operation

MERGE_INPUTS = ("source-patient", "source-patient-identifier", "target-patient", "target-patient-identifier",
                "result-patient", "preview", "delete-source")
SHOWN = 100


def _flag(value: Any, name: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise BadRequest(f"{name} must be true or false, not {value!r}", expression=(name,))


def _params(inv: Invocation, allowed: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in inv.params:
        if name not in allowed:
            raise BadRequest(f"${inv.name} has no parameter '{name}'", expression=(name,))
        if name in out:
            raise BadRequest(f"${inv.name}: '{name}' is given more than once", expression=(name,))
        out[name] = value
    return out


def _input(inv: Invocation) -> dict[str, Any]:
    parameter: list[dict[str, Any]] = []
    for name, value in inv.params:
        if isinstance(value, dict) and "resourceType" in value:
            parameter.append({"name": name, "resource": value})
        elif isinstance(value, dict):
            parameter.append({"name": name, "valueReference" if "reference" in value else "valueIdentifier": value})
        elif isinstance(value, bool):
            parameter.append({"name": name, "valueBoolean": value})
        else:
            parameter.append({"name": name, "valueString": str(value)})
    return {"resourceType": "Parameters", "parameter": parameter}


async def run_merge(inv: Invocation) -> Result:
    params = _params(inv, MERGE_INPUTS)
    preview = _flag(params.get("preview"), "preview")
    if _flag(params.get("delete-source"), "delete-source"):
        raise BadRequest("delete-source is not supported: the source is kept, inactive, with its history",
                         expression=("delete-source",))
    plan, provenance_id = await merge(inv.svc, params, inv.base, preview=preview)
    others = [(t, i) for t, i, _, _ in plan.writes if t != "Patient"]
    verb = "would be" if preview else "was"
    summary = f"Patient/{plan.source} {verb} merged into Patient/{plan.target}: {len(others)} resource(s) " \
        f"{verb.replace('was', 'were')} re-pointed" + (" (preview: nothing was written)" if preview else "")
    issues = [Issue("information", "informational", summary)]
    issues += [Issue("information", "informational", f"{t}/{i} {verb} re-pointed to Patient/{plan.target}")
               for t, i in others[:SHOWN]]
    values: list[tuple[str, str, Any]] = [
        ("input", "resource", _input(inv)),
        ("outcome", "resource", {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}),
        ("result", "resource", plan.result),
    ]
    if provenance_id is not None:
        values.append(("provenance", "valueReference", {"reference": f"Provenance/{provenance_id}"}))
    return Result(200, resource=to_parameters(values))


async def run_unmerge(inv: Invocation) -> Result:
    params = _params(inv, ("provenance", "source-patient"))
    ref = params.get("provenance")
    if ref is not None:
        text = ref.get("reference") if isinstance(ref, dict) else ref
        if not isinstance(text, str) or not text.startswith("Provenance/") or len(text.split("/")) != 2:
            raise BadRequest(f"provenance must be a Reference to Provenance/[id], not {ref!r}",
                             expression=("provenance",))
        provenance_id = text.split("/")[1]
    else:
        source = params.get("source-patient")
        text = source.get("reference") if isinstance(source, dict) else source
        if not isinstance(text, str) or not text.startswith("Patient/") or len(text.split("/")) != 2:
            raise BadRequest("$unmerge needs provenance (the merge's Provenance) or source-patient (a Reference "
                             "to Patient/[id])", expression=("provenance",))
        provenance_id = await latest_merge(inv.svc, text.split("/")[1])
    written, undo = await unmerge(inv.svc, provenance_id)
    restored = [f"{v.type}/{v.id}" for v in written]
    issue = Issue("information", "informational",
                  f"Restored {len(restored)} resource(s) to their version before Provenance/{provenance_id}")
    values: list[tuple[str, str, Any]] = [
        ("outcome", "resource", {"resourceType": "OperationOutcome", "issue": [issue.to_fhir()]}),
        ("provenance", "valueReference", {"reference": f"Provenance/{undo}"}),
    ]
    return Result(200, resource=to_parameters(values))


MERGE = Operation(
    name="merge",
    levels=frozenset({"type"}),
    handler=run_merge,
    types=frozenset({"Patient"}),
    affects_state=True,
    definition="http://hl7.org/fhir/OperationDefinition/Patient-merge",
    documentation="Merge a duplicate Patient into another: references re-pointed, a Provenance records it.",
)
UNMERGE = Operation(
    name="unmerge",
    levels=frozenset({"type"}),
    handler=run_unmerge,
    types=frozenset({"Patient"}),
    affects_state=True,
    documentation="Undo a $merge from its Provenance: every changed resource back to its previous version.",
)
OPERATIONS = [MERGE, UNMERGE]

"""The handlers of ``Patient/{id}/$transfer`` and ``Patient/{id}/$transfer-history``.

They take the operation table's ``Invocation`` (:mod:`server.operations.registry`, a layer above this
package) through the :class:`Invoked` protocol; :mod:`server.operations.table` registers them.

``$transfer`` input (a Parameters body): ``target-organization`` (valueReference to an Organization,
or valueIdentifier), ``reason`` (valueString; required unless ``task`` gives one), ``effective-date``
(valueDate or valueDateTime; default now), ``general-practitioner`` (valueReference, repeatable),
``record-number`` (valueString: the new 健康档案编号 when the server re-issues them), ``task``
(valueReference to an accepted ``transfer-record`` Task: its requester is the target, and it is
completed in the same transaction). Output: Parameters with ``outcome`` (OperationOutcome: a summary),
``result`` (the Patient as it is now; absent when a sending district repeats a transfer of a record it
no longer sees), ``provenance`` (Reference), ``closed``/``opened`` (Reference(EpisodeOfCare), one each).
A repeated transfer answers 200 with the same Provenance and writes nothing.
"""

from __future__ import annotations

from typing import Any, Protocol

from server.errors import BadRequest, Issue
from server.interactions.result import Result
from server.interactions.services import Services
from server.transfer.history import transfer_history
from server.transfer.record import Request, check_date, ref_id, transfer

INPUTS = frozenset({"target-organization", "reason", "effective-date", "general-practitioner", "record-number",
                    "task"})
REPEATABLE = frozenset({"general-practitioner"})


class Invoked(Protocol):
    """What the handlers read of an operation invocation."""

    @property
    def svc(self) -> Services: ...

    @property
    def id(self) -> str | None: ...

    @property
    def params(self) -> list[tuple[str, Any]]: ...


def _params(inv: Invoked, name: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for key, value in inv.params:
        if key not in INPUTS:
            raise BadRequest(f"${name} has no parameter '{key}'", expression=(key,))
        if key in out and key not in REPEATABLE:
            raise BadRequest(f"${name}: '{key}' is given more than once", expression=(key,))
        out.setdefault(key, []).append(value)
    return out


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{name} must be a non-empty string", expression=(name,))
    return value.strip()


def request(inv: Invoked) -> Request:
    """The checked input of ``$transfer`` (400 naming the parameter)."""
    params = _params(inv, "transfer")
    target = (params.get("target-organization") or [None])[0]
    if target is not None and isinstance(target, str):
        target = {"reference": target}
    if target is not None and not isinstance(target, dict):
        raise BadRequest("target-organization must be a Reference or an Identifier",
                         expression=("target-organization",))
    task = (params.get("task") or [None])[0]
    task_id = None
    if task is not None:
        task_id = ref_id(task, "Task")
        if task_id is None:
            raise BadRequest(f"task must be a Reference to Task/[id], not {task!r}", expression=("task",))
    reason = (params.get("reason") or [None])[0]
    if reason is None and task_id is None:
        raise BadRequest("$transfer needs a reason (why the record moves)", expression=("reason",))
    effective = (params.get("effective-date") or [None])[0]
    doctors = params.get("general-practitioner") or []
    for doctor in doctors:
        if not isinstance(doctor, dict) or \
                all(ref_id(doctor, t) is None for t in ("Practitioner", "PractitionerRole", "Organization")):
            raise BadRequest("general-practitioner must be a Reference to a Practitioner, PractitionerRole or "
                             "Organization", expression=("general-practitioner",))
    number = (params.get("record-number") or [None])[0]
    return Request(
        patient=inv.id or "",
        target=target,
        reason=_text(reason, "reason") if reason is not None else f"transfer-record Task/{task_id}",
        effective=check_date(effective) if effective is not None else None,
        practitioners=list(doctors),
        record_number=_text(number, "record-number") if number is not None else None,
        task=task_id,
    )


async def run_transfer(inv: Invoked) -> Result:
    req = request(inv)
    done = await transfer(inv.svc, req)
    if done.repeated:
        summary = f"Patient/{req.patient} was transferred to Organization/{done.target} already " \
            f"(Provenance/{done.provenance}): nothing was written"
    else:
        summary = f"Patient/{req.patient} was transferred from " + \
            (f"Organization/{done.source}" if done.source else "no managing organization") + \
            f" to Organization/{done.target}: {len(done.closed)} EpisodeOfCare(s) closed and as many opened"
    issue = Issue("information", "informational", summary)
    values: list[dict[str, Any]] = [{"name": "outcome", "resource": {"resourceType": "OperationOutcome",
                                                                      "issue": [issue.to_fhir()]}}]
    if done.patient is not None:
        values.append({"name": "result", "resource": done.patient})
    values.append({"name": "provenance", "valueReference": {"reference": f"Provenance/{done.provenance}"}})
    values += [{"name": "closed", "valueReference": {"reference": f"EpisodeOfCare/{e}"}} for e in done.closed]
    values += [{"name": "opened", "valueReference": {"reference": f"EpisodeOfCare/{e}"}} for e in done.opened]
    return Result(200, resource={"resourceType": "Parameters", "parameter": values})


async def run_transfer_history(inv: Invoked) -> Result:
    for key, _ in inv.params:
        if key.startswith("_"):
            continue  # _format, _pretty
        raise BadRequest(f"$transfer-history has no parameter '{key}'", expression=(key,))
    return Result(200, resource=await transfer_history(inv.svc, inv.id or ""))

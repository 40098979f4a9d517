"""The record transfer (档案转迁, issue 16 §1) and data return (数据回流, §3) rules of the policy
decision point: the workflow Tasks between districts and the platform, ``$transfer`` and
``$data-return``. Pure; :class:`~server.access.policy.RestrictedGrant` asks these functions from
its visibility, interaction, write and stamping decisions."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from server.access.conditions import NEVER, literal, simplify_or
from server.access.grant import Grant, WriteKind
from server.errors import Conflict, Forbidden
from server.search.model import Condition

if TYPE_CHECKING:
    from server.access.policy import RestrictedGrant

TASK_CODE_SYSTEM = "http://yidang.org/fhir/CodeSystem/task-code"
"""Yidang's Task codes: ``transfer-record`` (档案转迁: a receiving district asks the sending one for a
resident's record) and ``data-return`` (数据回流: a district asks the platform for its residents' data)."""
TRANSFER_TASK = "transfer-record"
DATA_RETURN_TASK = "data-return"
WORKFLOW_TASKS = frozenset({TRANSFER_TASK, DATA_RETURN_TASK})
TRANSFER_OPERATIONS = frozenset({"transfer"})
"""``Patient/{id}/$transfer``: the platform, or the sending district (the one that manages the Patient
now: the operation checks that against the store); never an institution, auditor or resident."""
TRANSFER_READ_OPERATIONS = frozenset({"transfer-history"})
"""``Patient/{id}/$transfer-history``: whoever may read the Patient and search Provenance."""
DATA_RETURN_OPERATIONS = frozenset({"data-return"})
"""``Task/{id}/$data-return``: the requesting district of an approved data-return Task (the operation
checks the Task), or the platform."""
WORKFLOW_FIELDS = ("code", "for", "requester", "owner", "input", "focus")
"""What a workflow Task names and no party may change once it is requested (only status, statusReason,
businessStatus, note, output and lastModified move)."""
TASK_TRANSITIONS: dict[str, dict[tuple[str, str], frozenset[str]]] = {
    TRANSFER_TASK: {
        ("requested", "accepted"): frozenset({"owner"}),
        ("requested", "rejected"): frozenset({"owner"}),
        ("requested", "cancelled"): frozenset({"requester"}),
        ("accepted", "rejected"): frozenset({"owner"}),
        ("accepted", "cancelled"): frozenset({"requester", "owner"}),
        ("accepted", "completed"): frozenset({"transfer"}),
    },
    DATA_RETURN_TASK: {
        ("requested", "accepted"): frozenset({"approver"}),
        ("requested", "rejected"): frozenset({"approver"}),
        ("requested", "cancelled"): frozenset({"requester"}),
        ("accepted", "cancelled"): frozenset({"requester", "approver"}),
        ("accepted", "completed"): frozenset({"approver"}),
    },
}
"""Who moves a workflow Task from one status to another. ``owner``/``requester``: a district whose
institution is the identifier value in ``Task.owner``/``Task.requester`` (or the platform, which acts
for either side); ``approver``: the platform; ``transfer``: only ``Patient/$transfer`` with the Task
(it performs the transfer in the same transaction). A status kept as it was is allowed to either party
(notes); anything else is a 409."""


def task_code(task: dict[str, Any] | None) -> str | None:
    """The workflow code (transfer-record | data-return) of a Task, or None for any other Task."""
    code = task.get("code") if isinstance(task, dict) else None
    for coding in code.get("coding") or () if isinstance(code, dict) else ():
        if isinstance(coding, dict) and coding.get("system") == TASK_CODE_SYSTEM \
                and coding.get("code") in WORKFLOW_TASKS:
            return str(coding["code"])
    return None


def party_identifier(task: dict[str, Any], field_: str) -> str | None:
    """The identifier value a workflow Task names its ``requester``/``owner`` Organization by."""
    ref = task.get(field_)
    ident = ref.get("identifier") if isinstance(ref, dict) else None
    value = ident.get("value") if isinstance(ident, dict) else None
    return value if isinstance(value, str) and value else None


def _workflow_sides(grant: RestrictedGrant, task: dict[str, Any]) -> set[str]:
    if grant.role == "platform":
        return {"owner", "requester", "approver"}
    if grant.role != "district":
        return set()
    mine = grant.principal.institution
    return {side for side in ("owner", "requester") if party_identifier(task, side) == mine}


def _check_workflow_task(grant: RestrictedGrant, kind: WriteKind, new: dict[str, Any] | None,
                         old: dict[str, Any] | None) -> None:
    """The policy of workflow Task writes (see :data:`TASK_TRANSITIONS`); raises when refused."""
    code = task_code(old) or task_code(new)
    assert code is not None
    if grant.role not in ("platform", "district"):
        raise Forbidden(f"{code} Tasks are between districts and the platform; role {grant.role} may not write them")
    if new is None or kind == "delete":
        if grant.role != "platform":
            raise Forbidden(f"A {code} Task is cancelled (status cancelled), not deleted; only the platform deletes")
        return
    if task_code(new) != code:
        raise Forbidden(f"The code of a {code} Task does not change")
    for side in ("requester",) if code == DATA_RETURN_TASK else ("requester", "owner"):
        if party_identifier(new, side) is None:
            raise Forbidden(f"A {code} Task names its {side} Organization by identifier ({side}.identifier.value)")
    if old is None:
        if new.get("status") != "requested":
            raise Forbidden(f"A {code} Task is created with status requested, not {new.get('status')}")
        if code == TRANSFER_TASK and party_identifier(new, "requester") == party_identifier(new, "owner"):
            raise Forbidden("A transfer-record Task's requester (receiving) and owner (sending) differ")
        if "requester" not in _workflow_sides(grant, new):
            raise Forbidden(f"A {code} Task is requested by the caller's own organization: requester.identifier "
                            f"must be {grant.principal.institution}")
        return
    for name in WORKFLOW_FIELDS:
        if old.get(name) != new.get(name):
            raise Forbidden(f"Task.{name} of a {code} Task does not change once it is requested")
    before, after = str(old.get("status")), str(new.get("status"))
    sides = _workflow_sides(grant, old)
    if before == after:
        if not sides:
            raise Forbidden(f"Only the parties of this {code} Task may change it")
        return
    allowed = TASK_TRANSITIONS[code].get((before, after))
    if allowed is None:
        raise Conflict(f"A {code} Task does not move from {before} to {after}")
    if "transfer" in allowed:
        facts = getattr(grant, "transfer_facts", None)
        if facts is None or facts.task != old.get("id"):
            raise Forbidden(f"A {code} Task is completed by Patient/$transfer with parameter task (which moves the "
                            "record in the same transaction), not by a write of the Task")
        return
    if not sides & allowed:
        who = " or ".join(sorted(allowed))
        raise Forbidden(f"Only the {who} of this {code} Task (or the platform) may move it from {before} to {after}")


class TransferFacts:
    """What one ``$transfer`` writes, as the operation established it from the store under the caller's
    grant: the Patient it moves (the caller manages it now) and the Task it completes, if any."""

    __slots__ = ("patient", "task")

    def __init__(self, patient: str, task: str | None = None) -> None:
        self.patient = patient
        self.task = task


def transfer_grant(grant: Grant, facts: TransferFacts) -> Grant:
    """``grant`` for the writes of one transfer: a sending district may then update that Patient's
    managingOrganization/generalPractitioner/identifier, close and open its EpisodeOfCares, write the
    Provenance and complete the Task — nothing else (every other write is decided as by ``grant``)."""
    if grant.open:
        return grant
    derived = copy.copy(grant)
    derived.transfer_facts = facts  # type: ignore[attr-defined]
    return derived


TRANSFER_PATIENT_FIELDS = frozenset({"managingOrganization", "generalPractitioner", "identifier", "meta"})


def _is_transfer_write(grant: RestrictedGrant, kind: WriteKind, type_: str, new: dict[str, Any] | None,
                       old: dict[str, Any] | None) -> bool:
    facts: TransferFacts | None = getattr(grant, "transfer_facts", None)
    if facts is None or new is None or kind == "delete" or grant.role not in ("platform", "district"):
        return False
    mine = f"Patient/{facts.patient}"
    if type_ == "Patient":
        if old is None or old.get("id") != facts.patient or new.get("id") != facts.patient:
            return False
        changed = {k for k in set(old) | set(new) if old.get(k) != new.get(k)}
        return changed <= TRANSFER_PATIENT_FIELDS
    if type_ == "EpisodeOfCare":
        return all((r.get("patient") or {}).get("reference") == mine for r in (new, old) if r is not None)
    if type_ == "Provenance":
        return old is None and any(str((t or {}).get("reference", "")).split("/_history/")[0] == mine
                                   for t in new.get("target") or ())
    if type_ == "Task":
        return old is not None and facts.task is not None and old.get("id") == facts.task \
            and task_code(old) == TRANSFER_TASK
    return False


def check_transfer_write(grant: RestrictedGrant, kind: WriteKind, type_: str, new: dict[str, Any] | None,
                          old: dict[str, Any] | None) -> bool:
    """True when this write is allowed as part of a transfer or the workflow (decided); raises for a
    workflow Task write the rules refuse; False when the ordinary rules decide."""
    if type_ == "Task" and grant.role == "district" and not (task_code(new) or task_code(old)):
        raise Forbidden("A district writes only its workflow Tasks (transfer-record, data-return)")
    if type_ == "Task" and (task_code(new) or task_code(old)):
        _check_workflow_task(grant, kind, new, old)
        if _is_transfer_write(grant, kind, type_, new, old):
            return True
        if grant.role == "district":
            permission = "c" if old is None else "d" if new is None else "u"
            return transfer_write_type(grant, permission, type_)
        return False
    return _is_transfer_write(grant, kind, type_, new, old)


def transfer_write_type(grant: RestrictedGrant, permission: str, type_: str) -> bool:
    """A district writes Tasks (its workflow Tasks: check_write decides which) when its scopes allow."""
    if grant.role != "district" or type_ != "Task":
        return False
    if not any(s.covers(type_, permission) and s.context != "patient" for s in grant.scopes):
        verb = {"c": "create", "u": "update", "d": "delete"}[permission]
        raise Forbidden(f"The token's scopes do not allow to {verb} Task resources")
    return True


def transfer_visible(grant: RestrictedGrant, type_: str) -> Condition:
    """A district sees the workflow Tasks it is a party of (requester or owner, by identifier)."""
    if type_ != "Task" or grant.role != "district":
        return NEVER
    codes = ",".join(quote(f"{TASK_CODE_SYSTEM}|{c}", safe="") for c in sorted(WORKFLOW_TASKS))
    mine = literal(grant.principal.institution)
    return simplify_or([grant._criteria("Task", f"code={codes}&{side}:identifier={mine}")
                         for side in ("requester", "owner")])


def transfer_senders(grant: Grant) -> Condition | None:
    """The Patients the caller may transfer away (None: any): the platform any, a district those it
    manages (``managingOrganization`` its Organization or one ``partOf`` it), anyone else none."""
    if grant.open or getattr(grant, "role", None) == "platform":
        return None
    if getattr(grant, "role", None) == "district":
        return cast("RestrictedGrant", grant)._managed_patients()
    return NEVER


def check_transfer_operation(grant: RestrictedGrant, name: str) -> None:
    if name == "export" and grant.role == "district":
        raise Forbidden("A district receives data through an approved data-return Task (数据回流): "
                        "POST Task/{id}/$data-return, not $export")
    if name in TRANSFER_OPERATIONS and grant.role not in ("platform", "district"):
        raise Forbidden(f"${name} moves a record between districts: the platform or the sending district, "
                        f"not role {grant.role}")
    if name in TRANSFER_OPERATIONS and grant.role == "district" \
            and not any(s.covers("Patient", "u") and s.context != "patient" for s in grant.scopes):
        raise Forbidden("$transfer changes the Patient: the token's scopes do not allow updating Patient")
    if name in DATA_RETURN_OPERATIONS and grant.role not in ("platform", "district"):
        raise Forbidden(f"$data-return delivers a district's approved data return, not to role {grant.role}")


def keeps_source(grant: RestrictedGrant, resource: dict[str, Any]) -> bool:
    """Within a transfer, what the record already carries keeps its source institution (a district moving
    a record does not become the source of the Patient or its episodes). True: leave it as it is."""
    return getattr(grant, "transfer_facts", None) is not None and grant._source(resource) is not None

"""``Patient/{id}/$transfer``: a resident's record moved to another managing organization (档案转迁).

Everything happens in **one write session** (any failure rolls every write back), each write through
the ordinary write path's pieces (grant check and stamp, grading, validation, compare-and-set):

1. the Patient is resolved (hidden = unknown = 404) and the caller must be allowed to send it
   (:func:`~server.access.transfer.transfer_senders`: the platform, or the district that manages it
   now; else 403); the target Organization is resolved by Reference or identifier (unknown = 404,
   ambiguous = 400); a transfer to the organization that manages the record already is a 400 —
   unless it repeats the last transfer (same target and effective date, nothing changed since), which
   answers that transfer again and writes nothing (idempotent);
2. ``Patient.managingOrganization`` becomes the target (``generalPractitioner`` replaced when given);
   the 健康档案编号 (``urn:oid:2.16.156.10011.1.2``) is kept, or with ``transfer_record_number =
   reissue`` re-issued (the ``record-number`` parameter, else ``<target identifier>-<old number>``) with
   the old one kept as ``use: old``;
3. every open EpisodeOfCare (planned, waitlist, active, onhold) of the patient managed by the old
   organization is closed: ``status`` finished, ``period.end`` the effective date, the previous status
   in ``statusHistory``, and — EpisodeOfCare has no reason element in R4 — the extension
   :data:`END_REASON` (code ``moved-out`` 迁出 of :data:`REASON_SYSTEM`, the caller's reason as text);
   for each a new one is opened under the target (same type, diagnoses and patient; ``period.start``
   the effective date, ``careManager`` the new general practitioner if given, extension
   :data:`TRANSFERRED_FROM` naming the closed one);
4. with a ``task`` (an accepted ``transfer-record`` Task for this Patient, whose requester is the
   target and whose owner the current managing organization) the Task becomes completed, its output
   the Provenance;
5. a Provenance names every version written (``target``), the versions they replace (``entity`` role
   revision), activity ``transfer`` of :data:`ACTIVITY_SYSTEM`, the caller as agent, the reason
   (``reason.text``), the effective date (``occurredDateTime``) and the extension :data:`TRANSFER`
   (``from``/``to`` Organizations, ``task``) that ``$transfer-history`` reads.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

from server.access.grant import OPEN_GRANT
from server.access.transfer import (
    TRANSFER_TASK,
    TransferFacts,
    party_identifier,
    task_code,
    transfer_grant,
    transfer_senders,
)
from server.errors import BadRequest, Conflict, Forbidden, NotFound
from server.fhir.ids import new_id
from server.fhir.instant import to_instant
from server.fhir.json import load_stored
from server.interactions.masking import stamp
from server.interactions.retry import in_session, resource_key
from server.interactions.services import Services
from server.interactions.write import check_grant, store_version, validate
from server.search.model import And, Condition, Query
from server.search.parse import parse_criteria
from server.stores.base import Session, Store, Version

RECORD_NUMBER = "urn:oid:2.16.156.10011.1.2"
"""城乡居民健康档案编号 (DE01.00.009.00)."""
ACTIVITY_SYSTEM = "http://yidang.org/fhir/CodeSystem/provenance-activity"
ACTIVITY = {"system": ACTIVITY_SYSTEM, "code": "transfer", "display": "档案转迁"}
REASON_SYSTEM = "http://yidang.org/fhir/CodeSystem/record-transfer-reason"
MOVED_OUT = {"system": REASON_SYSTEM, "code": "moved-out", "display": "迁出"}
END_REASON = "http://yidang.org/fhir/StructureDefinition/episode-end-reason"
"""EpisodeOfCare extension (valueCodeableConcept): why the episode ended (R4 has no element for it)."""
TRANSFERRED_FROM = "http://yidang.org/fhir/StructureDefinition/transferred-from"
"""EpisodeOfCare extension (valueReference): the episode of the sending organization this one continues."""
TRANSFER = "http://yidang.org/fhir/StructureDefinition/record-transfer"
"""Provenance extension with sub-extensions ``from``, ``to`` (Reference(Organization)) and ``task``."""
CALLER_SYSTEM = "http://yidang.org/fhir/sid/principal"
OPEN_STATUSES = "planned,waitlist,active,onhold"
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}))?$")
MAX_EPISODES = 1000


@dataclass
class Request:
    """The checked input of one transfer."""

    patient: str
    target: Any = None
    """``target-organization``: a Reference, an Identifier, or None (taken from the task)."""
    reason: str = ""
    effective: str | None = None
    practitioners: list[dict[str, Any]] = field(default_factory=list)
    record_number: str | None = None
    task: str | None = None


@dataclass
class Outcome:
    patient: dict[str, Any] | None
    """The Patient as it is now (None: a repeat by a caller who no longer sees it)."""
    provenance: str
    repeated: bool = False
    closed: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    source: str | None = None
    target: str = ""


def body(version: Version | None) -> dict[str, Any] | None:
    if version is None or version.deleted or version.body is None:
        return None
    data: dict[str, Any] = load_stored(version.body)
    return data


def criteria(svc: Services, type_: str, params: dict[str, str]) -> Condition:
    return parse_criteria(type_, urlencode(params), svc.registry)


async def visible(svc: Services, s: Reader, type_: str, id_: str, how: str = "read") -> Version | None:
    """The current version of ``type_/id_`` when it exists and the caller may see it."""
    version = await s.read(type_, id_)
    if version is None or version.deleted:
        return None
    if not svc.grant.open:
        where = svc.grant.restrict_where(type_, criteria(svc, type_, {"_id": id_}), "read")
        if not await s.find(type_, where, 1):
            return None
    return version


def ref_id(value: Any, type_: str) -> str | None:
    """``id`` of a ``type_/id`` reference (a Reference or its string), None when it is not one."""
    ref = value.get("reference") if isinstance(value, dict) else value
    if not isinstance(ref, str):
        return None
    parts = ref.split("/")
    if len(parts) >= 2 and parts[-2] == type_ and parts[-1]:
        return parts[-1]
    if len(parts) >= 4 and parts[-4] == type_ and parts[-2] == "_history":
        return parts[-3]
    return None


def identifier_values(resource: dict[str, Any]) -> set[str]:
    return {str(i.get("value")) for i in resource.get("identifier") or () if isinstance(i, dict) and i.get("value")}


async def organization(svc: Services, s: Session, value: Any, name: str) -> tuple[str, dict[str, Any]]:
    """The Organization a Reference or Identifier names: (id, resource); 404 unknown, 400 ambiguous."""
    if isinstance(value, dict) and "reference" in value and not isinstance(value.get("identifier"), dict):
        oid = ref_id(value, "Organization")
        if oid is None:
            raise BadRequest(f"{name} must reference an Organization, not {value.get('reference')!r}",
                             expression=(name,))
        found = body(await visible(svc, s, "Organization", oid))
        if found is None:
            raise NotFound(f"{name}: Organization/{oid} is not known")
        return oid, found
    ident = value.get("identifier") if isinstance(value, dict) and "identifier" in value else value
    if not isinstance(ident, dict) or not isinstance(ident.get("value"), str) or not ident["value"]:
        raise BadRequest(f"{name} must be a Reference to Organization/[id] or an Identifier (system and value)",
                         expression=(name,))
    token = f"{ident['system']}|{ident['value']}" if isinstance(ident.get("system"), str) else ident["value"]
    where = criteria(svc, "Organization", {"identifier": token})
    if not svc.grant.open:
        where = svc.grant.restrict_where("Organization", where, "search")
    ids = await s.find("Organization", where, 2)
    if not ids:
        raise NotFound(f"{name}: no Organization has the identifier {token}")
    if len(ids) > 1:
        raise BadRequest(f"{name}: more than one Organization has the identifier {token}; name it by reference",
                         expression=(name,))
    found = body(await s.read("Organization", ids[0]))
    assert found is not None
    return ids[0], found


async def _patient(svc: Services, s: Session, pid: str) -> Version:
    version = await visible(svc, s, "Patient", pid)
    if version is None:
        raise NotFound(f"Patient/{pid} is not known")
    senders = transfer_senders(svc.grant)
    if senders is not None:
        mine = await s.find("Patient", And((criteria(svc, "Patient", {"_id": pid}), senders)), 1)
        if not mine:
            raise Forbidden(f"Patient/{pid} is not managed by the caller's district: only the sending district "
                            "(or the platform) transfers a record")
    return version


async def _task(svc: Services, s: Session, req: Request) -> tuple[Version, dict[str, Any]]:
    version = await visible(svc, s, "Task", req.task or "")
    task = body(version)
    if version is None or task is None:
        raise NotFound(f"task: Task/{req.task} is not known")
    if task_code(task) != TRANSFER_TASK:
        raise BadRequest(f"task: Task/{req.task} is not a transfer-record Task", expression=("task",))
    if ref_id(task.get("for"), "Patient") != req.patient:
        raise BadRequest(f"task: Task/{req.task} is for another Patient, not Patient/{req.patient}",
                         expression=("task",))
    if task.get("status") != "accepted":
        raise Conflict(f"Task/{req.task} is {task.get('status')}: only an accepted transfer-record Task is "
                       "completed by a transfer")
    return version, task


async def _latest(svc: Services, s: Session, pid: str) -> dict[str, Any] | None:
    """The newest transfer Provenance of ``Patient/pid`` (in the session, as the caller may see it)."""
    found = [b for b in await transfer_provenances(svc, s, pid)]
    return max(found, key=lambda b: str(b.get("recorded")), default=None)


class Reader(Protocol):
    """What the look-ups need of a session (a write session, or :class:`StoreReader` outside one)."""

    async def read(self, type_: str, id_: str) -> Version | None: ...

    async def find(self, type_: str, where: Condition, limit: int) -> list[str]: ...


class StoreReader:
    """Reads straight from the store (no write session: nothing is written)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def read(self, type_: str, id_: str) -> Version | None:
        return await self.store.read(type_, id_)

    async def find(self, type_: str, where: Condition, limit: int) -> list[str]:
        result = await self.store.search(Query((type_,), where, count=limit))
        return [v.id for v in result.rows]


async def transfer_provenances(svc: Services, s: Reader, pid: str, limit: int = 1000) -> list[dict[str, Any]]:
    where = criteria(svc, "Provenance", {"target": f"Patient/{pid}"})
    if not svc.grant.open:
        where = svc.grant.restrict_where("Provenance", where, "search")
    out: list[dict[str, Any]] = []
    for id_ in await s.find("Provenance", where, limit):
        record = body(await s.read("Provenance", id_))
        if record is not None and any(c.get("code") == "transfer" and c.get("system") == ACTIVITY_SYSTEM
                                      for c in (record.get("activity") or {}).get("coding") or ()
                                      if isinstance(c, dict)):
            out.append(record)
    return out


def transfer_parts(record: dict[str, Any]) -> dict[str, Any]:
    """The ``from``/``to``/``task`` values of a transfer Provenance's :data:`TRANSFER` extension."""
    out: dict[str, Any] = {}
    for ext in record.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == TRANSFER:
            for part in ext.get("extension") or ():
                if isinstance(part, dict) and isinstance(part.get("url"), str):
                    out[part["url"]] = part.get("valueReference")
    return out


async def _own_repeat(svc: Services, s: Session, req: Request) -> Outcome | None:
    """A sending district that repeats its own transfer no longer manages (or sees) the record: the same
    transfer (its own, last, same target and date, nothing changed since) answers again, without the Patient."""
    if svc.grant.open or req.target is None or req.task is not None:
        return None
    current = await s.read("Patient", req.patient)
    if current is None or current.deleted:
        return None
    records = await transfer_provenances(svc.for_grant(OPEN_GRANT), s, req.patient)
    last = max(records, key=lambda b: str(b.get("recorded")), default=None)
    if last is None or f"Patient/{req.patient}/_history/{current.version}" not in \
            {str(t.get("reference")) for t in last.get("target") or ()}:
        return None
    who = [((a.get("who") or {}).get("identifier") or {}).get("value") for a in last.get("agent") or ()]
    if svc.grant.principal.subject not in who or (req.effective is not None and last.get("occurredDateTime") !=
                                                 req.effective):
        return None
    try:
        target, _ = await organization(svc, s, req.target, "target-organization")
    except (NotFound, BadRequest):
        return None
    if ref_id(transfer_parts(last).get("to"), "Organization") != target:
        return None
    return Outcome(None, str(last.get("id")), repeated=True, target=target)


def _reissued(patient: dict[str, Any], new_number: str | None, target_org: dict[str, Any]) -> bool:
    """Re-issue the 健康档案编号 in place; False when the Patient has none."""
    idents = patient.get("identifier") or []
    current = [i for i in idents if isinstance(i, dict) and i.get("system") == RECORD_NUMBER and i.get("use") != "old"]
    if not current:
        return False
    old = str(current[0].get("value"))
    prefix = sorted(identifier_values(target_org))[0] if identifier_values(target_org) else "R"
    number = new_number or f"{prefix}-{old}"
    if number == old:
        return False
    for ident in current:
        ident["use"] = "old"
    idents.append({"use": "official", "system": RECORD_NUMBER, "value": number})
    patient["identifier"] = idents
    return True


def _closed(episode: dict[str, Any], effective: str, reason: str) -> dict[str, Any]:
    closed = copy.deepcopy(episode)
    period = dict(closed.get("period") or {})
    history = list(closed.get("statusHistory") or [])
    history.append({"status": closed.get("status"),
                    "period": {k: v for k, v in (("start", period.get("start")), ("end", effective)) if v}})
    closed["statusHistory"] = history
    closed["status"] = "finished"
    period["end"] = effective
    closed["period"] = period
    concept: dict[str, Any] = {"coding": [MOVED_OUT]}
    if reason:
        concept["text"] = reason
    closed["extension"] = [*(e for e in closed.get("extension") or () if e.get("url") != END_REASON),
                           {"url": END_REASON, "valueCodeableConcept": concept}]
    return closed


def _opened(episode: dict[str, Any], old_id: str, target: str, effective: str,
            practitioners: list[dict[str, Any]]) -> dict[str, Any]:
    opened = {k: copy.deepcopy(v) for k, v in episode.items()
              if k in ("resourceType", "type", "diagnosis", "patient", "status")}
    opened["period"] = {"start": effective}
    opened["managingOrganization"] = {"reference": f"Organization/{target}"}
    doctors = [p for p in practitioners if ref_id(p, "Practitioner") is not None]
    if doctors:
        opened["careManager"] = copy.deepcopy(doctors[0])
    opened["extension"] = [{"url": TRANSFERRED_FROM, "valueReference": {"reference": f"EpisodeOfCare/{old_id}"}}]
    return opened


def _agent(svc: Services) -> dict[str, Any]:
    principal = svc.grant.principal
    display = f"{principal.role} {principal.subject}" + (f" ({principal.institution})" if principal.institution else "")
    return {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                 "code": "author"}]},
            "who": {"identifier": {"system": CALLER_SYSTEM, "value": principal.subject}, "display": display}}


def provenance(svc: Services, written: list[Version], replaced: list[tuple[str, str, int]], req: Request,
               source: str | None, target: str, effective: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if source is not None:
        parts.append({"url": "from", "valueReference": {"reference": f"Organization/{source}"}})
    parts.append({"url": "to", "valueReference": {"reference": f"Organization/{target}"}})
    if req.task is not None:
        parts.append({"url": "task", "valueReference": {"reference": f"Task/{req.task}"}})
    record: dict[str, Any] = {
        "resourceType": "Provenance",
        "extension": [{"url": TRANSFER, "extension": parts}],
        "target": [{"reference": f"{v.type}/{v.id}/_history/{v.version}"} for v in written],
        "occurredDateTime": effective,
        "recorded": to_instant(svc.clock()),
        "activity": {"coding": [ACTIVITY]},
        "agent": [_agent(svc)],
        "entity": [{"role": "revision", "what": {"reference": f"{t}/{i}/_history/{n}"}} for t, i, n in replaced],
    }
    if req.reason:
        record["reason"] = [{"coding": [MOVED_OUT], "text": req.reason}]
    return record


async def write(svc: Services, s: Session, type_: str, id_: str, current: Version | None,
                 resource: dict[str, Any]) -> Version:
    stamp(svc, resource)
    check_grant(svc, "update" if current is not None else "create", type_, resource, current)
    validate(svc, resource)
    return await store_version(svc, s, resource, type_=type_, id_=id_, current=current,
                               method="PUT" if current is not None else "POST")


async def transfer(svc: Services, req: Request) -> Outcome:
    """Run one transfer (see the module docstring)."""

    async def attempt(s: Session) -> Outcome:
        try:
            patient_v = await _patient(svc, s, req.patient)
        except (NotFound, Forbidden):
            repeated = await _own_repeat(svc, s, req)
            if repeated is None:
                raise
            return repeated
        patient = body(patient_v)
        assert patient_v is not None and patient is not None
        task_v: Version | None = None
        task: dict[str, Any] | None = None
        target_value = req.target
        if req.task is not None:
            task_v, task = await _task(svc, s, req)
            requester = task.get("requester")
            if target_value is None:
                target_value = requester
        if target_value is None:
            raise BadRequest("$transfer needs target-organization (a Reference or an Identifier) or task",
                             expression=("target-organization",))
        target, target_org = await organization(svc, s, target_value, "target-organization")
        source = ref_id(patient.get("managingOrganization"), "Organization")
        source_org = body(await s.read("Organization", source)) if source is not None else None
        if task is not None:
            if party_identifier(task, "requester") not in identifier_values(target_org):
                raise BadRequest(f"task: Task/{req.task}'s requester is not the target Organization/{target}",
                                 expression=("task",))
            owners = identifier_values(source_org) if source_org is not None else set()
            parent = ref_id((source_org or {}).get("partOf"), "Organization")
            parent_org = body(await s.read("Organization", parent)) if parent is not None else None
            owners |= identifier_values(parent_org) if parent_org is not None else set()
            if party_identifier(task, "owner") not in owners:  # the managing district, as the policy defines it
                raise Conflict(f"Task/{req.task}'s owner is not the organization that manages Patient/{req.patient} "
                               "now: the record moved since it was requested")
        effective = req.effective or to_instant(svc.clock())
        if source == target:
            last = await _latest(svc, s, req.patient)
            wrote = {str(t.get("reference")) for t in (last or {}).get("target") or ()}
            if last is not None and ref_id(transfer_parts(last).get("to"), "Organization") == target \
                    and (req.effective is None or last.get("occurredDateTime") == req.effective) \
                    and f"Patient/{req.patient}/_history/{patient_v.version}" in wrote and req.task is None:
                return Outcome(patient, str(last.get("id")), repeated=True, source=None, target=target)
            raise BadRequest(f"Patient/{req.patient} is managed by Organization/{target} already: a transfer moves "
                             "a record to another organization", expression=("target-organization",))
        facts = TransferFacts(req.patient, req.task)
        acting = svc.for_grant(transfer_grant(svc.grant, facts))
        new_patient = copy.deepcopy(patient)
        new_patient["managingOrganization"] = {"reference": f"Organization/{target}"}
        if isinstance(target_org.get("name"), str):
            new_patient["managingOrganization"]["display"] = target_org["name"]
        if req.practitioners:
            new_patient["generalPractitioner"] = copy.deepcopy(req.practitioners)
        if svc.settings.transfer_record_number == "reissue":
            _reissued(new_patient, req.record_number, target_org)
        writes: list[Version] = [await write(acting, s, "Patient", req.patient, patient_v, new_patient)]
        replaced = [("Patient", req.patient, patient_v.version)]
        outcome = Outcome(new_patient, new_id(), source=source, target=target)
        if source is not None:
            where = criteria(svc, "EpisodeOfCare", {"patient": f"Patient/{req.patient}",
                                                    "organization": f"Organization/{source}",
                                                    "status": OPEN_STATUSES})
            for eid in sorted(await s.find("EpisodeOfCare", where, MAX_EPISODES)):
                episode_v = await s.read("EpisodeOfCare", eid)
                episode = body(episode_v)
                if episode_v is None or episode is None:
                    continue
                writes.append(await write(acting, s, "EpisodeOfCare", eid, episode_v,
                                           _closed(episode, effective, req.reason)))
                replaced.append(("EpisodeOfCare", eid, episode_v.version))
                new_eid = new_id()
                writes.append(await write(acting, s, "EpisodeOfCare", new_eid, None,
                                           _opened(episode, eid, target, effective, req.practitioners)))
                outcome.closed.append(eid)
                outcome.opened.append(new_eid)
        if task_v is not None and task is not None:
            done = copy.deepcopy(task)
            done["status"] = "completed"
            done["lastModified"] = to_instant(svc.clock())
            done["output"] = [*(task.get("output") or ()),
                              {"type": {"text": "provenance"},
                               "valueReference": {"reference": f"Provenance/{outcome.provenance}"}}]
            writes.append(await write(acting, s, "Task", task_v.id, task_v, done))
            replaced.append(("Task", task_v.id, task_v.version))
        record = provenance(svc, writes, replaced, req, source, target, effective)
        await write(acting, s, "Provenance", outcome.provenance, None, record)
        return outcome

    keys = [resource_key("Patient", req.patient)] + ([resource_key("Task", req.task)] if req.task else [])
    return await in_session(svc, None, attempt, keys=keys)


def check_date(value: Any) -> str:
    if not isinstance(value, str) or not DATE.match(value):
        raise BadRequest(f"effective-date must be a date (YYYY-MM-DD) or a dateTime with time zone, not {value!r}",
                         expression=("effective-date",))
    return value

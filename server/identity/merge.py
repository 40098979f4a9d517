"""``Patient/$merge`` and ``Patient/$unmerge``: one duplicate folded into the other, and back.

A merge runs in **one write session** (nothing half-written: any failure rolls every write back):

1. the source and target are resolved (Reference or identifier; hidden = unknown = 404; the same
   Patient twice, a source already merged away or a merged-away target = 400);
2. every resource that refers to the source (found through the reference index: one indexed search
   per resource type over its reference parameters that may point at a Patient; Patient, Person,
   Provenance and AuditEvent excepted — links between Patients are their own statements, Persons
   follow by the linking listener, Provenance and audit are history) has each reference to the
   source re-pointed to the target;
3. the target (or the ``result-patient`` given for it) gets every identifier of the source it does
   not have, as ``use: old``, and a ``link`` of type ``replaces`` to the source;
4. the source is marked ``active: false`` with a ``link`` of type ``replaced-by`` to the target (its
   identifiers stay; its history stays);
5. a Provenance records it: ``target`` = the versions written (versioned references), ``entity`` =
   the versions they replace (role ``revision``), ``activity`` iso-21089-lifecycle ``merge``,
   ``agent.who`` = the caller (client or user, and institution).

``preview`` computes all of it and writes nothing. Each write takes the ordinary write path's
checks (``svc.grant.check_write`` and ``stamp``) and compare-and-set.

``$unmerge`` reads that Provenance and, in one session, writes each target back to the version
before the merge (the exact previous content; a new version, so history keeps both), if and only if
none of them has changed since (else 409: a later change would be lost), then records an
``unmerge`` Provenance pointing at the merge's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from server.errors import BadRequest, Conflict, NotFound
from server.fhir.ids import new_id
from server.fhir.instant import to_instant
from server.fhir.json import load_stored
from server.identity.keys import REPLACED_BY, identifiers, replaced
from server.identity.linking import token
from server.interactions.retry import in_session, resource_key
from server.interactions.services import Services
from server.interactions.write import check_grant, store_version, validate
from server.search.model import Condition, Or, Query
from server.search.parse import parse_criteria
from server.stores.base import Session, Version

LIFECYCLE = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
CALLER_SYSTEM = "http://yidang.org/fhir/sid/principal"
NOT_REPOINTED = frozenset({"Patient", "Person", "Provenance", "AuditEvent"})
MAX_REFERRING = 10_000
"""Most resources one merge re-points (all in one session)."""


@dataclass
class Plan:
    """What a merge writes: (type, id, current version, new body) in write order."""

    source: str
    target: str
    writes: list[tuple[str, str, Version, dict[str, Any]]] = field(default_factory=list)

    @property
    def result(self) -> dict[str, Any]:
        return next(body for t, i, _, body in self.writes if t == "Patient" and i == self.target)


def _body(version: Version | None) -> dict[str, Any] | None:
    if version is None or version.deleted or version.body is None:
        return None
    data: dict[str, Any] = load_stored(version.body)
    return data


async def _visible(svc: Services, s: Session, type_: str, id_: str) -> Version | None:
    """The current version of ``type_/id_`` when it exists, is not deleted and the caller may see it."""
    version = await s.read(type_, id_)
    if version is None or version.deleted:
        return None
    if not svc.grant.open:
        where = svc.grant.restrict_where(type_, parse_criteria(type_, urlencode({"_id": id_}), svc.registry))
        if not await s.find(type_, where, 1):
            return None
    return version


async def resolve(svc: Services, s: Session, role: str, reference: Any, identifier: Any) -> str:
    """The id of the Patient a ``*-patient`` Reference or ``*-patient-identifier`` names (404 when none)."""
    if reference is not None:
        ref = reference.get("reference") if isinstance(reference, dict) else reference
        if not isinstance(ref, str) or not ref.startswith("Patient/") or len(ref.split("/")) != 2:
            raise BadRequest(f"{role} must be a Reference to Patient/[id], not {reference!r}", expression=(role,))
        pid = ref.split("/")[1]
        if await _visible(svc, s, "Patient", pid) is None:
            raise NotFound(f"{role}: Patient/{pid} is not known")
        return pid
    if identifier is not None:
        name = f"{role}-identifier"
        if not isinstance(identifier, dict) or not identifiers({"identifier": [identifier]}):
            raise BadRequest(f"{name} must be an Identifier with system and value", expression=(name,))
        system, value = identifiers({"identifier": [identifier]})[0]
        where = parse_criteria("Patient", urlencode({"identifier": token(system, value)}), svc.registry)
        if not svc.grant.open:
            where = svc.grant.restrict_where("Patient", where, "search")
        found = await s.find("Patient", where, 2)
        if not found:
            raise NotFound(f"{name}: no Patient has the identifier {system}|{value}")
        if len(found) > 1:
            raise BadRequest(f"{name}: more than one Patient has the identifier {system}|{value}; name it by "
                             "reference", expression=(name,))
        return found[0]
    raise BadRequest(f"$merge needs {role} (a Reference) or {role}-identifier", expression=(role,))


def _referring_condition(svc: Services, type_: str, patient_id: str) -> Condition | None:
    branches: list[Condition] = []
    for code, param in sorted(svc.registry.for_type(type_).items()):
        if param.type == "reference" and (not param.targets or "Patient" in param.targets) \
                and svc.registry.is_supported(param):
            try:
                branches.append(parse_criteria(type_, urlencode({code: f"Patient/{patient_id}"}), svc.registry))
            except BadRequest:
                continue
    if not branches:
        return None
    return branches[0] if len(branches) == 1 else Or(tuple(branches))


async def referring(svc: Services, s: Session, patient_id: str) -> list[tuple[str, str]]:
    """(type, id) of every current resource that refers to ``Patient/patient_id`` through an indexed reference."""
    found: list[tuple[str, str]] = []
    for type_ in sorted(svc.resource_types - NOT_REPOINTED):
        cond = _referring_condition(svc, type_, patient_id)
        if cond is None:
            continue
        ids = await s.find(type_, cond, MAX_REFERRING + 1)
        found += [(type_, i) for i in ids]
        if len(found) > MAX_REFERRING:
            raise BadRequest(f"More than {MAX_REFERRING} resources refer to Patient/{patient_id}: too many to "
                             "re-point in one merge")
    return found


def repoint(node: Any, source: str, target: str, base: str) -> int:
    """Re-point every ``reference`` to ``Patient/source`` (relative, absolute on ``base``, or versioned) in place."""
    changed = 0
    forms = (f"Patient/{source}", f"{base.rstrip('/')}/Patient/{source}")
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and any(ref == f or ref.startswith(f + "/_history/") for f in forms):
            node["reference"] = f"Patient/{target}"
            changed += 1
        for value in node.values():
            if isinstance(value, dict | list):
                changed += repoint(value, source, target, base)
    elif isinstance(node, list):
        for item in node:
            changed += repoint(item, source, target, base)
    return changed


def _has_identifier(patient: dict[str, Any], system: str, value: str) -> bool:
    return (system, value) in set(identifiers(patient))


async def plan_merge(svc: Services, s: Session, inv_params: dict[str, Any], base: str) -> Plan:
    """Resolve and compute every write of a merge (nothing written)."""
    source_ref, target_ref = inv_params.get("source-patient"), inv_params.get("target-patient")
    source = await resolve(svc, s, "source-patient", source_ref, inv_params.get("source-patient-identifier"))
    target = await resolve(svc, s, "target-patient", target_ref, inv_params.get("target-patient-identifier"))
    if source == target:
        raise BadRequest(f"Patient/{source} cannot be merged into itself: source and target are the same",
                         expression=("target-patient",))
    source_v = await s.read("Patient", source)
    target_v = await s.read("Patient", target)
    source_body, target_body = _body(source_v), _body(target_v)
    assert source_v is not None and target_v is not None and source_body is not None and target_body is not None
    if replaced(source_body):
        raise BadRequest(f"Patient/{source} was already merged into another Patient (link replaced-by)",
                         expression=("source-patient",))
    if replaced(target_body):
        raise BadRequest(f"Patient/{target} was merged into another Patient (link replaced-by): merge into that one",
                         expression=("target-patient",))
    result = inv_params.get("result-patient")
    if result is not None:
        if not isinstance(result, dict) or result.get("resourceType") != "Patient":
            raise BadRequest("result-patient must be a Patient", expression=("result-patient",))
        if result.get("id") != target:
            raise BadRequest(f"result-patient must have the target's id '{target}'", expression=("result-patient",))
        new_target = copy.deepcopy(result)
    else:
        new_target = copy.deepcopy(target_body)
    for ident in source_body.get("identifier") or ():  # identifiers kept: the source's are the target's too
        if isinstance(ident, dict) and isinstance(ident.get("system"), str) and isinstance(ident.get("value"), str) \
                and not _has_identifier(new_target, ident["system"], ident["value"]):
            new_target.setdefault("identifier", []).append({**copy.deepcopy(ident), "use": "old"})
    links = [lk for lk in new_target.get("link") or ()
             if (lk.get("other") or {}).get("reference") != f"Patient/{source}"]
    new_target["link"] = [*links, {"other": {"reference": f"Patient/{source}"}, "type": "replaces"}]
    new_source = copy.deepcopy(source_body)
    new_source["active"] = False
    new_source["link"] = [*(lk for lk in new_source.get("link") or ()
                            if (lk.get("other") or {}).get("reference") != f"Patient/{target}"),
                          {"other": {"reference": f"Patient/{target}"}, "type": REPLACED_BY}]
    plan = Plan(source, target)
    plan.writes.append(("Patient", target, target_v, new_target))
    plan.writes.append(("Patient", source, source_v, new_source))
    for type_, id_ in await referring(svc, s, source):
        version = await s.read(type_, id_)
        body = _body(version)
        if version is None or body is None:
            continue
        if repoint(body, source, target, base):
            plan.writes.append((type_, id_, version, body))
    return plan


def _principal_reference(svc: Services) -> dict[str, Any]:
    principal = svc.grant.principal
    display = f"{principal.role} {principal.subject}" + (f" ({principal.institution})" if principal.institution else "")
    return {"identifier": {"system": CALLER_SYSTEM, "value": principal.subject}, "display": display}


def provenance(svc: Services, activity: str, written: list[Version], previous: list[tuple[str, str, int]],
               extra_entities: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A Provenance of ``activity`` (merge | unmerge) by the caller: ``written`` as its targets,
    ``previous`` as the revisions they replace."""
    return {
        "resourceType": "Provenance",
        "target": [{"reference": f"{v.type}/{v.id}/_history/{v.version}"} for v in written],
        "recorded": to_instant(svc.clock()),
        "activity": {"coding": [{"system": LIFECYCLE, "code": activity}]},
        "agent": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                        "code": "author"}]},
                   "who": _principal_reference(svc)}],
        "entity": [*({"role": "revision", "what": {"reference": f"{t}/{i}/_history/{n}"}} for t, i, n in previous),
                   *(extra_entities or ())],
    }


async def write_all(svc: Services, s: Session, writes: list[tuple[str, str, Version, dict[str, Any]]]
                    ) -> list[Version]:
    out: list[Version] = []
    for type_, id_, current, body in writes:
        svc.grant.stamp(body)
        check_grant(svc, "update", type_, body, current)
        if type_ == "Patient":
            validate(svc, body)
        out.append(await store_version(svc, s, body, type_=type_, id_=id_, current=current, method="PUT"))
    return out


async def merge(svc: Services, params: dict[str, Any], base: str, *, preview: bool) -> tuple[Plan, str | None]:
    """Run (or preview) a merge; returns the plan and the Provenance id (None for a preview)."""

    async def attempt(s: Session) -> tuple[Plan, str | None]:
        plan = await plan_merge(svc, s, params, base)
        if preview:
            return plan, None
        written = await write_all(svc, s, plan.writes)
        record = provenance(svc, "merge", written, [(v.type, v.id, v.version - 1) for v in written])
        pid = new_id()
        svc.grant.stamp(record)
        await store_version(svc, s, record, type_="Provenance", id_=pid, current=None, method="POST")
        return plan, pid

    return await in_session(svc, None, attempt)


async def unmerge(svc: Services, provenance_id: str) -> tuple[list[Version], str]:
    """Restore every target of the merge Provenance to its previous version; returns what was written."""

    async def attempt(s: Session) -> tuple[list[Version], str]:
        found = await _visible(svc, s, "Provenance", provenance_id)
        record = _body(found)
        if record is None:
            raise NotFound(f"Provenance/{provenance_id} is not known")
        codes = {c.get("code") for c in (record.get("activity") or {}).get("coding") or () if isinstance(c, dict)}
        if "merge" not in codes:
            raise BadRequest(f"Provenance/{provenance_id} does not record a merge", expression=("provenance",))
        writes: list[tuple[str, str, Version, dict[str, Any]]] = []
        for target in record.get("target") or ():
            ref = str((target or {}).get("reference") or "")
            parts = ref.split("/")
            if len(parts) != 4 or parts[2] != "_history" or not parts[3].isdigit():
                raise BadRequest(f"Provenance/{provenance_id} target '{ref}' is not a versioned reference")
            type_, id_, number = parts[0], parts[1], int(parts[3])
            current = await s.read(type_, id_)
            if current is None or current.version != number:
                raise Conflict(f"{type_}/{id_} changed since the merge (now version "
                               f"{current.version if current else 'none'}, merged {number}); unmerge would lose "
                               "that change: nothing was restored")
            before = await svc.store.vread(type_, id_, number - 1)
            body = _body(before)
            if body is None:
                raise Conflict(f"{type_}/{id_} had no version before the merge to restore")
            writes.append((type_, id_, current, body))
        written = await write_all(svc, s, writes)
        undo = provenance(svc, "unmerge", written, [(t, i, c.version) for t, i, c, _ in writes],
                          [{"role": "source", "what": {"reference": f"Provenance/{provenance_id}"}}])
        pid = new_id()
        svc.grant.stamp(undo)
        await store_version(svc, s, undo, type_="Provenance", id_=pid, current=None, method="POST")
        return written, pid

    return await in_session(svc, None, attempt, keys=(resource_key("Provenance", provenance_id),))


async def latest_merge(svc: Services, source_id: str) -> str:
    """The newest merge Provenance that replaced ``Patient/source_id`` (404 when none)."""
    where = parse_criteria("Provenance", urlencode({"target": f"Patient/{source_id}"}), svc.registry)
    if not svc.grant.open:
        where = svc.grant.restrict_where("Provenance", where, "search")
    result = await svc.store.search(Query(("Provenance",), where, count=100))
    best: tuple[str, str] | None = None
    for version in result.rows:
        body = _body(version)
        if body is None:
            continue
        codes = {c.get("code") for c in (body.get("activity") or {}).get("coding") or () if isinstance(c, dict)}
        if "merge" in codes and (best is None or str(body.get("recorded")) > best[0]):
            best = (str(body.get("recorded")), version.id)
    if best is None:
        raise NotFound(f"No merge of Patient/{source_id} is recorded")
    return best[1]

"""The platform's ``Person`` records: Patients that share a strong identifier are one person.

A commit listener (:func:`listener`) reconciles, after every committed session that wrote
Patients (create, update, patch, delete, transaction, ``$merge``), the Persons of each Patient
written; after a Person written from outside (a ``$import`` of an export, an operator's write), the
Persons of each stored Patient it links, so that Persons which turn out to hold one resident's keys
are folded into one (an export's Persons imported after its Patients, which the Patients' import had
already linked into new Persons, left two Persons per resident). :func:`reconcile` is idempotent
and reads the *current* Patient, so a late or repeated run converges on the same state:

- the Patient's strong identifiers (:func:`~server.identity.keys.strong_keys`) are each locked with
  the store's session lock (``identity|system|value``, taken in sorted order) before the Persons
  holding them are looked up, so two institutions registering one resident at the same moment
  serialise here and the second finds the first's Person: one Person, never two. Person updates
  are compare-and-set like every write (a lost race is re-run by :mod:`server.interactions.retry`);
- the Patient is linked (``link.target``, ``link.assurance`` level3/level4) into the Person holding
  any of its keys; Persons that its keys show to be one person are folded into the oldest one
  (by id), and the others deleted; with no such Person, a new one is created;
- a Patient whose keys changed, was deleted, or was merged away (``link`` ``replaced-by``) leaves the
  Persons it no longer belongs to; a Person left with no link is **deleted** (its history stays and
  can be read with vread/_history: who was linked when);
- a Person's ``identifier`` is the union of its linked Patients' strong identifiers;
- links an operator made (assurance level1/level2: a weak match confirmed by hand) are never removed.

The institutions' own Patients are never rewritten: the Person is the platform's record of the link.
Persons are written with the app's open grant (no source-institution tag): platform records.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlencode

from server.errors import Contention
from server.fhir.ids import new_id
from server.fhir.json import load_stored
from server.identity.keys import AUTOMATIC, Key, assurance, lock_key, strong_keys
from server.interactions.retry import in_session
from server.interactions.services import CommitListener, Services
from server.interactions.write import store_version
from server.search.model import Query
from server.search.parse import parse_criteria
from server.stores.base import Session, Version

log = logging.getLogger(__name__)

MPI_TAG = {"system": "http://yidang.org/fhir/CodeSystem/identity", "code": "mpi",
           "display": "maintained by the master patient index"}
MAX_PERSONS = 50


def token(system: str, value: str) -> str:
    """``system|value`` with the search syntax's special characters escaped."""
    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")
    return f"{esc(system)}|{esc(value)}"


def _body(version: Version | None) -> dict[str, Any] | None:
    if version is None or version.deleted or version.body is None:
        return None
    data: dict[str, Any] = load_stored(version.body)
    return data


def _target_id(link: dict[str, Any]) -> str | None:
    ref = (link.get("target") or {}).get("reference") if isinstance(link.get("target"), dict) else None
    if isinstance(ref, str) and ref.startswith("Patient/"):
        return ref.split("/")[1]
    return None


async def _find(svc: Services, s: Session, criteria: str) -> list[str]:
    return await s.find("Person", parse_criteria("Person", criteria, svc.registry), MAX_PERSONS)


async def persons_of(svc: Services, patient_id: str) -> list[dict[str, Any]]:
    """The Persons linking ``Patient/patient_id`` (read outside any session)."""
    where = parse_criteria("Person", urlencode({"patient": f"Patient/{patient_id}"}), svc.registry)
    result = await svc.store.search(Query(("Person",), where, count=MAX_PERSONS))
    return [b for v in result.rows if (b := _body(v)) is not None]


async def _settled(svc: Services, patient_id: str) -> bool:
    """True when the Persons already agree with the Patient (no session, no lock needed)."""
    patient = _body(await svc.store.read("Patient", patient_id))
    keys = strong_keys(patient) if patient is not None else []
    linked = await persons_of(svc, patient_id)
    auto = [p for p in linked if any(_target_id(lk) == patient_id and lk.get("assurance") in AUTOMATIC
                                     for lk in p.get("link") or ())]
    if not keys:
        return not auto
    if len(auto) != 1 or patient is None:
        return False
    person = auto[0]
    held = {(i.get("system"), i.get("value")) for i in person.get("identifier") or ()}
    if not set(keys) <= held:
        return False
    level = assurance(patient)
    if not any(_target_id(lk) == patient_id and lk.get("assurance") == level for lk in person.get("link") or ()):
        return False
    for system, value in keys:  # no second Person holds one of its keys
        where = parse_criteria("Person", urlencode({"identifier": token(system, value)}), svc.registry)
        found = await svc.store.search(Query(("Person",), where, count=2))
        if [v.id for v in found.rows] != [person["id"]]:
            return False
    return True


def _new_person() -> dict[str, Any]:
    return {"resourceType": "Person", "meta": {"tag": [dict(MPI_TAG)]}, "active": True, "link": []}


async def _identifiers(s: Session, links: Sequence[dict[str, Any]], known: dict[str, dict[str, Any] | None]
                       ) -> list[dict[str, Any]]:
    keys: set[Key] = set()
    for link in links:
        pid = _target_id(link)
        if pid is None:
            continue
        if pid not in known:
            known[pid] = _body(await s.read("Patient", pid))
        patient = known[pid]
        if patient is not None:
            keys.update(strong_keys(patient))
    return [{"system": system, "value": value} for system, value in sorted(keys)]


_RECONCILING: ContextVar[bool] = ContextVar("yidang_identity_reconciling", default=False)
"""Set while :func:`reconcile` writes Persons, so the listener does not react to its own writes."""


async def reconcile(svc: Services, patient_id: str) -> None:
    """Bring the Persons in step with ``Patient/patient_id`` as it is now (see the module docstring)."""
    if await _settled(svc, patient_id):
        return
    marker = _RECONCILING.set(True)
    try:
        await _reconcile(svc, patient_id)
    finally:
        _RECONCILING.reset(marker)


async def _reconcile(svc: Services, patient_id: str) -> None:

    async def attempt(s: Session) -> None:
        patient = _body(await s.read("Patient", patient_id))
        keys = strong_keys(patient) if patient is not None else []
        for key in keys:  # sorted: one order for every holder
            await s.lock(lock_key(key))
        again = _body(await s.read("Patient", patient_id))
        if (strong_keys(again) if again is not None else []) != keys:
            raise Contention(f"Patient/{patient_id} changed while its identity was being linked; retry")
        await _apply(svc, s, patient_id, patient, keys)

    await in_session(svc, None, attempt)


async def _apply(svc: Services, s: Session, patient_id: str, patient: dict[str, Any] | None,
                 keys: list[Key]) -> None:
    linked = set(await _find(svc, s, urlencode({"patient": f"Patient/{patient_id}"})))
    holding: set[str] = set()
    for system, value in keys:
        holding.update(await _find(svc, s, urlencode({"identifier": token(system, value)})))
    versions: dict[str, Version | None] = {}
    bodies: dict[str, dict[str, Any]] = {}
    for pid in sorted(linked | holding):
        versions[pid] = await s.read("Person", pid)
        body = _body(versions[pid])
        if body is not None:
            bodies[pid] = body
    before = {pid: _canonical(b) for pid, b in bodies.items()}
    known: dict[str, dict[str, Any] | None] = {patient_id: patient}
    target: str | None = None
    folded: list[str] = []
    if keys:
        candidates = sorted(pid for pid in holding if pid in bodies)
        if candidates:
            target, folded = candidates[0], candidates[1:]
        else:
            target = new_id()
            bodies[target] = _new_person()
            versions[target] = None
    for pid in folded:  # one person after all: its links move to the target
        for link in bodies[pid].get("link") or ():
            if not any(_target_id(x) == _target_id(link) for x in bodies[target or ""]["link"]):
                bodies[target or ""]["link"].append(link)
        bodies[pid]["link"] = []
    for pid, body in bodies.items():
        links = [lk for lk in body.get("link") or ()
                 if not (_target_id(lk) == patient_id and lk.get("assurance") in AUTOMATIC)]
        if pid == target and patient is not None:
            links = [lk for lk in links if _target_id(lk) != patient_id]
            links.append({"target": {"reference": f"Patient/{patient_id}"}, "assurance": assurance(patient)})
        body["link"] = links
    for pid, body in sorted(bodies.items()):
        if body["link"]:
            body["identifier"] = await _identifiers(s, body["link"], known)
            if not body["identifier"]:
                del body["identifier"]
            if pid in before and _canonical(body) == before[pid]:
                continue
            await store_version(svc, s, body, type_="Person", id_=pid, current=versions[pid],
                                method="PUT" if versions[pid] is not None else "POST")
        elif versions[pid] is not None:
            await store_version(svc, s, None, type_="Person", id_=pid, current=versions[pid], method="DELETE")


def _canonical(body: dict[str, Any]) -> str:
    import json

    return json.dumps({k: v for k, v in body.items() if k != "meta"}, sort_keys=True, ensure_ascii=False)


async def _existing(svc: Services, patient_ids: set[str]) -> set[str]:
    """Those of ``patient_ids`` that are stored and not deleted."""
    found = set()
    for pid in sorted(patient_ids):
        version = await svc.store.read("Patient", pid)
        if version is not None and not version.deleted:
            found.add(pid)
    return found


def listener(svc: Services) -> CommitListener:
    """The commit listener that keeps the Persons in step with the Patients written (register once per app)."""

    async def on_commit(written: list[Version]) -> None:
        patients = {v.id for v in written if v.type == "Patient"}
        if not _RECONCILING.get():  # a Person written by anyone but this module (an import, an operator)
            patients |= await _existing(svc, {pid for v in written if v.type == "Person"
                                               for link in (_body(v) or {}).get("link") or ()
                                               if (pid := _target_id(link)) is not None} - patients)
        for patient_id in sorted(patients):
            try:
                await reconcile(svc, patient_id)
            except Exception:  # the Patient is committed: a failed link is logged, and repaired by its next write
                log.exception("could not link Patient/%s to its Person", patient_id)

    return on_commit

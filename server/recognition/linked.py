"""The Patients of one person across institutions (一人一码一档), for the look-up.

A person is found from a strong identifier (居民身份证号 ``urn:oid:2.16.156.10011.1.3``, 居民健康卡号
``urn:oid:2.16.156.10011.1.19``) or from one of its Patients, and extended until nothing new turns
up (at most :data:`ROUNDS` rounds, :data:`MAX_PATIENTS` Patients):

- the platform's ``Person`` records (issue 15 §1): ``Person?identifier=…`` and
  ``Person?patient=Patient/X``, each ``link.target`` that is a Patient;
- Patients carrying one of the person's strong identifiers (``Patient?identifier=…``), so the
  look-up also works before (or without) Person linking.

Indexed searches only; the caller's grant does not apply (the platform's master index decides who
is one person; what may be *seen* is the look-up grant's decision).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from server.fhir.json import load_stored
from server.interactions.services import Services
from server.recognition.reference import escape, find_any

ID_CARD = "urn:oid:2.16.156.10011.1.3"
HEALTH_CARD = "urn:oid:2.16.156.10011.1.19"
STRONG = (ID_CARD, HEALTH_CARD)
ROUNDS = 3
MAX_PATIENTS = 200


def strong_identifiers(resource: dict[str, Any]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for identifier in resource.get("identifier") or ():
        if isinstance(identifier, dict) and identifier.get("system") in STRONG and \
                isinstance(identifier.get("value"), str) and identifier["value"].strip():
            out.add((identifier["system"], identifier["value"].strip()))
    return out


def _targets(person: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for link in person.get("link") or ():
        ref = ((link or {}).get("target") or {}).get("reference") if isinstance(link, dict) else None
        if isinstance(ref, str) and "Patient/" in ref:
            out.add(ref.rsplit("Patient/", 1)[1].split("/")[0])
    return out


def _tokens(identifiers: Iterable[tuple[str, str]]) -> list[str]:
    return [f"{escape(s)}|{escape(v)}" for s, v in identifiers]


async def linked_patients(svc: Services, identifiers: Iterable[tuple[str, str]] = (),
                          patients: Iterable[str] = ()) -> list[str]:
    """The ids of every current Patient of the person named by ``identifiers`` and/or ``patients``."""
    found: set[str] = set(patients)
    known_ids: set[tuple[str, str]] = set(identifiers)
    asked_ids: set[tuple[str, str]] = set()
    read_patients: set[str] = set()
    for _ in range(ROUNDS):
        new_ids = known_ids - asked_ids
        new_patients = found - read_patients
        if not new_ids and not new_patients:
            break
        asked_ids |= new_ids
        read_patients |= new_patients
        if new_ids:
            tokens = _tokens(new_ids)
            for version in await find_any(svc, "Patient", "identifier", tokens):
                found.add(version.id)
            for version in await find_any(svc, "Person", "identifier", tokens):
                assert version.body is not None
                person = load_stored(version.body)
                found |= _targets(person)
                known_ids |= strong_identifiers(person)
        if new_patients:
            refs = [f"Patient/{p}" for p in new_patients]
            for version in await find_any(svc, "Patient", "_id", new_patients):
                assert version.body is not None
                known_ids |= strong_identifiers(load_stored(version.body))
            for version in await find_any(svc, "Person", "patient", refs):
                assert version.body is not None
                person = load_stored(version.body)
                found |= _targets(person)
                known_ids |= strong_identifiers(person)
        if len(found) >= MAX_PATIENTS:
            break
    live = {v.id for v in await find_any(svc, "Patient", "_id", found)} if found else set()
    return sorted(live)[:MAX_PATIENTS]

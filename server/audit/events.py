"""AuditEvents in the shape of IHE Basic Audit Log Patterns (https://profiles.ihe.net/ITI/BALP/).

Pure: an :class:`~server.hooks.Access` (one finished interaction) or an authentication outcome in,
an R4 AuditEvent (a dict) out. No I/O, no clock: the caller passes the time and the id, so the
builders are deterministic and the writer decides what "now" is.

- REST interactions (BALP "RESTful activities"): ``type`` = audit-event-type ``rest``, ``subtype`` =
  the restful-interaction code (and the operation's name for operations), ``action`` C/R/U/D/E.
- Authentication (BALP "Basic AuditEvent for a successful/failed Login"): ``type`` = DCM 110114 User
  Authentication, ``subtype`` = DCM 110122 Login (token issued or refused) or 110123 Logout
  (token revoked).
- ``agent``: the OAuth client (DCM 110153 Source Role ID, with the network address), the user when a
  person signed in (v3 IRCP, the requestor), the caller's institution (an Organization identifier),
  and this server (DCM 110152 Destination Role ID); purpose of use on the requestor and in
  ``purposeOfEvent`` (both are what the ``purpose`` search parameter reads).
- ``source``: this server, security-source-type 4 (Application Server).
- ``entity``: the patients involved (audit-entity-type 1 Person, object-role 1 Patient), the
  resource read or written (``what``), and for searches the query (object-role 24 Query, base64).
"""

from __future__ import annotations

import base64
import functools
import re
import time
from collections.abc import Iterable, Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, unquote

from server.fhir.instant import to_instant
from server.fhir.json import dumps, load_stored
from server.hooks import Access

EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
OPERATION = "http://yidang.org/fhir/CodeSystem/operation"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CLIENT_SYSTEM = "http://yidang.org/fhir/sid/client-id"
USER_SYSTEM = "http://yidang.org/fhir/sid/user"
INSTITUTION_SYSTEM = "http://yidang.org/fhir/sid/institution"
ROLE_SYSTEM = "http://yidang.org/fhir/CodeSystem/access-role"
SERVER_DISPLAY = "Yidang FHIR server"

ACTIONS = {
    "create": "C", "read": "R", "vread": "R", "update": "U", "patch": "U", "delete": "D",
    "history-instance": "R", "history-type": "R", "history-system": "R", "capabilities": "R",
}
"""AuditEvent.action per interaction; searches, operations and Bundles execute (``E``, as BALP's Query)."""

SUBTYPES = {"search-compartment": "search", "transaction": "transaction"}
"""Our interaction labels that are not restful-interaction codes, mapped to the code."""

PATIENT_ELEMENTS = ("subject", "patient", "beneficiary", "for", "individual")
"""Top-level references through which a resource is about a patient (Observation.subject,
AllergyIntolerance.patient, Coverage.beneficiary, Task.for …)."""
PATIENT_PARAMS = ("patient", "subject", "patient:Patient", "subject:Patient", "beneficiary", "individual")
MAX_PATIENTS = 100
"""At most this many patients are named in one event (a search page over many people)."""

SHOWN_OPERATIONS = frozenset({"$cross-lookup"})
"""Operations whose AuditEvent names each resource matched (the cross-institution look-up: which
reports of which institutions were shown, for the recognition statistics)."""

LOGIN = {"system": DCM, "code": "110122", "display": "Login"}
LOGOUT = {"system": DCM, "code": "110123", "display": "Logout"}


_second: tuple[int, str] = (-1, "")
"""The last second :func:`instant` formatted and its text (most calls fall in the same second);
replaced as one tuple, so a thread never sees a second with another's text."""
EARLIEST_FAST, LATEST_FAST = 0, 253402300799
"""Seconds since 1970 :func:`instant` formats itself (1970 to 9999); others go to ``to_instant``."""


def instant(us: int) -> str:
    """``to_instant(us)`` (``YYYY-MM-DDThh:mm:ss.ffffffZ``), its date-time part formatted once per second."""
    global _second
    second, fraction = divmod(us, 1_000_000)
    if not EARLIEST_FAST <= second <= LATEST_FAST:
        return to_instant(us)
    last = _second
    if last[0] != second:
        last = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{last[1]}.{fraction:06d}Z"


def outcome_code(status: int | None) -> str:
    """0 success, 4 minor failure (the caller's: 4xx), 8 serious failure (the server's: 5xx)."""
    if status is None or status < 400:
        return "0"
    return "4" if status < 500 else "8"


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    return {"system": system, "code": code, **({"display": display} if display else {})}


def _purpose(code: str) -> list[dict[str, Any]]:
    return [{"coding": [_coding(ACT_REASON, code)]}]


def agents(principal: object | None, address: str | None, base: str) -> list[dict[str, Any]]:
    """Who: the client, the user (a person signed in), the institution, and this server.

    The same caller from the same address gets the same list (remembered: most requests of a busy
    server come from a few clients): events share it, so it must not be changed in place."""
    if principal is None:
        return _agents(True, None, None, None, None, None, None, address, base)
    kind = getattr(principal, "kind", None)
    return _agents(kind == "anonymous", kind, getattr(principal, "subject", None),
                   getattr(principal, "client_id", None), getattr(principal, "purpose", None),
                   getattr(principal, "role", None), getattr(principal, "institution", "") or None, address, base)


@functools.lru_cache(maxsize=4096)
def _agents(anonymous: bool, kind: str | None, subject: str | None, client_id: str | None, purpose: str | None,
            role: object, institution: str | None, address: str | None, base: str) -> list[dict[str, Any]]:
    network = {"network": {"address": address, "type": "2"}} if address else {}
    out: list[dict[str, Any]] = []
    client = client_id or (subject if kind == "client" else None)
    person = kind in ("user", "external") and bool(subject)
    requestor: dict[str, Any] = {}
    if anonymous:
        out.append({"type": {"coding": [_coding(DCM, "110153", "Source Role ID")]},
                    "who": {"display": "anonymous"}, "requestor": True, **network})
        requestor = out[-1]
    else:
        if client:
            out.append({"type": {"coding": [_coding(DCM, "110153", "Source Role ID")]},
                        "who": {"identifier": {"system": CLIENT_SYSTEM, "value": client}},
                        "requestor": not person, **network})
            requestor = out[-1]
        if person:
            out.append({"type": {"coding": [_coding(PARTICIPATION, "IRCP", "information recipient")]},
                        "who": {"identifier": {"system": USER_SYSTEM, "value": subject}}, "name": subject,
                        "requestor": True, **({} if client else network)})
            requestor = out[-1]
        if role and requestor:
            requestor["role"] = [{"coding": [_coding(ROLE_SYSTEM, str(role))]}]
        if institution:
            out.append({"type": {"coding": [_coding(PARTICIPATION, "PRF", "performer")]},
                        "who": {"type": "Organization",
                                "identifier": {"system": INSTITUTION_SYSTEM, "value": institution}},
                        "requestor": False})
    if purpose and requestor:
        requestor["purposeOfUse"] = _purpose(purpose)
    out.append({"type": {"coding": [_coding(DCM, "110152", "Destination Role ID")]},
                "who": {"display": SERVER_DISPLAY, **({"identifier": {"value": base}} if base else {})},
                "requestor": False})
    return out


@functools.lru_cache(maxsize=64)
def source(base: str) -> dict[str, Any]:
    """Shared between events, like :func:`agents`."""
    return {"site": base or "yidang", "observer": {"display": SERVER_DISPLAY},
            "type": [_coding(SOURCE_TYPE, "4", "Application Server")]}


def patient_reference(value: str) -> str | None:
    """``Patient/ID`` from a reference or a search value (``123``, ``Patient/123``, an absolute URL
    ending so); None for references to anything else."""
    value = value.split("|")[0].strip()
    if not value:
        return None
    parts = [p for p in value.split("/") if p]
    if "Patient" in parts:
        at = len(parts) - 1 - parts[::-1].index("Patient")
        if at + 1 < len(parts):
            return f"Patient/{parts[at + 1]}"
        return None
    if len(parts) == 1 and ":" not in value:
        return f"Patient/{parts[0]}"
    return None


PATIENT_KEYS = tuple(f'"{name}":'.encode() for name in PATIENT_ELEMENTS)
REFERENCE_KEY = b'"reference":"'


PATIENT_ID = re.compile(rb'\{"resourceType":"Patient","id":"([A-Za-z0-9.-]{1,64})"')
"""The id of a stored Patient (stored JSON starts so), found without parsing the resource."""


def _json_patients(body: bytes) -> Iterator[str]:
    if body.startswith(b'{"resourceType":"Patient"'):
        head = PATIENT_ID.match(body)
        if head:
            yield f"Patient/{head.group(1).decode('ascii')}"
            return
        patient = load_stored(body)
        if isinstance(patient, dict) and isinstance(patient.get("id"), str):
            yield f"Patient/{patient['id']}"
        return
    if b"Patient/" not in body:
        return
    # each "reference":"…Patient/…" whose object (no braces before it inside) is the value of one
    # of PATIENT_ELEMENTS: found with byte searches, without parsing the resource
    at = body.find(REFERENCE_KEY)
    while at >= 0:
        start = at + len(REFERENCE_KEY)
        end = body.find(b'"', start)
        if end < 0:
            return
        value = body[start:end]
        if b"Patient/" in value:
            opened = body.rfind(b"{", 0, at)
            if opened > body.rfind(b"}", 0, at) and body.endswith(PATIENT_KEYS, 0, opened):
                found = patient_reference(value.decode("utf-8", "replace"))
                if found:
                    yield found
        at = body.find(REFERENCE_KEY, end)


def _resource_patients(resource: Any) -> Iterator[str]:
    if isinstance(resource, bytes | bytearray | memoryview):
        yield from _json_patients(bytes(resource))
        return
    if not isinstance(resource, dict):
        if resource is not None and type(resource).__name__ == "Fragment":  # a stored resource in a Bundle
            yield from _json_patients(dumps(resource))
        return
    kind = resource.get("resourceType")
    if kind == "Patient" and isinstance(resource.get("id"), str):
        yield f"Patient/{resource['id']}"
        return
    if kind == "Bundle":
        for entry in resource.get("entry") or ():
            if isinstance(entry, dict):
                yield from _resource_patients(entry.get("resource"))
        return
    for name in PATIENT_ELEMENTS:
        ref = resource.get(name)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str) and "Patient/" in ref["reference"]:
            found = patient_reference(ref["reference"])
            if found:
                yield found


def _query_patients(access: Access) -> Iterator[str]:
    if access.resource_type == "Patient" and access.resource_id and not access.resource_id.startswith("$"):
        yield f"Patient/{access.resource_id}"
    if not access.query:
        return
    for name, value in parse_qsl(access.query, keep_blank_values=False):
        if name in PATIENT_PARAMS or (access.resource_type == "Patient" and name == "_id"):
            for one in value.split(","):
                found = patient_reference(unquote(one))
                if found:
                    yield found


def patients(access: Access, resource: Any) -> list[str]:
    """The patients an interaction involved, in order of appearance, without repeats."""
    seen: dict[str, None] = {}
    written = access.reference or ""
    own = [f"Patient/{written.split('/')[1]}"] if written.startswith("Patient/") else []
    for ref in (*_query_patients(access), *own, *_resource_patients(resource)):
        seen.setdefault(ref, None)
        if len(seen) >= MAX_PATIENTS:
            break
    return list(seen)


def entities(access: Access, resource: Any, patient_refs: Iterable[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"what": {"reference": ref}, "type": _coding(ENTITY_TYPE, "1", "Person"),
         "role": _coding(OBJECT_ROLE, "1", "Patient")}
        for ref in patient_refs
    ]
    what = access.reference
    if what is None and access.resource_type and access.resource_id and not access.resource_id.startswith("$"):
        what = f"{access.resource_type}/{access.resource_id}"
    if what and not (access.resource_type == "Patient" and what.split("/_history")[0] in patient_refs):
        out.append({"what": {"reference": what}, "type": _coding(ENTITY_TYPE, "2", "System Object"),
                    "role": _coding(OBJECT_ROLE, "4", "Domain Resource")})
    if access.interaction.startswith(("search", "history")) or (access.interaction == "operation" and access.query):
        query: dict[str, Any] = {"type": _coding(ENTITY_TYPE, "2", "System Object"),
                                 "role": _coding(OBJECT_ROLE, "24", "Query")}
        if access.resource_type:
            query["description"] = access.resource_type
        if access.query:
            query["query"] = base64.b64encode(access.query.encode()).decode("ascii")
        out.append(query)
    if isinstance(resource, dict) and resource.get("resourceType") == "Bundle" and access.interaction == "operation" \
            and access.path.rsplit("/", 1)[-1] in SHOWN_OPERATIONS:  # the results a look-up showed (issue 15)
        for entry in resource.get("entry") or ():
            url = entry.get("fullUrl") if isinstance(entry, dict) and (entry.get("search") or {}).get("mode") == \
                "match" else None
            if isinstance(url, str) and url.count("/") >= 1:
                out.append({"what": {"reference": "/".join(url.rsplit("/", 2)[-2:])},
                            "type": _coding(ENTITY_TYPE, "2", "System Object"),
                            "role": _coding(OBJECT_ROLE, "4", "Domain Resource")})
    if isinstance(resource, dict) and resource.get("resourceType") == "Bundle" and \
            access.interaction == "transaction":
        for entry in resource.get("entry") or ():
            response = entry.get("response") if isinstance(entry, dict) else None
            location = response.get("location") if isinstance(response, dict) else None
            if isinstance(location, str):
                out.append({"what": {"reference": location}, "type": _coding(ENTITY_TYPE, "2", "System Object"),
                            "role": _coding(OBJECT_ROLE, "4", "Domain Resource")})
    return out


def subtypes(access: Access, resource: Any) -> list[dict[str, str]]:
    code = SUBTYPES.get(access.interaction, access.interaction)
    if code == "transaction" and isinstance(resource, dict) and resource.get("type") == "batch-response":
        code = "batch"
    out = [_coding(INTERACTION, code)]
    if access.interaction == "operation":
        name = access.path.rsplit("/", 1)[-1]
        out.append(_coding(OPERATION, name if name.startswith("$") else f"${name}"))
    return out


def rest_event(access: Access, *, event_id: str, recorded: int, base: str = "",
               involved: list[str] | None = None) -> dict[str, Any]:
    """The AuditEvent of one REST interaction (failed authentication when it ended 401);
    ``involved``: the patients, when already known (:func:`from_facts`)."""
    if access.status == 401:
        return authentication_event(event_id=event_id, recorded=recorded, base=base, principal=access.principal,
                                    address=access.address, success=False, description=access.outcome)
    resource = access.resource
    if involved is None:
        involved = patients(access, resource)
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": _coding(EVENT_TYPE, "rest", "Restful Operation"),
        "subtype": subtypes(access, resource),
        "action": ACTIONS.get(access.interaction, "E"),
        "recorded": instant(recorded),
        "outcome": outcome_code(access.status),
    }
    if access.outcome:
        event["outcomeDesc"] = access.outcome[:1000]
    purpose = getattr(access.principal, "purpose", None)
    if purpose:
        event["purposeOfEvent"] = _purpose(purpose)
    event["agent"] = agents(access.principal, access.address, base)
    event["source"] = source(base)
    found = entities(access, resource, involved)
    if found:
        event["entity"] = found
    return event


FACTS = "rest-1"
"""First item of a facts record (:func:`facts`): its layout, for records spooled by older releases."""
PRINCIPAL_FIELDS = ("kind", "subject", "client_id", "purpose", "role", "institution")
"""What an AuditEvent says of the principal (:func:`agents`, ``purposeOfEvent``)."""


def facts(access: Access, *, event_id: str, recorded: int) -> list[Any] | None:
    """What the AuditEvent of ``access`` is built from, as a compact JSON list: the request's own
    facts and the patients taken from its response body, so the event itself can be built later,
    off the request's path (:func:`from_facts` gives exactly what :func:`rest_event` gives now).
    None when the event needs more of the body than its patients (a batch or transaction names
    every entry, a look-up every match) or is a failed authentication: build it now."""
    if access.status == 401 or access.interaction == "transaction" or (
            access.interaction == "operation" and access.path.rsplit("/", 1)[-1] in SHOWN_OPERATIONS):
        return None
    principal = access.principal
    who = None if principal is None else [getattr(principal, name, None) for name in PRINCIPAL_FIELDS]
    return [FACTS, event_id, recorded, access.interaction, access.method, access.path, access.resource_type,
            access.resource_id, access.client, access.status, access.query, access.address, access.outcome,
            access.reference, patients(access, access.resource), who]


def from_facts(record: list[Any], base: str = "") -> dict[str, Any]:
    """The AuditEvent of a :func:`facts` record."""
    (_, event_id, recorded, interaction, method, path, type_, id_, client, status, query, address, outcome, reference,
     involved, who) = record
    principal = None if who is None else SimpleNamespace(**dict(zip(PRINCIPAL_FIELDS, who, strict=True)))
    access = Access(interaction, method, path, type_, id_, client, status, principal, query or "", address, outcome,
                    None, reference)
    return rest_event(access, event_id=event_id, recorded=recorded, base=base, involved=list(involved))


def authentication_event(*, event_id: str, recorded: int, base: str = "", principal: object | None = None,
                         address: str | None = None, success: bool, description: str | None = None,
                         subject: str | None = None, logout: bool = False) -> dict[str, Any]:
    """A token issued (``success``), refused or missing (failed authentication), or revoked (``logout``)."""
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": _coding(DCM, "110114", "User Authentication"),
        "subtype": [LOGOUT if logout else LOGIN],
        "action": "E",
        "recorded": instant(recorded),
        "outcome": "0" if success else "4",
    }
    if description:
        event["outcomeDesc"] = description[:1000]
    purpose = getattr(principal, "purpose", None)
    if purpose:
        event["purposeOfEvent"] = _purpose(purpose)
    if principal is not None:
        event["agent"] = agents(principal, address, base)
    else:
        who = {"identifier": {"system": CLIENT_SYSTEM, "value": subject}} if subject else {"display": "unknown"}
        event["agent"] = [{"type": {"coding": [_coding(DCM, "110153", "Source Role ID")]}, "who": who,
                           "requestor": True,
                           **({"network": {"address": address, "type": "2"}} if address else {})},
                          *agents(None, None, base)[-1:]]
    event["source"] = source(base)
    return event

"""The one policy decision point: who may see and change what. Pure (no I/O).

:class:`Policy` turns a :class:`~server.access.principal.Principal` into a
:class:`RestrictedGrant`; the interactions apply it (see :mod:`server.access.grant`). A resource is
visible when **both** the caller's role and one of its SMART scopes allow it:

Role (:data:`~server.access.principal.ROLES`)
    - ``platform``: everything.
    - ``institution``: the resources its institution is the source of (the source tag every write
      is stamped with), and the shared types (:data:`SHARED`).
    - ``district``: the Patients it manages — ``Patient.managingOrganization`` is the district's
      Organization (by identifier) or an Organization ``partOf`` it — and the resources in their
      Patient compartments; what it wrote itself; the shared types.
    - ``auditor``: AuditEvents and the definitional types; nothing clinical.
    - ``resident``: his or her own Patient compartment (the ``patient`` claim), and the shared types.

Scope (:mod:`server.access.scopes`)
    ``patient/`` scopes reach the launch patient's compartment (and the shared types); ``user/`` and
    ``system/`` scopes reach whatever the role does. A v2 query narrows a scope to the resources it
    matches, compiled by the same search parser as a request.

Writes: ``platform`` writes anything; ``institution`` creates what its scopes allow (not AuditEvent,
not the definitional types) and changes or deletes only resources its institution is the source
of; ``district``, ``auditor`` and ``resident`` write nothing clinical (transfer work comes with its
own operations), except that a ``resident`` creates, changes and revokes his or her own Consents
(``Consent.patient`` is the ``patient`` claim, before and after).

Consent (issue 14 §1): where a role reaches *another institution's data about a person* — today the
``district``'s reads of its residents' compartments — the patients' patient-privacy Consents decide
too (:mod:`server.consent.evaluate`). The request fetches them once (:mod:`server.consent.load`) and
:meth:`RestrictedGrant.with_consent` compiles the decisions, per type, into the same conditions: the
resources of a patient whose Consent denies the caller are left out of searches (totals included),
and a read of one is a 403 naming the Consent (:meth:`RestrictedGrant.consent_refusals`). The
``platform`` (operations), an ``institution`` (its own records) and a ``resident`` (his or her own
record) are not subject to Consents.

Every condition is an ordinary :mod:`server.search.model` condition, so both stores compile it
into the query: totals, paging and sort see only what may be seen.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from profiles.definitions import Definitions
from server.access.grant import Grant, How, WriteKind
from server.access.principal import SOURCE_TAG_SYSTEM, SOURCE_URI_PREFIX, Principal
from server.access.scopes import Scope, ScopeError, parse_scope
from server.consent.evaluate import ConsentFacts, Label, label_cases, patient_of
from server.errors import Conflict, FhirError, Forbidden
from server.search.compartment import OWNER, compartment, membership
from server.search.model import (
    Always,
    And,
    Chain,
    Condition,
    FieldTest,
    Has,
    Match,
    Not,
    Or,
    Query,
    ResourceTest,
)
from server.search.parse import parse_criteria
from server.search.registry import SearchRegistry

NEVER: Condition = ResourceTest("id", "in", ())
"""Matches nothing (both stores compile it)."""

DEFINITIONAL = frozenset({
    "ActivityDefinition", "CapabilityStatement", "CodeSystem", "CompartmentDefinition", "ConceptMap",
    "EventDefinition", "ExampleScenario", "GraphDefinition", "ImplementationGuide", "Library", "Measure",
    "MessageDefinition", "NamingSystem", "ObservationDefinition", "OperationDefinition", "PlanDefinition",
    "Questionnaire", "ResearchDefinition", "ResearchElementDefinition", "SearchParameter",
    "SpecimenDefinition", "StructureDefinition", "StructureMap", "TerminologyCapabilities", "TestReport",
    "TestScript", "ValueSet", "ChargeItemDefinition", "EffectEvidenceSynthesis", "Evidence", "EvidenceVariable",
    "RiskEvidenceSynthesis",
})
"""Conformance, terminology and knowledge resources: readable by every role, written by the platform."""
DIRECTORY = frozenset({
    "Organization", "Location", "Practitioner", "PractitionerRole", "HealthcareService", "Endpoint",
    "Medication", "MedicationKnowledge", "Substance", "OrganizationAffiliation", "InsurancePlan",
})
"""Who and what care is given by: readable by every role (a record names its institutions and
clinicians); written by the platform and, for what they are the source of, institutions."""
SHARED = DEFINITIONAL | DIRECTORY
AUDIT_TYPES = frozenset({"AuditEvent"})

ADMIN_OPERATIONS = frozenset({"reindex"})
"""Operations only the platform may invoke."""
ADMIN_INTERACTIONS = frozenset({"metrics"})
"""Server interactions beside FHIR only the platform may use (``/metrics`` unless it is public)."""
WRITE_OPERATIONS = frozenset({"ingest-local", "convert-local"})
"""Operations that write clinical data (through the ordinary write path, which checks each write)."""

# --- identity (issue 15 §1: the master patient index) ------------------------------------------
IDENTITY_TYPES = frozenset({"Person"})
"""The platform's Person records (which Patients of which institutions are one resident). Visible to
the platform; to a district for the Persons linking a Patient it manages (R4's Patient compartment
holds Person by ``link``); to a resident for his or her own; never to an institution (a Person names
other institutions' Patient ids: institutions find their duplicates with ``Patient/$match``, which
answers only Patients they may see). Written only by the platform (the linking listener, and
operators linking a weak match)."""
IDENTITY_PLATFORM_OPERATIONS = frozenset({"merge", "unmerge"})
"""``Patient/$merge``/``$unmerge``: the platform's 重复建档 clean-up (they re-point every institution's
references to the duplicate, so no one institution may run them); each write still passes check_write."""
IDENTITY_SEARCH_OPERATIONS = frozenset({"match"})
"""``Patient/$match`` is a search of Patients: the caller needs search permission on Patient, and its
candidates are searched through the grant (only what the caller may see is scored)."""


def _identity_operation_check(grant: RestrictedGrant, name: str, type_: str | None) -> None:
    if name in IDENTITY_PLATFORM_OPERATIONS and grant.role != "platform":
        raise Forbidden(f"${name} is a platform operation (the 重复建档 clean-up): role platform only, "
                        f"not {grant.role}")
    if name in IDENTITY_PLATFORM_OPERATIONS and type_ is not None:
        grant._check_write_type("u", type_)
    if name in IDENTITY_SEARCH_OPERATIONS and grant.visible(type_ or "Patient", "search") is None:
        raise Forbidden(f"${name} searches Patients, which the token's scopes and role {grant.role} do not allow")
# --- end identity ------------------------------------------------------------------------------

# --- bulk data (issue 16 §2: $export / $import) ------------------------------------------------
BULK_OPERATIONS = frozenset({"export", "import"})
"""Bulk Data kick-offs. ``$export``: the platform, or a client with ``system/`` scopes (SMART Backend
Services); what it exports is what its grant lets it search, compiled into every query of the job.
``$import``: the roles that write clinical data (platform, institution) with a ``system/`` scope;
every line is then an ordinary update, checked by :meth:`RestrictedGrant.check_write`."""


def _bulk_operation_check(grant: RestrictedGrant, name: str) -> None:
    if name not in BULK_OPERATIONS or grant.role == "platform":
        return
    if not any(s.context == "system" for s in grant.scopes):
        raise Forbidden(f"${name} is for SMART Backend Services clients: the token has no system/ scope")
    if name == "import" and grant.role != "institution":
        raise Forbidden(f"$import writes clinical data, which role {grant.role} may not")
# --- end bulk data -----------------------------------------------------------------------------

# --- transfer (issue 16 §1 档案转迁 and §3 数据回流: the workflow Tasks, $transfer, $data-return) -----
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


def _transfer_check_write(grant: RestrictedGrant, kind: WriteKind, type_: str, new: dict[str, Any] | None,
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
            return _transfer_write_type(grant, permission, type_)
        return False
    return _is_transfer_write(grant, kind, type_, new, old)


def _transfer_write_type(grant: RestrictedGrant, permission: str, type_: str) -> bool:
    """A district writes Tasks (its workflow Tasks: check_write decides which) when its scopes allow."""
    if grant.role != "district" or type_ != "Task":
        return False
    if not any(s.covers(type_, permission) and s.context != "patient" for s in grant.scopes):
        verb = {"c": "create", "u": "update", "d": "delete"}[permission]
        raise Forbidden(f"The token's scopes do not allow to {verb} Task resources")
    return True


def _transfer_visible(grant: RestrictedGrant, type_: str) -> Condition:
    """A district sees the workflow Tasks it is a party of (requester or owner, by identifier)."""
    if type_ != "Task" or grant.role != "district":
        return NEVER
    codes = ",".join(quote(f"{TASK_CODE_SYSTEM}|{c}", safe="") for c in sorted(WORKFLOW_TASKS))
    mine = _literal(grant.principal.institution)
    return _simplify_or([grant._criteria("Task", f"code={codes}&{side}:identifier={mine}")
                         for side in ("requester", "owner")])


def transfer_senders(grant: Grant) -> Condition | None:
    """The Patients the caller may transfer away (None: any): the platform any, a district those it
    manages (``managingOrganization`` its Organization or one ``partOf`` it), anyone else none."""
    if grant.open or getattr(grant, "role", None) == "platform":
        return None
    if isinstance(grant, RestrictedGrant) and grant.role == "district":
        return grant._managed_patients()
    return NEVER


def _transfer_operation_check(grant: RestrictedGrant, name: str) -> None:
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


def _transfer_stamp(grant: RestrictedGrant, resource: dict[str, Any]) -> bool:
    """Within a transfer, what the record already carries keeps its source institution (a district moving
    a record does not become the source of the Patient or its episodes). True: leave it as it is."""
    return getattr(grant, "transfer_facts", None) is not None and grant._source(resource) is not None
# --- end transfer ----------------------------------------------------------------------------------

READ_INTERACTIONS = frozenset({"read", "vread", "history-instance", "history-type"})
SEARCH_INTERACTIONS = frozenset({"search-type", "search-compartment"})
WRITES: dict[str, str] = {"create": "c", "update": "u", "patch": "u", "delete": "d"}
CACHED_GRANTS = 4096


class Policy:
    """Makes the :class:`RestrictedGrant` of a principal (cached: principals are small frozen values
    and a client sends many requests with one token)."""

    def __init__(self, registry: SearchRegistry, definitions: Definitions, resource_types: frozenset[str]) -> None:
        self.registry = registry
        self.definitions = definitions
        self.resource_types = resource_types
        self._grants: OrderedDict[Principal, RestrictedGrant] = OrderedDict()

    def grant(self, principal: Principal) -> RestrictedGrant:
        grant = self._grants.get(principal)
        if grant is None:
            grant = RestrictedGrant(principal, self)
            self._grants[principal] = grant
            if len(self._grants) > CACHED_GRANTS:
                self._grants.popitem(last=False)
        else:
            self._grants.move_to_end(principal)
        return grant

    def forget(self) -> None:
        """Drop cached grants (after a SearchParameter change: scope queries compile anew)."""
        self._grants.clear()


def _literal(value: str) -> str:
    """``value`` as one literal search value in a query string: its search syntax escaped (a comma
    is an OR, ``|`` splits system and code) and URL-encoded (``&``, ``%``). An institution claim of
    an external issuer is not checked like a registered one; it must never widen the criteria."""
    escaped = value.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")
    return quote(escaped, safe="")


def _simplify_and(items: Sequence[Condition]) -> Condition:
    kept: list[Condition] = []
    for item in items:
        if isinstance(item, Always):
            continue
        if item == NEVER:
            return NEVER
        kept.append(item)
    if not kept:
        return Always()
    return kept[0] if len(kept) == 1 else And(tuple(kept))


def _simplify_or(items: Sequence[Condition]) -> Condition:
    kept: list[Condition] = []
    for item in items:
        if isinstance(item, Always):
            return Always()
        if item == NEVER or item in kept:
            continue
        kept.append(item)
    if not kept:
        return NEVER
    return kept[0] if len(kept) == 1 else Or(tuple(kept))


class RestrictedGrant(Grant):
    """The decision for one principal (see the module docstring for the rules)."""

    def __init__(self, principal: Principal, policy: Policy) -> None:
        super().__init__(principal)
        self.policy = policy
        self.role = principal.role
        self.scopes: list[Scope] = []
        for text in principal.scopes:
            try:
                scope = parse_scope(text)
            except ScopeError:
                continue  # a token never carries one (the token service checks), but never widen on doubt
            if scope is not None:
                self.scopes.append(scope)
        self._visible: dict[tuple[str, str], Condition | None] = {}
        self._patient_comp = compartment(policy.definitions, "Patient")
        self.consent: ConsentFacts | None = None
        """The Consents this request honours (set by :meth:`with_consent`; None: not applied)."""
        self.break_glass: set[str] = set()
        """Consents (``Consent/id``, or ``default`` for the opt-in default) whose deny this request
        overrode by break-glass: flagged for the audit."""
        self._base: RestrictedGrant = self
        self._consent_plans: dict[str, tuple[Condition, tuple[tuple[str | None, Condition], ...]]] = {}

    @property
    def open(self) -> bool:
        return False

    @property
    def redacts_audit(self) -> bool:
        """A resident sees who read the record by institution and purpose, not by clinician
        (:mod:`server.access.redact`)."""
        return self.role == "resident"

    # --- what may be seen ---------------------------------------------------------------------

    def visible(self, type_: str, how: How = "read") -> Condition | None:
        key = (type_, how)
        if key not in self._visible:
            self._visible[key] = self._compute_visible(type_, "r" if how == "read" else "s")
        return self._visible[key]

    def _compute_visible(self, type_: str, permission: str) -> Condition | None:
        role = self._role_condition(type_)
        if role is None:
            return None
        granted = [self._scope_condition(s, type_) for s in self.scopes if s.covers(type_, permission)]
        scope = _simplify_or([c for c in granted if c is not None])
        if scope == NEVER:
            return None
        visible = _simplify_and([role, scope])
        return None if visible == NEVER else visible

    def _own(self, type_: str) -> Condition:
        return self._criteria(type_, f"_tag={SOURCE_TAG_SYSTEM}|{_literal(self.principal.institution)}")

    def _criteria(self, type_: str, query: str) -> Condition:
        try:
            return parse_criteria(type_, query, self.policy.registry)
        except FhirError:
            return NEVER  # a parameter this type lacks (or a scope query that does not parse): nothing

    def _managed_patients(self) -> Condition:
        org = self._criteria("Organization", f"identifier={_literal(self.principal.institution)}")
        return Chain("organization", "Organization", _simplify_or([org, Chain("partof", "Organization", org)]))

    def _in_compartment_of(self, type_: str, owner: Condition) -> Condition:
        """``type_`` resources in the Patient compartment of a Patient matching ``owner``."""
        comp = self._patient_comp
        if comp is None or not comp.contains_type(type_):
            return NEVER
        branches: list[Condition] = []
        for param in comp.members[type_]:
            if param == OWNER:
                if type_ == "Patient":
                    branches.append(owner)
            else:
                branches.append(Chain(param, "Patient", owner))
        return _simplify_or(branches)

    def _role_condition(self, type_: str) -> Condition | None:
        role = self.role
        if role == "platform":
            return Always()
        if type_ in IDENTITY_TYPES and role == "institution":
            return None  # a Person lists other institutions' Patients: institutions use Patient/$match instead
        if role == "auditor":
            return Always() if type_ in AUDIT_TYPES or type_ in DEFINITIONAL else None
        if type_ in AUDIT_TYPES and role != "resident":
            return None  # a resident reads the AuditEvents about his or her own record (below)
        if type_ in SHARED:
            return Always()
        if role == "institution":
            return self._own(type_)
        if role == "district":
            managed = self._in_compartment_of(type_, self._managed_patients())
            return _simplify_or([self._own(type_), _simplify_and([managed, self._consent_condition(type_)]),
                                 _transfer_visible(self, type_)])  # issue 16: its workflow Tasks
        if role == "resident":
            if self.principal.patient is None or self._patient_comp is None:
                return None
            cond = membership(self._patient_comp, self.principal.patient, (type_,))
            return None if cond == NEVER else cond
        return None

    def _scope_condition(self, scope: Scope, type_: str) -> Condition | None:
        if scope.context == "patient":
            if type_ in SHARED:
                context: Condition = Always()
            elif self.principal.patient is None or self._patient_comp is None:
                return None
            else:
                context = membership(self._patient_comp, self.principal.patient, (type_,))
        else:
            context = Always()
        if scope.query:
            context = _simplify_and([context, self._criteria(type_, scope.query)])
        return context

    def restrict(self, query: Query, how: How = "search") -> Query:
        from dataclasses import replace

        where = self._restrict_tree(query.where)
        types = query.types or tuple(sorted(self.policy.resource_types))
        groups: dict[Condition, list[str]] = {}
        for t in types:
            cond = self.visible(t, how)
            if cond is not None:
                groups.setdefault(cond, []).append(t)
        if not groups:
            return replace(query, where=NEVER)
        if len(types) == 1:
            return replace(query, where=_simplify_and([next(iter(groups)), where]))
        branches: list[Condition] = []
        for cond, members in groups.items():
            test = ResourceTest("type", "eq", members[0]) if len(members) == 1 else \
                ResourceTest("type", "in", tuple(members))
            branches.append(_simplify_and([test, cond]))
        visible_types = tuple(t for members in groups.values() for t in members)
        return replace(query, types=tuple(sorted(visible_types)) if not query.types else query.types,
                       where=_simplify_and([_simplify_or(branches), where]))

    def restrict_where(self, type_: str, where: Condition, how: How = "read") -> Condition:
        cond = self.visible(type_, how)
        if cond is None:
            return NEVER
        return _simplify_and([cond, self._restrict_tree(where)])

    def _restrict_tree(self, cond: Condition) -> Condition:
        """``cond`` with every chain target and ``_has`` source limited to what may be read."""
        if isinstance(cond, Chain):
            return Chain(cond.param, cond.target_type, self.restrict_where(cond.target_type, cond.where))
        if isinstance(cond, Has):
            return Has(cond.source_type, cond.param, self.restrict_where(cond.source_type, cond.where))
        if isinstance(cond, And):
            return And(tuple(self._restrict_tree(c) for c in cond.items))
        if isinstance(cond, Or):
            return Or(tuple(self._restrict_tree(c) for c in cond.items))
        if isinstance(cond, Not):
            return Not(self._restrict_tree(cond.item))
        return cond

    # --- what may be done -----------------------------------------------------------------------

    def check_interaction(self, interaction: str, type_: str | None) -> None:
        if interaction.startswith("operation:"):
            name = interaction.partition(":")[2].lstrip("$")
            self._check_identity_operation(name, type_)
            _bulk_operation_check(self, name)  # issue 16 §2
            _transfer_operation_check(self, name)  # issue 16 §1, §3
            from server.access.lookup import RECOGNITION_OPERATIONS, check_recognition  # issue 15

            if name in RECOGNITION_OPERATIONS:
                return check_recognition(self, name)
            if name in ADMIN_OPERATIONS and self.role != "platform":
                raise Forbidden(f"${name} is an administrative operation (role platform)")
            if name in WRITE_OPERATIONS and self.role not in ("platform", "institution"):
                raise Forbidden(f"${name} writes clinical data, which role {self.role} may not")
            return
        if interaction in ADMIN_INTERACTIONS and self.role != "platform":
            raise Forbidden(f"{interaction} is for the role platform, not {self.role}")
        if type_ is None:
            return  # system search/history and Bundles: each type and entry is decided on its own
        if interaction in READ_INTERACTIONS and self.visible(type_, "read") is None:
            raise Forbidden(f"The token's scopes and role {self.role} do not allow reading {type_}")
        if interaction in SEARCH_INTERACTIONS and self.visible(type_, "search") is None \
                and interaction != "search-compartment":
            raise Forbidden(f"The token's scopes and role {self.role} do not allow searching {type_}")
        if interaction in WRITES:
            self._check_write_type(WRITES[interaction], type_)

    def _check_identity_operation(self, name: str, type_: str | None) -> None:
        _identity_operation_check(self, name, type_)

    def _check_write_type(self, permission: str, type_: str) -> None:
        role = self.role
        if _transfer_write_type(self, permission, type_):  # issue 16: a district's workflow Tasks
            return
        if type_ in IDENTITY_TYPES and role != "platform":
            raise Forbidden(f"{type_} resources are the platform's identity records (master patient index): "
                            "role platform only")
        if role == "resident" and type_ == "Consent":  # his or her own (check_write checks whose)
            if not any(s.covers(type_, permission) for s in self.scopes):
                verb = {"c": "create", "u": "update", "d": "delete"}[permission]
                raise Forbidden(f"The token's scopes do not allow to {verb} Consent resources")
            return
        if role not in ("platform", "institution"):
            raise Forbidden(f"Role {role} may not change {type_} resources")
        if role == "institution" and (type_ in DEFINITIONAL or type_ in AUDIT_TYPES):
            raise Forbidden(f"{type_} resources are written by the platform, not by an institution")
        if not any(s.covers(type_, permission) and s.context != "patient" for s in self.scopes):
            verb = {"c": "create", "u": "update", "d": "delete"}[permission]
            raise Forbidden(f"The token's scopes do not allow to {verb} {type_} resources")

    def check_write(self, kind: WriteKind, type_: str, new: dict[str, Any] | None,
                    old: dict[str, Any] | None) -> None:
        if _transfer_check_write(self, kind, type_, new, old):  # issue 16: transfers and workflow Tasks
            return
        permission = "c" if kind == "create" or (kind == "update" and old is None) else kind[0]
        self._check_write_type(permission, type_)
        if self.role == "resident":  # only Consents pass _check_write_type: they must be the resident's own
            for resource in (new, old):
                if resource is not None and (self.principal.patient is None
                                             or patient_of(resource) != self.principal.patient):
                    raise Forbidden("A resident may only write Consents whose patient is his or her own "
                                    f"(Patient/{self.principal.patient})")
            return
        if self.role == "institution" and old is not None and self._source(old) != self.principal.institution:
            raise Forbidden(f"{type_}/{old.get('id', '')} is another institution's resource; "
                            "only its source institution may change it")
        for resource in (new, old):
            if resource is not None and not self._scopes_allow(type_, permission, resource):
                raise Forbidden(f"The token's scopes do not allow this {kind} of {type_} (scope query)")

    def _scopes_allow(self, type_: str, permission: str, resource: dict[str, Any]) -> bool:
        """Whether an unrestricted scope grants ``permission``, or a query-restricted one whose
        token/string criteria ``resource`` meets (checked on its search entries)."""
        candidates = [s for s in self.scopes if s.covers(type_, permission) and s.context != "patient"]
        if any(not s.query for s in candidates):
            return True
        from server.access.evaluate import matches  # only for query-restricted write scopes

        return any(matches(self._criteria(type_, s.query), resource, self.policy.registry) for s in candidates)

    @staticmethod
    def _source(resource: dict[str, Any]) -> str | None:
        meta = resource.get("meta")
        tags = meta.get("tag") if isinstance(meta, dict) else None
        for tag in tags if isinstance(tags, list) else ():
            if isinstance(tag, dict) and tag.get("system") == SOURCE_TAG_SYSTEM:
                code = tag.get("code")
                return code if isinstance(code, str) else None
        return None

    def stamp(self, resource: dict[str, Any]) -> None:
        institution = self.principal.institution
        meta = resource.get("meta")
        if not isinstance(meta, dict):
            if "meta" in resource:
                return  # not an object (null too): validation refuses the resource; nothing to stamp
            meta = resource["meta"] = {}
        if _transfer_stamp(self, resource):  # issue 16 §1: a transfer keeps the record's source
            return
        if self.role == "platform" and self._source(resource) is not None:
            return  # the platform writes on an institution's behalf (ingest, transfer): its tag stays
        if not institution or not isinstance(meta.get("tag", []), list):
            return  # (a tag that is not a list: validation refuses the resource)
        tags = [t for t in meta.get("tag", []) if not (isinstance(t, dict) and t.get("system") == SOURCE_TAG_SYSTEM)]
        tags.append({"system": SOURCE_TAG_SYSTEM, "code": institution})
        meta["tag"] = tags
        meta["source"] = SOURCE_URI_PREFIX + institution

    # --- consent (issue 14 §1) ------------------------------------------------------------------

    @property
    def consent_applies(self) -> bool:
        return self.role == "district"

    def consent_reach(self) -> Condition:
        if self.role == "district":
            return self._in_compartment_of("Consent", self._managed_patients())
        return NEVER

    def with_consent(self, facts: ConsentFacts) -> RestrictedGrant:
        grant = copy.copy(self)
        grant.consent = facts
        grant.break_glass = set()
        grant._base = self._base
        grant._visible = {}
        grant._consent_plans = {}
        return grant

    def without_consent(self) -> RestrictedGrant:
        return self._base

    def consent_refusals(self, type_: str) -> tuple[tuple[str | None, Condition], ...]:
        return self._consent_plan(type_)[1] if self.consent is not None else ()

    def _consent_condition(self, type_: str) -> Condition:
        return self._consent_plan(type_)[0] if self.consent is not None else Always()

    def _consent_plan(self, type_: str) -> tuple[Condition, tuple[tuple[str | None, Condition], ...]]:
        """What the Consents allow of ``type_``: the condition a resource must meet, and the refusals
        (each condition with its Consent id) that a read names. Each patient's decision depends only
        on which of the security labels its provisions name a resource carries, so it is decided once
        per combination (:func:`~server.consent.evaluate.label_cases`) and compiled into index tests:
        membership in the patient's compartment and ``_security``."""
        if type_ in self._consent_plans:
            return self._consent_plans[type_]
        facts, comp = self.consent, self._patient_comp
        if facts is None or comp is None or not comp.contains_type(type_):
            plan: tuple[Condition, tuple[tuple[str | None, Condition], ...]] = (Always(), ())
            self._consent_plans[type_] = plan
            return plan
        opt_in = facts.default == "opt-in"
        denied: dict[str | None, list[str]] = {}        # Consent id -> patients denied whatever the labels
        partly: dict[str | None, list[Condition]] = {}  # Consent id -> patient-and-labels conditions
        permitted: list[str] = []
        permitted_partly: list[Condition] = []
        for patient in sorted(facts.by_patient):
            cases = label_cases(facts.labels(patient))
            outcomes = [(present, absent, facts.decide(patient, type_, present)) for present, absent in cases]
            for _, _, decision in outcomes:
                if decision.break_glass:
                    self.break_glass.add(f"Consent/{decision.consent}" if decision.consent else "default")
            deny = [(p, a, d) for p, a, d in outcomes if d.effect == "deny"]
            if len(deny) == len(outcomes):
                ids = {d.consent for _, _, d in deny}
                if len(ids) == 1:
                    denied.setdefault(next(iter(ids)), []).append(patient)
                    continue
            if not deny:
                permitted.append(patient)
                continue
            member = self._patients_condition(type_, (patient,))
            for present, absent, decision in outcomes:
                branch = _simplify_and([member, self._labels_condition(type_, present, absent)])
                if decision.effect == "deny":
                    partly.setdefault(decision.consent, []).append(branch)
                else:
                    permitted_partly.append(branch)
        refusals: list[tuple[str | None, Condition]] = []
        for cid in sorted(set(denied) | set(partly), key=lambda c: c or ""):
            whole = [self._patients_condition(type_, tuple(denied[cid]))] if cid in denied else []
            refusals.append((cid, _simplify_or([*whole, *partly.get(cid, [])])))
        if opt_in:
            allowed = _simplify_or([self._patients_condition(type_, tuple(permitted)) if permitted else NEVER,
                                    *permitted_partly])
            if facts.break_glass:
                self.break_glass.add("default")
                allowed = Always()
            refusals.append((None, _simplify_not(allowed)))
            condition = allowed
        else:
            condition = _simplify_not(_simplify_or([c for _, c in refusals]))
        plan = (condition, tuple((cid, c) for cid, c in refusals if c != NEVER))
        self._consent_plans[type_] = plan
        return plan

    def _patients_condition(self, type_: str, patients: tuple[str, ...]) -> Condition:
        """``type_`` resources in the compartment of any of ``patients`` (index tests only)."""
        comp = self._patient_comp
        if comp is None or not patients or not comp.contains_type(type_):
            return NEVER
        ids = tuple(sorted(set(patients)))
        branches: list[Condition] = []
        for param in comp.members[type_]:
            if param == OWNER:
                branches.append(ResourceTest("id", "in", ids) if len(ids) > 1 else ResourceTest("id", "eq", ids[0]))
            else:
                ref = FieldTest("ref_id", "in", ids) if len(ids) > 1 else FieldTest("ref_id", "eq", ids[0])
                branches.append(Match("reference", param, (FieldTest("ref_type", "eq", "Patient"), ref)))
        return _simplify_or(branches)

    def _labels_condition(self, type_: str, present: frozenset[Label], absent: frozenset[Label]) -> Condition:
        def has(label: Label) -> Condition:
            system, code = label
            value = f"{quote(system, safe='')}|{quote(code, safe='')}" if system else quote(code, safe="")
            return self._criteria(type_, f"_security={value}")

        return _simplify_and([*(has(lb) for lb in sorted(present)),
                              *(_simplify_not(has(lb)) for lb in sorted(absent))])


def _simplify_not(item: Condition) -> Condition:
    if isinstance(item, Always):
        return NEVER
    if item == NEVER:
        return Always()
    return Not(item)


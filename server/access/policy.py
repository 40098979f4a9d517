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

The rules of the regional services are decided here too, each kept in its own module beside this
one and asked by :class:`RestrictedGrant`: :mod:`.identity` (the master patient index: Person,
``$merge``, ``$match``), :mod:`.lookup` (cross-institution look-up and mutual recognition),
:mod:`.bulk` (``$export``/``$import``) and :mod:`.transfer` (档案转迁 and 数据回流: the workflow
Tasks, ``$transfer``, ``$data-return``); :mod:`.conditions` holds the condition building blocks.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any
from urllib.parse import quote

from profiles.definitions import Definitions
from server.access.bulk import check_bulk_operation
from server.access.conditions import NEVER, literal, simplify_and, simplify_not, simplify_or
from server.access.grant import Grant, How, WriteKind
from server.access.identity import IDENTITY_TYPES, check_identity_operation
from server.access.principal import SOURCE_TAG_SYSTEM, SOURCE_URI_PREFIX, Principal
from server.access.scopes import Scope, ScopeError, parse_scope
from server.access.transfer import (
    check_transfer_operation,
    check_transfer_write,
    keeps_source,
    transfer_visible,
    transfer_write_type,
)
from server.consent.evaluate import ConsentFacts, Label, label_cases, patient_of
from server.errors import FhirError, Forbidden
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
        scope = simplify_or([c for c in granted if c is not None])
        if scope == NEVER:
            return None
        visible = simplify_and([role, scope])
        return None if visible == NEVER else visible

    def _own(self, type_: str) -> Condition:
        return self._criteria(type_, f"_tag={SOURCE_TAG_SYSTEM}|{literal(self.principal.institution)}")

    def _criteria(self, type_: str, query: str) -> Condition:
        try:
            return parse_criteria(type_, query, self.policy.registry)
        except FhirError:
            return NEVER  # a parameter this type lacks (or a scope query that does not parse): nothing

    def _managed_patients(self) -> Condition:
        org = self._criteria("Organization", f"identifier={literal(self.principal.institution)}")
        return Chain("organization", "Organization", simplify_or([org, Chain("partof", "Organization", org)]))

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
        return simplify_or(branches)

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
            return simplify_or([self._own(type_), simplify_and([managed, self._consent_condition(type_)]),
                                 transfer_visible(self, type_)])  # issue 16: its workflow Tasks
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
            context = simplify_and([context, self._criteria(type_, scope.query)])
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
            return replace(query, where=simplify_and([next(iter(groups)), where]))
        branches: list[Condition] = []
        for cond, members in groups.items():
            test = ResourceTest("type", "eq", members[0]) if len(members) == 1 else \
                ResourceTest("type", "in", tuple(members))
            branches.append(simplify_and([test, cond]))
        visible_types = tuple(t for members in groups.values() for t in members)
        return replace(query, types=tuple(sorted(visible_types)) if not query.types else query.types,
                       where=simplify_and([simplify_or(branches), where]))

    def restrict_where(self, type_: str, where: Condition, how: How = "read") -> Condition:
        cond = self.visible(type_, how)
        if cond is None:
            return NEVER
        return simplify_and([cond, self._restrict_tree(where)])

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
            check_bulk_operation(self, name)  # issue 16 §2
            check_transfer_operation(self, name)  # issue 16 §1, §3
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
        check_identity_operation(self, name, type_)

    def _check_write_type(self, permission: str, type_: str) -> None:
        role = self.role
        if transfer_write_type(self, permission, type_):  # issue 16: a district's workflow Tasks
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
        if check_transfer_write(self, kind, type_, new, old):  # issue 16: transfers and workflow Tasks
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
        if keeps_source(self, resource):  # issue 16 §1: a transfer keeps the record's source
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
                branch = simplify_and([member, self._labels_condition(type_, present, absent)])
                if decision.effect == "deny":
                    partly.setdefault(decision.consent, []).append(branch)
                else:
                    permitted_partly.append(branch)
        refusals: list[tuple[str | None, Condition]] = []
        for cid in sorted(set(denied) | set(partly), key=lambda c: c or ""):
            whole = [self._patients_condition(type_, tuple(denied[cid]))] if cid in denied else []
            refusals.append((cid, simplify_or([*whole, *partly.get(cid, [])])))
        if opt_in:
            allowed = simplify_or([self._patients_condition(type_, tuple(permitted)) if permitted else NEVER,
                                    *permitted_partly])
            if facts.break_glass:
                self.break_glass.add("default")
                allowed = Always()
            refusals.append((None, simplify_not(allowed)))
            condition = allowed
        else:
            condition = simplify_not(simplify_or([c for _, c in refusals]))
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
        return simplify_or(branches)

    def _labels_condition(self, type_: str, present: frozenset[Label], absent: frozenset[Label]) -> Condition:
        def has(label: Label) -> Condition:
            system, code = label
            value = f"{quote(system, safe='')}|{quote(code, safe='')}" if system else quote(code, safe="")
            return self._criteria(type_, f"_security={value}")

        return simplify_and([*(has(lb) for lb in sorted(present)),
                              *(simplify_not(has(lb)) for lb in sorted(absent))])



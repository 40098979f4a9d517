"""The cross-institution look-up (调阅) and mutual recognition (互认) rules of the policy decision
point (issue 15 §2–§3). Pure.

The look-up is the one way an institution sees another institution's results: a grant derived
from the caller's (:class:`LookupGrant`) that adds, for the Patients of one person (found by the
operation from the platform's master index; the patients' Consents applied by the operation), their
DiagnosticReports, Observations and ImagingStudies — only for a treatment purpose of use, and only
as far as the caller's ``user/``/``system/`` scopes (and their queries) reach those types.
:meth:`~server.access.policy.RestrictedGrant.check_interaction` asks :func:`check_recognition` for
these operations.
"""

from __future__ import annotations

from collections.abc import Sequence

from server.access.conditions import NEVER, simplify_and, simplify_or
from server.access.grant import Grant
from server.access.policy import RestrictedGrant
from server.errors import Forbidden
from server.search.model import Condition

LOOKUP_TYPES = frozenset({"DiagnosticReport", "Observation", "ImagingStudy"})
TREATMENT = frozenset({"TREAT", "ETREAT", "BTG", "ERTREAT", "COC"})
"""v3 PurposeOfUse codes that are treatment (TREAT and its descendants for one patient's care)."""
RECOGNITION_OPERATIONS = frozenset({"cross-lookup", "recognition-import", "recognition-decision",
                                    "recognition-stats"})
STATS_ROLES = frozenset({"platform", "district", "auditor", "institution"})


def check_recognition(grant: RestrictedGrant, name: str) -> None:
    """403 for a look-up or recognition operation the caller's role, purpose or scopes do not allow:

    - ``$cross-lookup``: platform; an institution with a treatment purpose of use and a
      ``user/``/``system/`` scope that reads DiagnosticReport;
    - ``$recognition-import``: platform;
    - ``$recognition-decision``: an institution (on results shown to it) or the platform;
    - ``$recognition-stats``: platform, district, auditor, and an institution for itself."""
    role = grant.role
    if name == "recognition-import":
        if role != "platform":
            raise Forbidden("$recognition-import changes the recognition catalogue (role platform)")
        return
    if name == "recognition-stats":
        if role not in STATS_ROLES:
            raise Forbidden(f"Role {role} may not read recognition statistics")
        return
    if role == "platform":
        return
    if role != "institution":
        raise Forbidden(f"${name} is for treating institutions; role {role} may not invoke it")
    if name == "cross-lookup":
        if grant.principal.purpose not in TREATMENT:
            raise Forbidden("$cross-lookup shows other institutions' results only for treatment: declare purpose "
                            f"of use TREAT (or ETREAT/BTG), not {grant.principal.purpose or 'none'}")
        if not any(s.covers("DiagnosticReport", "r") and s.context != "patient" for s in grant.scopes):
            raise Forbidden("The token's scopes do not allow reading DiagnosticReport (user/ or system/ scope)")


class LookupGrant(RestrictedGrant):
    """The caller's grant plus the results of ``patients`` (one person's Patients, consent applied):
    DiagnosticReport, Observation and ImagingStudy in those Patients' compartments, as far as the
    caller's ``user/``/``system/`` scopes (and their queries) reach. Everything else is decided as
    by the caller's own grant."""

    def __init__(self, base: RestrictedGrant, patients: Sequence[str]) -> None:
        super().__init__(base.principal, base.policy)
        self.patients = tuple(sorted(set(patients)))

    def _compute_visible(self, type_: str, permission: str) -> Condition | None:
        own = super()._compute_visible(type_, permission)
        if type_ not in LOOKUP_TYPES or not self.patients or self.role not in ("platform", "institution"):
            return own
        granted = [self._scope_condition(s, type_) for s in self.scopes
                   if s.covers(type_, permission) and s.context != "patient"]
        scope = simplify_or([c for c in granted if c is not None])
        if scope == NEVER:
            return own
        refs = ",".join(f"Patient/{p}" for p in self.patients)
        linked = simplify_and([self._criteria(type_, f"patient={refs}"), scope])
        visible = simplify_or([c for c in (own, linked) if c is not None])
        return None if visible == NEVER else visible

    def consent_reach(self) -> Condition:
        """The Consents of the looked-up Patients (the look-up applies them: :mod:`server.consent.load`)."""
        if not self.patients:
            return NEVER
        return self._criteria("Consent", "patient=" + ",".join(f"Patient/{p}" for p in self.patients))


def lookup_grant(grant: Grant, patients: Sequence[str]) -> Grant:
    """The grant a look-up of ``patients`` runs with (the open grant stays open)."""
    return LookupGrant(grant, patients) if isinstance(grant, RestrictedGrant) else grant

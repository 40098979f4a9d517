"""One access decided against a patient's Consents. Pure (no I/O, no clock: ``now`` is passed in).

A Consent counts when it is ``active``, of scope ``patient-privacy`` and names its ``patient``.
Its ``provision`` tree is read the R4 way: a provision applies to an access when every criterion it
states holds —

- ``period``: ``now`` lies within it (a date without a time zone is read as UTC);
- ``actor``: one of them is the asker: its ``reference`` names the asker's institution
  (``Organization/{id}`` of an Organization carrying the institution's identifier, or a reference
  by ``identifier`` with that value); a reference naming no organization (display only) matches by
  its ``role`` instead: a coding of :data:`ROLE_SYSTEM` whose code is the asker's role
  (``district``, ``institution`` …);
- ``purpose``: the declared purpose of use is one of them or a specialisation (TREAT covers ETREAT);
- ``class``: the resource type is one of them (``http://hl7.org/fhir/resource-types``);
- ``securityLabel``: the resource carries one of them in ``meta.security``;
- ``action``: one of them is ``access``, ``use`` or ``disclose`` (reading the record);
- ``data``, ``dataPeriod``, ``code`` are not decided here: a *deny* stating them applies (refuse
  rather than widen), a *permit* stating them does not.

The innermost applying provision decides (its ``type``, else its nearest ancestor's); two applying
siblings that disagree deny. A patient's Consents combine the same way: one deny denies (naming
that Consent), else one permit permits, else there is no decision and the regional default
(:data:`Default`) decides: ``opt-out`` permits, ``opt-in`` denies. Break-glass (purpose BTG or
ETREAT by a role allowed to) turns any deny into a permit that is flagged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import combinations
from typing import Any, Literal

from server.consent.purpose import ACT_REASON, BREAK_GLASS, covers

ROLE_SYSTEM = "http://yidang.org/fhir/CodeSystem/access-role"
"""Codes of the caller's role (``institution``, ``district``, ``platform``, ``auditor``,
``resident``) in ``Consent.provision.actor.role`` (the audit's agent role uses the same system)."""
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
READ_ACTIONS = frozenset({"access", "use", "disclose"})
MAX_LABELS = 6
"""Distinct security labels one patient's provisions may name and still be compiled exactly
(2^6 cases); beyond, that patient's resources are decided as if carrying all of them."""

Effect = Literal["permit", "deny"]
Default = Literal["opt-out", "opt-in"]
Label = tuple[str, str]
"""A security label: (system, code); system '' when the provision names none (any system matches)."""


@dataclass(frozen=True, slots=True)
class Asker:
    """Who asks, as Consents see it."""

    institution: str
    """The identifier value of the asker's institution."""
    organizations: frozenset[str] = frozenset()
    """Ids of the Organization resources carrying that identifier (actor references by id)."""
    role: str = ""
    purpose: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    effect: Effect | None
    """None: no Consent decides (the default then does)."""
    consent: str | None = None
    """The id of the Consent that decided (None for the default)."""
    break_glass: bool = False
    """A deny overridden by break-glass (always audited)."""
    by_default: bool = False


@dataclass(frozen=True)
class ConsentFacts:
    """What one request's consent decisions are made from: the counting Consents of each patient the
    asker could reach, the asker, the time, and the regional rules."""

    by_patient: Mapping[str, tuple[dict[str, Any], ...]]
    asker: Asker
    now: datetime
    default: Default = "opt-out"
    break_glass_roles: frozenset[str] = frozenset({"institution"})
    _labels: dict[str, tuple[Label, ...]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def break_glass(self) -> bool:
        """The asker declared a break-glass purpose and its role may break the glass."""
        return self.asker.purpose in BREAK_GLASS and self.asker.role in self.break_glass_roles

    def decide(self, patient: str, resource_type: str, labels: Iterable[Label]) -> Decision:
        """The final decision for a resource of ``patient`` (Consents, then default and break-glass)."""
        found = decide(self.by_patient.get(patient, ()), self.asker, resource_type, frozenset(labels), self.now)
        return finish(found, self.default, self.break_glass)

    def labels(self, patient: str) -> tuple[Label, ...]:
        if patient not in self._labels:
            self._labels[patient] = tuple(sorted(labels_named(self.by_patient.get(patient, ()))))
        return self._labels[patient]


def finish(found: Decision, default: Default, break_glass: bool) -> Decision:
    """``found`` with the regional default applied when no Consent decided, and a deny turned into
    a flagged permit under break-glass."""
    if found.effect is None:
        found = Decision("permit" if default == "opt-out" else "deny", None, by_default=True)
    if found.effect == "deny" and break_glass:
        return Decision("permit", found.consent, break_glass=True, by_default=found.by_default)
    return found


def counts(consent: Mapping[str, Any]) -> bool:
    """An active patient-privacy Consent (the only ones honoured)."""
    if consent.get("resourceType") != "Consent" or consent.get("status") != "active":
        return False
    scope = consent.get("scope")
    codings = scope.get("coding") if isinstance(scope, dict) else None
    return any(isinstance(c, dict) and c.get("code") == "patient-privacy" and c.get("system", CONSENT_SCOPE)
               == CONSENT_SCOPE for c in codings or ())


def patient_of(consent: Mapping[str, Any]) -> str | None:
    """The id of ``Consent.patient`` (a relative or absolute ``Patient/{id}`` reference)."""
    ref = consent.get("patient")
    text = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(text, str):
        return None
    parts = text.split("/_history/")[0].rstrip("/").split("/")
    return parts[-1] if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1] else None


def decide(consents: Iterable[Mapping[str, Any]], asker: Asker, resource_type: str, labels: frozenset[Label],
           now: datetime) -> Decision:
    """What ``consents`` (one patient's) say about this access: deny wins over permit."""
    permit: str | None = None
    for consent in consents:
        if not counts(consent):
            continue
        provision = consent.get("provision")
        if not isinstance(provision, dict):
            continue
        effect = _evaluate(provision, None, asker, resource_type, labels, now)
        cid = str(consent.get("id", ""))
        if effect == "deny":
            return Decision("deny", cid)
        if effect == "permit" and permit is None:
            permit = cid
    return Decision("permit", permit) if permit is not None else Decision(None)


def _evaluate(provision: Mapping[str, Any], inherited: Effect | None, asker: Asker, resource_type: str,
              labels: frozenset[Label], now: datetime) -> Effect | None:
    own = provision.get("type")
    effect: Effect | None = own if own in ("permit", "deny") else inherited
    if not _applies(provision, effect, asker, resource_type, labels, now):
        return None
    nested = [_evaluate(child, effect, asker, resource_type, labels, now)
              for child in provision.get("provision") or () if isinstance(child, dict)]
    decided = [e for e in nested if e is not None]
    if decided:
        return "deny" if "deny" in decided else "permit"
    return effect


def _applies(provision: Mapping[str, Any], effect: Effect | None, asker: Asker, resource_type: str,
             labels: frozenset[Label], now: datetime) -> bool:
    period = provision.get("period")
    if isinstance(period, dict) and not _within(period, now):
        return False
    actors = provision.get("actor")
    if actors and not any(_actor_is(a, asker) for a in actors if isinstance(a, dict)):
        return False
    purposes = provision.get("purpose")
    if purposes and not (asker.purpose and any(
            isinstance(p, dict) and p.get("system", ACT_REASON) == ACT_REASON and isinstance(p.get("code"), str)
            and covers(p["code"], asker.purpose) for p in purposes)):
        return False
    classes = provision.get("class")
    if classes and not any(isinstance(c, dict) and c.get("code") == resource_type
                           and c.get("system", RESOURCE_TYPES) == RESOURCE_TYPES for c in classes):
        return False
    wanted = provision.get("securityLabel")
    if wanted and not any(_label_held(w, labels) for w in wanted if isinstance(w, dict)):
        return False
    actions = provision.get("action")
    if actions and not any(c.get("code") in READ_ACTIONS for a in actions if isinstance(a, dict)
                           for c in a.get("coding") or () if isinstance(c, dict)):
        return False
    if any(provision.get(name) for name in ("data", "dataPeriod", "code")):
        return effect == "deny"
    return True


def _actor_is(actor: Mapping[str, Any], asker: Asker) -> bool:
    ref = actor.get("reference")
    ref = ref if isinstance(ref, dict) else {}
    text = ref.get("reference")
    ident = ref.get("identifier")
    if isinstance(text, str) and text:
        parts = text.split("/_history/")[0].rstrip("/").split("/")
        return len(parts) >= 2 and parts[-2] == "Organization" and parts[-1] in asker.organizations
    if isinstance(ident, dict) and ident.get("value"):
        return bool(asker.institution) and ident.get("value") == asker.institution
    role = actor.get("role")
    codings = role.get("coding") if isinstance(role, dict) else None
    return any(isinstance(c, dict) and c.get("system") == ROLE_SYSTEM and c.get("code") == asker.role
               for c in codings or ())


def _label_held(wanted: Mapping[str, Any], labels: frozenset[Label]) -> bool:
    code = wanted.get("code")
    system = wanted.get("system") or ""
    return any(c == code and (not system or not s or s == system) for s, c in labels)


def labels_named(consents: Iterable[Mapping[str, Any]]) -> set[Label]:
    """The security labels the provisions of ``consents`` test (what a decision can depend on)."""
    out: set[Label] = set()

    def walk(provision: Mapping[str, Any]) -> None:
        for label in provision.get("securityLabel") or ():
            if isinstance(label, dict) and isinstance(label.get("code"), str):
                out.add((str(label.get("system") or ""), label["code"]))
        for child in provision.get("provision") or ():
            if isinstance(child, dict):
                walk(child)

    for consent in consents:
        if counts(consent) and isinstance(consent.get("provision"), dict):
            walk(consent["provision"])
    return out


def label_cases(labels: Sequence[Label]) -> list[tuple[frozenset[Label], frozenset[Label]]]:
    """Every (present, absent) split of ``labels``: a patient's decision for a type is constant
    within each (beyond :data:`MAX_LABELS`, one case: all present)."""
    if len(labels) > MAX_LABELS:
        return [(frozenset(labels), frozenset())]
    cases = []
    for n in range(len(labels) + 1):
        for present in combinations(labels, n):
            cases.append((frozenset(present), frozenset(labels) - frozenset(present)))
    return cases


def resource_labels(resource: Mapping[str, Any]) -> frozenset[Label]:
    """The ``meta.security`` labels of ``resource``."""
    meta = resource.get("meta")
    security = meta.get("security") if isinstance(meta, dict) else None
    return frozenset((str(s.get("system") or ""), s["code"]) for s in security or ()
                     if isinstance(s, dict) and isinstance(s.get("code"), str))


def parse_time(value: str, *, end: bool) -> datetime | None:
    """A FHIR date or dateTime as an instant: the start of its precision, or its end (``end``)."""
    value = value.strip()
    try:
        if "T" in value:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        parts = [int(p) for p in value.split("-")]
    except ValueError:
        return None
    year, month, day = [*parts, 0, 0][:3]
    if not end:
        return datetime(year, month or 1, day or 1, tzinfo=UTC)
    if not month:
        return datetime(year, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    if not day:
        nxt = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
        return datetime.fromtimestamp(nxt.timestamp() - 1e-6, UTC)
    return datetime(year, month, day, 23, 59, 59, 999999, tzinfo=UTC)


def _within(period: Mapping[str, Any], now: datetime) -> bool:
    start, stop = period.get("start"), period.get("end")
    if isinstance(start, str):
        at = parse_time(start, end=False)
        if at is None or now < at:
            return False
    if isinstance(stop, str):
        at = parse_time(stop, end=True)
        if at is None or now > at:
            return False
    return True

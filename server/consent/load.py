"""The Consents one request must honour, fetched once from the store and handed to its grant.

Called where each request's grant is made (:mod:`server.http.endpoint`): for a caller the policy
says Consents apply to (:attr:`~server.access.grant.Grant.consent_applies`), one search finds the
active patient-privacy Consents of the patients it can reach (the policy's
:meth:`~server.access.grant.Grant.consent_reach`, not its scopes: a token without Consent scopes
must not escape them), and one the ids of the caller's Organization (actor references by id).
Everyone else costs nothing here. Break-glass is honoured only while the audit is on (it is always audited).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import quote

from server.consent.evaluate import Asker, ConsentFacts, counts, patient_of
from server.fhir.json import load_stored
from server.interactions.services import Services
from server.search.model import And, Condition, Query
from server.search.parse import parse_criteria
from server.stores.base import Version

log = logging.getLogger("yidang.consent")
PAGE = 1000


async def _all(svc: Services, type_: str, where: Condition) -> list[Version]:
    rows: list[Version] = []
    after: tuple[object, ...] | None = None
    while True:
        result = await svc.store.search(Query((type_,), where, count=PAGE, after=after))
        rows.extend(result.rows)
        if result.next_after is None or not result.rows:
            return rows
        after = result.next_after


async def consent_facts(svc: Services, now: datetime | None = None) -> ConsentFacts:
    """The active patient-privacy Consents of the patients ``svc.grant`` reaches, by patient."""
    grant = svc.grant
    principal = grant.principal
    active = parse_criteria("Consent", "status=active&scope=patient-privacy", svc.registry)
    where = And((active, grant.consent_reach()))
    by_patient: dict[str, list[dict[str, object]]] = {}
    for version in await _all(svc, "Consent", where):
        if version.body is None:
            continue
        consent = load_stored(version.body)
        patient = patient_of(consent)
        if patient is not None and counts(consent):
            by_patient.setdefault(patient, []).append(consent)
    organizations: frozenset[str] = frozenset()
    if principal.institution:
        value = principal.institution.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")
        named = parse_criteria("Organization", f"identifier={quote(value, safe='')}", svc.registry)
        orgs = await _all(svc, "Organization", named)
        organizations = frozenset(v.id for v in orgs if not v.deleted)
    settings = svc.settings
    return ConsentFacts({p: tuple(c) for p, c in by_patient.items()},
                        Asker(principal.institution, organizations, principal.role, principal.purpose),
                        now or datetime.now(UTC), settings.consent_default,
                        frozenset(settings.consent_break_glass_roles))


async def with_consents(svc: Services) -> Services:
    """``svc`` whose grant honours the Consents its caller is subject to (unchanged for others)."""
    if svc.grant.open or not svc.grant.consent_applies:
        return svc
    facts = await consent_facts(svc)
    if facts.break_glass:
        principal = svc.grant.principal
        if not svc.hooks.audit_sinks:  # break-glass is always audited: with the audit off it is not honoured
            log.warning("break-glass refused (audit off): %s (%s, %s) declares purpose %s", principal.subject,
                        principal.role, principal.institution, facts.asker.purpose)
            facts = replace(facts, break_glass_roles=frozenset())
        else:
            log.warning("break-glass: %s (%s, %s) declares purpose %s", principal.subject, principal.role,
                        principal.institution, facts.asker.purpose)
    return svc.for_grant(svc.grant.with_consent(facts))


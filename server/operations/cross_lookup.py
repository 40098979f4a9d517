"""``Patient/$cross-lookup``: one person's laboratory and imaging results from every institution
(调阅, issue 15 §2), each with its mutual-recognition status (互认, §3).

Input (query string or Parameters): ``identifier`` (token, repeatable: a strong identifier of the
person, 居民身份证号 ``urn:oid:2.16.156.10011.1.3`` or 居民健康卡号 ``urn:oid:2.16.156.10011.1.19``),
``patient`` (a Patient the caller can see, ``Patient/X``; also ``Patient/X/$cross-lookup``),
``category`` (laboratory | imaging | other), ``code`` (token, repeatable: any of), ``date`` (with
prefixes, repeatable: all of; the report's effective date), ``recognizable`` (``true``: only
results recognised as of ``as-of``), ``as-of`` (dateTime, default now; results after it are left
out), ``_count``, and the ``_cursor`` of a ``next`` link.

Output: a searchset Bundle: DiagnosticReports (``match``) of every Patient linked to the person
(:mod:`server.recognition.linked`), newest first (``date`` descending), each carrying the
``recognition-status`` extension (``valueCode`` and a nested ``rule``) and, when recognised, the
``HR`` ``meta.tag``; their Observations and ImagingStudies and the performing Organizations
(``include``); an ``outcome`` entry when Consents withheld some records or the glass was broken.

Access: the policy (:mod:`server.access.lookup`) allows the platform, and an institution with a
treatment purpose of use; the look-up then runs with a grant derived from the caller's for the
linked Patients, whose Consents are applied (:mod:`server.consent.evaluate`): a Patient whose
Consents deny the caller is left out (all of them: 403 naming the Consent), a result whose
security labels a Consent denies is left out, break-glass is reported. The reports shown are
remembered per institution, so that only they can be decided on (``$recognition-decision``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from server.access.lookup import LookupGrant, lookup_grant
from server.consent.evaluate import ConsentFacts, resource_labels
from server.consent.load import consent_facts
from server.errors import BadRequest, Forbidden, Gone, Issue, NotFound
from server.fhir.instant import now_us
from server.fhir.json import load_stored
from server.interactions.bundles import bundle, page_url, resource_value
from server.interactions.result import Result
from server.interactions.services import Services
from server.interactions.visibility import can_see
from server.operations.registry import Invocation, Operation
from server.recognition import linked
from server.recognition.model import Qualification
from server.recognition.reference import catalogue_for, organizations_by_identifier, qualifications_for
from server.recognition.status import (
    IMAGING_SECTIONS,
    LAB_SECTIONS,
    OBSERVATION_CATEGORY,
    V2_0074,
    annotate,
    category,
    codes,
    decide,
    parse_time,
    result_time,
)
from server.search.model import Query, ResourceTest
from server.search.parse import parse_search
from server.search.results import count, encode_cursor
from server.stores.base import Version

PARAMS = frozenset({"identifier", "patient", "category", "code", "date", "recognizable", "as-of", "_count",
                    "_cursor"})
SHOWN = "recognition-shown"
"""Key-value space: ``{institution}|DiagnosticReport/{id}`` -> when a look-up first showed it there."""
MAX_PAGES = 10
"""Store pages read to fill one filtered page (``recognizable``, ``category=other``, consent labels)."""
SOURCE_TAG = "http://yidang.org/fhir/CodeSystem/source-institution"


def _strings(inv: Invocation) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in inv.params:
        if name not in PARAMS:
            raise BadRequest(f"'{name}' is not a parameter of $cross-lookup ({', '.join(sorted(PARAMS))})",
                             expression=(name,))
        if isinstance(value, dict) and name == "patient":
            value = value.get("reference")
        if isinstance(value, dict) and name == "identifier":
            value = f"{value.get('system', '')}|{value.get('value', '')}"
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str | int):
            raise BadRequest(f"Parameter {name} has no usable value", expression=(name,))
        values.setdefault(name, []).append(str(value))
    return values


def _identifiers(raw: Sequence[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for value in raw:
        system, bar, code = value.partition("|")
        if not bar or not code.strip():
            raise BadRequest(f"identifier '{value}' is not system|value", expression=("identifier",))
        if system not in linked.STRONG:
            raise BadRequest(f"identifier system '{system}' is not a strong identifier of a person: use "
                             f"{linked.ID_CARD} (居民身份证号) or {linked.HEALTH_CARD} (居民健康卡号)",
                             expression=("identifier",))
        out.append((system, code.strip()))
    return out


def _patient_id(value: str) -> str:
    parts = [p for p in value.split("/_history/")[0].split("/") if p]
    if len(parts) >= 2 and parts[-2] == "Patient":
        return parts[-1]
    if len(parts) == 1 and "Patient" not in parts:
        return parts[0]
    raise BadRequest(f"patient '{value}' is not a Patient reference (Patient/id)", expression=("patient",))


def _category_tokens(kind: str) -> str | None:
    if kind == "laboratory":
        sections, general = LAB_SECTIONS, "laboratory"
    elif kind == "imaging":
        sections, general = IMAGING_SECTIONS, "imaging"
    else:
        return None
    tokens = [f"{V2_0074}|{c}" for c in sorted(sections - {general})] + [f"{OBSERVATION_CATEGORY}|{general}"]
    return ",".join(tokens)


async def _consented(svc: Services, patients: list[str]) -> tuple[list[str], ConsentFacts | None, list[str]]:
    """The consent call point: (Patients whose results may be shown, the Consents to apply to each
    result's labels, the Consents that withheld whole Patients). Only an institution is subject to
    Consents here (the platform is not; with authorization off nothing is)."""
    grant = svc.grant
    if grant.open or grant.principal.role != "institution":
        return patients, None, []
    assert isinstance(grant, LookupGrant)
    facts = await consent_facts(svc)
    allowed: list[str] = []
    refused: list[str] = []
    for patient in patients:
        decision = facts.decide(patient, "DiagnosticReport", ())
        if decision.effect == "deny" and not facts.labels(patient):
            refused.append(f"Consent/{decision.consent}" if decision.consent else "the regional opt-in default")
        else:
            allowed.append(patient)
    return allowed, facts, refused


def _patient_of(resource: dict[str, Any]) -> str | None:
    for name in ("subject", "patient"):
        ref = (resource.get(name) or {}).get("reference") if isinstance(resource.get(name), dict) else None
        if isinstance(ref, str) and "Patient/" in ref:
            return ref.rsplit("Patient/", 1)[1].split("/")[0]
    return None


def _permitted(facts: ConsentFacts | None, resource: dict[str, Any], type_: str, flagged: set[str]) -> bool:
    if facts is None:
        return True
    patient = _patient_of(resource)
    if patient is None:
        return True
    decision = facts.decide(patient, type_, resource_labels(resource))
    if decision.break_glass:
        flagged.add(f"Consent/{decision.consent}" if decision.consent else "default")
    return decision.effect != "deny"


def _refs(resource: dict[str, Any], element: str, type_: str) -> list[str]:
    out = []
    for item in resource.get(element) or ():
        ref = item.get("reference") if isinstance(item, dict) else None
        if isinstance(ref, str) and f"{type_}/" in ref:
            out.append(ref.rsplit(f"{type_}/", 1)[1].split("/")[0])
    return out


async def _by_ids(svc: Services, type_: str, ids: set[str]) -> list[Version]:
    if not ids:
        return []
    query = Query((type_,), ResourceTest("id", "in", tuple(sorted(ids))), count=len(ids))
    result = await svc.store.search(query if svc.grant.open else svc.grant.restrict(query))
    return [v for v in result.rows if v.body is not None]


def _performer(report: dict[str, Any]) -> tuple[str | None, str | None]:
    """(Organization id, institution identifier value) of who performed ``report``: its performer
    Organization (by reference or identifier), else the institution that wrote it (source tag)."""
    for item in report.get("performer") or ():
        if not isinstance(item, dict):
            continue
        ref = item.get("reference")
        if isinstance(ref, str) and "Organization/" in ref:
            return ref.rsplit("Organization/", 1)[1].split("/")[0], None
        ident = item.get("identifier")
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            return None, ident["value"]
    for tag in (report.get("meta") or {}).get("tag") or ():
        if isinstance(tag, dict) and tag.get("system") == SOURCE_TAG and isinstance(tag.get("code"), str):
            return None, tag["code"]
    return None, None


async def run(inv: Invocation) -> Result:
    svc = inv.svc
    values = _strings(inv)
    identifiers = _identifiers(values.get("identifier", []))
    asked = [_patient_id(v) for v in values.get("patient", [])] + ([inv.id] if inv.id else [])
    if not identifiers and not asked:
        raise BadRequest("$cross-lookup needs the person: an identifier (system|value) or a patient",
                         expression=("identifier",))
    for pid in asked:
        version = await svc.store.read("Patient", pid)
        if version is None or not await can_see(svc, version):
            raise NotFound(f"Patient/{pid} is not known")
        if version.deleted:
            raise Gone(f"Patient/{pid} was deleted")
    kind = values["category"][-1] if "category" in values else None
    if kind is not None and kind not in ("laboratory", "imaging", "other"):
        raise BadRequest(f"category '{kind}' is not laboratory, imaging or other", expression=("category",))
    recognizable = (values.get("recognizable") or ["false"])[-1]
    if recognizable not in ("true", "false"):
        raise BadRequest(f"recognizable '{recognizable}' is not true or false", expression=("recognizable",))
    as_of_raw = values["as-of"][-1] if "as-of" in values else None
    as_of = parse_time(as_of_raw) if as_of_raw is not None else datetime.now(UTC)
    if as_of is None:
        raise BadRequest(f"as-of '{as_of_raw}' is not a dateTime", expression=("as-of",))
    size = count(values["_count"][-1], svc.settings.max_count) if "_count" in values else svc.settings.default_count

    patients = await linked.linked_patients(svc, identifiers, asked)
    derived = svc.for_grant(lookup_grant(svc.grant, patients))
    allowed, facts, refused = await _consented(derived, patients)
    if patients and not allowed:
        raise Forbidden(f"The person's Consent withholds these records from this institution ({', '.join(refused)})")
    derived = svc.for_grant(lookup_grant(svc.grant, allowed))
    flagged: set[str] = set()

    params: list[tuple[str, str]] = [("patient", ",".join(f"Patient/{p}" for p in allowed) or "Patient/-"),
                                     ("_sort", "-date")]
    tokens = _category_tokens(kind) if kind else None
    if tokens:
        params.append(("category", tokens))
    if values.get("code"):
        params.append(("code", ",".join(values["code"])))
    params += [("date", d) for d in values.get("date", [])]
    if "_cursor" in values:
        params.append(("_cursor", values["_cursor"][-1]))
    request = parse_search(("DiagnosticReport",), params, svc.registry, strict=True, max_count=svc.settings.max_count,
                           default_count=size, base_url=inv.base)
    query = request.query
    filtered = recognizable == "true" or kind == "other" or facts is not None or as_of_raw is not None
    reports: list[dict[str, Any]] = []
    next_after: tuple[object, ...] | None = None
    for _ in range(MAX_PAGES if filtered else 1):
        page = Query(query.types, query.where, query.sort, size - len(reports), query.after, "none")
        result = await derived.store.search(page if derived.grant.open else derived.grant.restrict(page))
        for version in result.rows:
            if version.body is None:
                continue
            report = load_stored(version.body)
            found = result_time(report)
            if as_of_raw is not None and found is not None and found[0] > as_of:
                continue
            if kind == "other" and category(report) != "other":
                continue
            if not _permitted(facts, report, "DiagnosticReport", flagged):
                continue
            reports.append(report)
        next_after = result.next_after
        if next_after is None or len(reports) >= size:
            break
        query = Query(query.types, query.where, query.sort, query.count, next_after, "none")

    observations = {v.id: load_stored(v.body) for v in await _by_ids(
        derived, "Observation", {i for r in reports for i in _refs(r, "result", "Observation")}) if v.body}
    studies = {v.id: load_stored(v.body) for v in await _by_ids(
        derived, "ImagingStudy", {i for r in reports for i in _refs(r, "imagingStudy", "ImagingStudy")}) if v.body}
    observations = {k: o for k, o in observations.items() if _permitted(facts, o, "Observation", flagged)}
    studies = {k: s for k, s in studies.items() if _permitted(facts, s, "ImagingStudy", flagged)}

    performers = [_performer(r) for r in reports]
    by_value = await organizations_by_identifier(svc, {v for o, v in performers if o is None and v})
    org_ids = {o for o, _ in performers if o} | set(by_value.values())
    org_versions = await _by_ids(svc.for_grant(svc.grant), "Organization", org_ids)
    org_values: dict[str, str] = {}
    for version in org_versions:
        assert version.body is not None
        for ident in load_stored(version.body).get("identifier") or ():
            if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                org_values.setdefault(version.id, ident["value"])
    quals = await qualifications_for(svc, org_ids)
    all_codes = {c for r in reports for c in codes(r)} | {c for o in observations.values() for c in codes(o)}
    catalogue = await catalogue_for(svc, all_codes)

    entries: list[dict[str, Any]] = []
    shown: list[str] = []
    for report, (org, value) in zip(reports, performers, strict=True):
        org = org or by_value.get(value or "")
        institution = value or org_values.get(org or "", "") or ""
        held: list[Qualification] = quals.get(org or "", [])
        obs = [observations[i] for i in _refs(report, "result", "Observation") if i in observations]
        status = decide(report, obs, catalogue, institution, held, as_of)
        if recognizable == "true" and status.code != "recognized":
            continue
        entries.append({"fullUrl": f"{inv.base}/DiagnosticReport/{report['id']}", "resource": annotate(report, status),
                        "search": {"mode": "match"}})
        shown.append(str(report["id"]))
    kept_ids = {e["resource"]["id"] for e in entries}
    kept = [r for r in reports if r["id"] in kept_ids]
    wanted_obs = dict.fromkeys(i for r in kept for i in _refs(r, "result", "Observation") if i in observations)
    wanted_img = dict.fromkeys(i for r in kept for i in _refs(r, "imagingStudy", "ImagingStudy") if i in studies)
    entries += [{"fullUrl": f"{inv.base}/Observation/{i}", "resource": observations[i], "search": {"mode": "include"}}
                for i in wanted_obs]
    entries += [{"fullUrl": f"{inv.base}/ImagingStudy/{i}", "resource": studies[i], "search": {"mode": "include"}}
                for i in wanted_img]
    used_orgs = {org or by_value.get(value or "") for (org, value), r in zip(performers, reports, strict=True)
                 if r["id"] in kept_ids}
    entries += [{"fullUrl": f"{inv.base}/Organization/{v.id}", "resource": resource_value(v),
                 "search": {"mode": "include"}} for v in org_versions if v.id in used_orgs]
    issues: list[Issue] = []
    if refused:
        issues.append(Issue("information", "suppressed", f"{len(refused)} record(s) of this person are withheld by "
                            f"Consent ({', '.join(sorted(set(refused)))})"))
    if flagged:
        issues.append(Issue("warning", "informational", "Break-glass: Consent denials overridden for purpose "
                            f"{svc.grant.principal.purpose} ({', '.join(sorted(flagged))}); this access is audited"))
    if issues:
        entries.append({"resource": {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]},
                        "search": {"mode": "outcome"}})
    await _remember(svc, shown)
    path = f"Patient/{inv.id}/$cross-lookup" if inv.id else "Patient/$cross-lookup"
    plain = [(k, v) for k, vs in values.items() for v in vs if k != "_cursor"]
    links = [("self", page_url(inv.base, path, [(k, v) for k, vs in values.items() for v in vs]))]
    if next_after is not None and len(reports) >= size:
        links.append(("next", page_url(inv.base, path, [*plain, ("_cursor", encode_cursor(next_after, query))])))
    return Result(200, resource=bundle("searchset", entries, total=None, links=links))


async def _remember(svc: Services, report_ids: list[str]) -> None:
    """Record that the caller's institution was shown these reports (first time kept)."""
    institution = svc.grant.principal.institution
    at = now_us()

    async def one(report_id: str) -> None:
        await svc.store.kv_put(SHOWN, f"{institution}|DiagnosticReport/{report_id}", {"at": at}, create_only=True)

    await asyncio.gather(*(one(i) for i in report_ids))


async def was_shown(svc: Services, institution: str, report_id: str) -> bool:
    return await svc.store.kv_get(SHOWN, f"{institution}|DiagnosticReport/{report_id}") is not None


OPERATION = Operation(
    name="cross-lookup",
    levels=frozenset({"type", "instance"}),
    handler=run,
    types=frozenset({"Patient"}),
    definition="http://yidang.org/fhir/OperationDefinition/Patient-cross-lookup",
    documentation="One person's laboratory and imaging results from every institution, with their mutual "
                  "recognition status (issue 15 §2)",
)

"""The pure Consent evaluator (server/consent/evaluate.py) and purpose codes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from server.consent.evaluate import (
    ROLE_SYSTEM,
    Asker,
    ConsentFacts,
    Decision,
    decide,
    finish,
    label_cases,
    labels_named,
    parse_time,
    patient_of,
)
from server.consent.purpose import covers, declared_purpose
from server.errors import BadRequest, Forbidden

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
DISTRICT = Asker("D1", frozenset({"org-d1"}), "district", "TREAT")
R = ("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R")


def consent(provision: dict[str, Any], cid: str = "c1", status: str = "active") -> dict[str, Any]:
    return {"resourceType": "Consent", "id": cid, "status": status,
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "patient": {"reference": "Patient/p1"}, "provision": provision}


def org(ref: str) -> dict[str, Any]:
    return {"role": {"coding": [{"code": "PRCP"}]}, "reference": {"reference": ref}}


def role(code: str) -> dict[str, Any]:
    return {"role": {"coding": [{"system": ROLE_SYSTEM, "code": code}]}, "reference": {"display": code}}


def purpose(code: str) -> dict[str, str]:
    return {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": code}


def cls(type_: str) -> dict[str, str]:
    return {"system": "http://hl7.org/fhir/resource-types", "code": type_}


def effect(consents: list[dict[str, Any]], asker: Asker = DISTRICT, type_: str = "Observation",
           labels: frozenset[tuple[str, str]] = frozenset()) -> str | None:
    return decide(consents, asker, type_, labels, NOW).effect


def test_deny_all_and_inactive_or_other_scope() -> None:
    assert effect([consent({"type": "deny"})]) == "deny"
    assert effect([consent({"type": "deny"}, status="inactive")]) is None
    other = consent({"type": "deny"})
    other["scope"] = {"coding": [{"code": "research"}]}
    assert effect([other]) is None
    assert decide([consent({"type": "deny"}, cid="x")], DISTRICT, "Observation", frozenset(), NOW).consent == "x"


def test_actor_by_organization_id_identifier_and_role() -> None:
    assert effect([consent({"type": "deny", "actor": [org("Organization/org-d1")]})]) == "deny"
    assert effect([consent({"type": "deny", "actor": [org("Organization/other")]})]) is None
    by_ident = {"role": {"coding": [{"code": "PRCP"}]}, "reference": {"identifier": {"value": "D1"}}}
    assert effect([consent({"type": "deny", "actor": [by_ident]})]) == "deny"
    assert effect([consent({"type": "deny", "actor": [role("district")]})]) == "deny"
    assert effect([consent({"type": "deny", "actor": [role("institution")]})]) is None


def test_nested_innermost_wins() -> None:
    # deny everyone, except permit district D1 for treatment, except deny it lab Observations labelled R
    tree = {"type": "deny", "provision": [
        {"type": "permit", "actor": [org("Organization/org-d1")], "purpose": [purpose("TREAT")], "provision": [
            {"type": "deny", "class": [cls("Observation")], "securityLabel": [{"system": R[0], "code": "R"}]}]}]}
    assert effect([consent(tree)], type_="Condition") == "permit"
    assert effect([consent(tree)], type_="Observation") == "permit"
    assert effect([consent(tree)], type_="Observation", labels=frozenset({R})) == "deny"
    other = Asker("D2", frozenset({"org-d2"}), "district", "TREAT")
    assert effect([consent(tree)], asker=other, type_="Condition") == "deny"
    assert labels_named([consent(tree)]) == {R}


def test_purpose_hierarchy_and_mismatch() -> None:
    tree = {"type": "deny", "provision": [{"type": "permit", "purpose": [purpose("TREAT")]}]}
    assert effect([consent(tree)]) == "permit"
    assert effect([consent(tree)], asker=Asker("D1", role="district", purpose="ETREAT")) == "permit"
    assert effect([consent(tree)], asker=Asker("D1", role="district", purpose="HRESCH")) == "deny"
    assert effect([consent(tree)], asker=Asker("D1", role="district")) == "deny"
    assert covers("TREAT", "BTG") and not covers("ETREAT", "TREAT")


def test_period() -> None:
    assert effect([consent({"type": "deny", "period": {"end": "2024-12-31"}})]) is None
    assert effect([consent({"type": "deny", "period": {"start": "2025-06-02"}})]) is None
    assert effect([consent({"type": "deny", "period": {"start": "2025", "end": "2025-06"}})]) == "deny"
    assert effect([consent({"type": "deny", "period": {"end": "2025-06-01T11:59:59Z"}})]) is None
    end = parse_time("2024-02", end=True)
    assert end is not None and end.day == 29


def test_deny_wins_across_consents_and_unsupported_criteria() -> None:
    permit = consent({"type": "permit"}, cid="a")
    deny = consent({"type": "deny", "class": [cls("Observation")]}, cid="b")
    assert decide([permit, deny], DISTRICT, "Observation", frozenset(), NOW) == Decision("deny", "b")
    assert decide([permit, deny], DISTRICT, "Condition", frozenset(), NOW) == Decision("permit", "a")
    data = [{"meaning": "instance", "reference": {"reference": "Observation/1"}}]
    assert effect([consent({"type": "deny", "data": data})]) == "deny"  # refuse rather than widen
    assert effect([consent({"type": "permit", "data": data})]) is None


def test_default_and_break_glass() -> None:
    assert finish(Decision(None), "opt-out", False).effect == "permit"
    assert finish(Decision(None), "opt-in", False).effect == "deny"
    flagged = finish(Decision("deny", "c9"), "opt-out", True)
    assert flagged == Decision("permit", "c9", break_glass=True)
    facts = ConsentFacts({"p1": (consent({"type": "deny"}),)}, Asker("H", role="institution", purpose="BTG"), NOW)
    assert facts.break_glass and facts.decide("p1", "Observation", ()).break_glass
    district = ConsentFacts({"p1": (consent({"type": "deny"}),)}, Asker("D", role="district", purpose="BTG"), NOW)
    assert not district.break_glass and district.decide("p1", "Observation", ()).effect == "deny"


def test_label_cases_and_patient_reference() -> None:
    assert len(label_cases([R, ("", "V")])) == 4
    assert len(label_cases([("", str(i)) for i in range(9)])) == 1
    assert patient_of({"patient": {"reference": "http://x/fhir/Patient/p9"}}) == "p9"
    assert patient_of({"patient": {"reference": "Group/g"}}) is None


def test_declared_purpose() -> None:
    assert declared_purpose(None, None) is None
    assert declared_purpose(" TREAT ", None) == "TREAT"
    assert declared_purpose(None, "HPAYMT") == "HPAYMT"
    assert declared_purpose("HPAYMT", "HPAYMT") == "HPAYMT"
    with pytest.raises(BadRequest, match="NOPE"):
        declared_purpose("NOPE", None)
    with pytest.raises(Forbidden):
        declared_purpose("TREAT", "HPAYMT")

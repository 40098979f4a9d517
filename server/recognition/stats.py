"""Recognition statistics for one month (issue 15 §3), computed from the record, not from counters:

- look-ups, persons and results shown: the AuditEvents of ``$cross-lookup`` (successful ones) in
  the month — the requesting institution is the event's performer agent, the persons are the
  patients it names (look-ups whose patients overlap count as one person), the results shown are
  the DiagnosticReports it names;
- recognitions and repeats (by reason): the decisions (:mod:`.decisions`) made in the month.

Grouped by the requesting / deciding institution; ``institution`` narrows to one.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from server.errors import BadRequest
from server.fhir.json import load_stored
from server.interactions.services import Services
from server.recognition import decisions
from server.recognition.model import RECOGNITION
from server.recognition.reference import find

OPERATION_SYSTEM = "http://yidang.org/fhir/CodeSystem/operation"
PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
MAX_EVENTS = 1_000_000


@dataclass
class Tally:
    lookups: int = 0
    patients: list[frozenset[str]] = field(default_factory=list)
    results: int = 0
    distinct_results: set[str] = field(default_factory=set)
    recognitions: int = 0
    repeats: Counter[str] = field(default_factory=Counter)

    def persons(self) -> int:
        """Connected groups of patients (look-ups of one person through different records merge)."""
        parent: dict[str, str] = {}

        def root(x: str) -> str:
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for group in self.patients:
            items = sorted(group)
            for other in items[1:]:
                parent[root(other)] = root(items[0])
            if items:
                root(items[0])
        return len({root(x) for x in parent})

    def parts(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"name": "lookups", "valueInteger": self.lookups},
            {"name": "persons", "valueInteger": self.persons()},
            {"name": "resultsShown", "valueInteger": self.results},
            {"name": "distinctResultsShown", "valueInteger": len(self.distinct_results)},
            {"name": "recognitions", "valueInteger": self.recognitions},
            {"name": "repeats", "valueInteger": sum(self.repeats.values())},
        ]
        out += [{"name": "repeat", "part": [{"name": "reason", "valueString": reason},
                                            {"name": "count", "valueInteger": n}]}
                for reason, n in sorted(self.repeats.items())]
        return out


def check_period(period: str | None) -> str:
    if period is None or not PERIOD.match(period):
        raise BadRequest(f"period '{period or ''}' is not a month (YYYY-MM)", expression=("period",))
    return period


def _event(event: dict[str, Any]) -> tuple[str, frozenset[str], list[str]] | None:
    if event.get("outcome") != "0":
        return None
    institution = ""
    for agent in event.get("agent") or ():
        codes = {c.get("code") for c in ((agent.get("type") or {}).get("coding") or ())}
        if "PRF" in codes:
            institution = ((agent.get("who") or {}).get("identifier") or {}).get("value", "")
    patients: set[str] = set()
    reports: list[str] = []
    for entity in event.get("entity") or ():
        ref = (entity.get("what") or {}).get("reference")
        role = (entity.get("role") or {}).get("code")
        if isinstance(ref, str) and role == "1" and ref.startswith("Patient/"):
            patients.add(ref)
        elif isinstance(ref, str) and role == "4" and ref.startswith("DiagnosticReport/"):
            reports.append(ref)
    return institution, frozenset(patients), reports


async def compute(svc: Services, period: str, institution: str | None) -> dict[str, Any]:
    """The statistics of ``period`` as a Parameters resource."""
    total = Tally()
    by: dict[str, Tally] = {}
    events = await find(svc, "AuditEvent", [("subtype", f"{OPERATION_SYSTEM}|\\$cross-lookup"), ("date", period)],
                        limit=MAX_EVENTS)
    for version in events:
        assert version.body is not None
        found = _event(load_stored(version.body))
        if found is None or (institution is not None and found[0] != institution):
            continue
        who, patients, reports = found
        for tally in (total, by.setdefault(who, Tally())):
            tally.lookups += 1
            if patients:
                tally.patients.append(patients)
            tally.results += len(reports)
            tally.distinct_results.update(reports)
    made = await find(svc, "Basic", [("code", f"{RECOGNITION}|decision"), ("created", period)], limit=MAX_EVENTS)
    for version in made:
        assert version.body is not None
        d = decisions.read(load_stored(version.body))
        if institution is not None and d["institution"] != institution:
            continue
        for tally in (total, by.setdefault(d["institution"], Tally())):
            if d["decision"] == "recognized":
                tally.recognitions += 1
            elif d["decision"] == "repeated":
                tally.repeats[d["reason"] or "(no reason)"] += 1
    params: list[dict[str, Any]] = [{"name": "period", "valueString": period}]
    if institution is not None:
        params.append({"name": "institution", "valueString": institution})
    params += total.parts()
    for who in sorted(by):
        params.append({"name": "byInstitution", "part": [{"name": "institution", "valueString": who},
                                                         {"name": "month", "valueString": period},
                                                         *by[who].parts()]})
    return {"resourceType": "Parameters", "parameter": params}

"""A DiagnosticReport's recognition status as of a time (pure; issue 15 §3).

The rules, checked in this order:

1. ``not-applicable``: neither the report (``category``, an ``imagingStudy``) nor its Observations
   say laboratory or imaging, and none of their codes is a catalogue item (a physician's conclusion
   is never recognised, only the data and images are).
2. ``not-in-catalogue``: no code of the report (``code``) nor of its Observations is a catalogue item.
3. For each matching item (the report's own code first; only when it has none, its Observations'):
   ``lab-not-qualified`` when the performing institution held no qualification for the item on the
   day of the result, ``expired`` when the result is older than the item's validity window as of the
   time asked, else ``recognized``. The report takes the best status of its items (recognized over
   expired over lab-not-qualified).

Result time = ``issued``, else ``effectiveDateTime``, else ``effectivePeriod.end``/``start``; a
result without one cannot be placed in a window (``expired``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from server.recognition.model import HR_TAG, RECOGNITION, STATUS_EXT, Item, Qualification

V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LAB_SECTIONS = frozenset({"LAB", "BG", "BLB", "CG", "CH", "CP", "HM", "HLA", "ICU", "IMM", "MB", "MCB", "MYC", "OSL",
                          "SR", "TX", "VR", "laboratory"})
"""Laboratory codes: v2-0074 diagnostic service sections (检验) and observation-category ``laboratory``."""
IMAGING_SECTIONS = frozenset({"RAD", "CT", "NMR", "NMS", "RUS", "VUS", "OUS", "CUS", "RX", "XRC", "EC", "EN", "CTH",
                              "imaging"})
"""Imaging and examination codes (检查: radiology, CT, MR, nuclear medicine, ultrasound, electrophysiology)."""
CATEGORY_SYSTEMS = (V2_0074, OBSERVATION_CATEGORY)
RANK = {"recognized": 0, "expired": 1, "lab-not-qualified": 2}
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?")


@dataclass(frozen=True, slots=True)
class Status:
    code: str
    """One of :data:`server.recognition.model.STATUSES`."""
    rule: str
    """Why, in words (the nested ``rule`` extension)."""
    item: Item | None = None


def parse_time(value: object) -> datetime | None:
    """A FHIR date or dateTime as an aware datetime (a date alone: its start, UTC); None if not one."""
    if not isinstance(value, str) or not _DATE.match(value):
        return None
    text = value.replace("Z", "+00:00")
    if len(text) == 4:
        text += "-01-01"
    elif len(text) == 7:
        text += "-01"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def result_time(report: Mapping[str, Any]) -> tuple[datetime, str] | None:
    """(when, as written) of a result: ``issued``, else ``effective[x]``."""
    found = report.get("effectivePeriod")
    period: Mapping[str, Any] = found if isinstance(found, dict) else {}
    for raw in (report.get("issued"), report.get("effectiveDateTime"), period.get("end"), period.get("start")):
        moment = parse_time(raw)
        if moment is not None:
            return moment, str(raw)
    return None


def _codings(concepts: object) -> Iterable[dict[str, Any]]:
    items = concepts if isinstance(concepts, list) else [concepts]
    for concept in items:
        if isinstance(concept, dict):
            for coding in concept.get("coding") or ():
                if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                    yield coding


def category(report: Mapping[str, Any], observations: Sequence[Mapping[str, Any]] = ()) -> str:
    """``laboratory``, ``imaging`` or ``other`` from the report's and its Observations' categories."""
    if report.get("imagingStudy"):
        return "imaging"
    for source in (report, *observations):
        for coding in _codings(source.get("category")):
            if coding.get("system") in CATEGORY_SYSTEMS or "system" not in coding:
                if coding["code"] in LAB_SECTIONS:
                    return "laboratory"
                if coding["code"] in IMAGING_SECTIONS:
                    return "imaging"
    return "other"


def codes(resource: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (system, code) pairs of a resource's ``code``."""
    return [(str(c.get("system", "")), c["code"]) for c in _codings(resource.get("code"))]


def _label(item: Item) -> str:
    return f"item {item.system}|{item.code} ({item.name})"


def _one(item: Item, institution: str, qualifications: Sequence[Qualification], when: tuple[datetime, str] | None,
         as_of: datetime) -> Status:
    if when is None:
        return Status("expired", f"{_label(item)}: the result has neither issued nor effective[x], so its "
                                 f"{item.validity_days}-day window cannot be placed", item)
    moment, written = when
    day = date.fromisoformat(written[:10]) if len(written) >= 10 else moment.date()
    held = [q for q in qualifications if (q.system, q.code) == item.key and q.covers(day)]
    if not held:
        return Status("lab-not-qualified", f"{_label(item)}: {institution or 'the performer'} held no QC "
                                           f"qualification for it on {day.isoformat()}", item)
    q = held[0]
    age = as_of - moment
    if age > timedelta(days=item.validity_days):
        return Status("expired", f"{_label(item)}: result {written} is {age.days} days before "
                                 f"{as_of.date().isoformat()}, outside its {item.validity_days}-day window", item)
    return Status("recognized", f"{_label(item)}: {institution} qualified {q.valid_from.isoformat()} to "
                                f"{q.valid_to.isoformat()}; result {written} within {item.validity_days} days "
                                f"of {as_of.date().isoformat()} ({item.scope})", item)


def decide(report: Mapping[str, Any], observations: Sequence[Mapping[str, Any]],
           catalogue: Mapping[tuple[str, str], Item], institution: str,
           qualifications: Sequence[Qualification], as_of: datetime) -> Status:
    """The status of ``report`` (with its ``observations``) performed by ``institution`` (holding
    ``qualifications``) as of ``as_of``."""
    own = [catalogue[c] for c in dict.fromkeys(codes(report)) if c in catalogue]
    items = own or [catalogue[c] for c in dict.fromkeys(c for o in observations for c in codes(o)) if c in catalogue]
    kind = category(report, observations)
    if not items:
        if kind == "other":
            return Status("not-applicable", "not a laboratory or imaging result (检查/检验): no laboratory or imaging "
                                            "category, imaging study or catalogue item")
        listed = ", ".join(f"{s}|{c}" for s, c in codes(report)) or "-"
        return Status("not-in-catalogue", f"a {kind} result whose codes ({listed}) and whose Observations' codes "
                                          "are not in the catalogue")
    when = result_time(report)
    found = [_one(item, institution, qualifications, when, as_of) for item in dict.fromkeys(items)]
    return min(found, key=lambda s: RANK[s.code])


def annotate(report: Mapping[str, Any], status: Status) -> dict[str, Any]:
    """A copy of ``report`` with its status extension, and the HR ``meta.tag`` when recognised."""
    out = copy.deepcopy(dict(report))
    extensions = [e for e in out.get("extension") or () if not (isinstance(e, dict) and e.get("url") == STATUS_EXT)]
    extensions.append({"url": STATUS_EXT, "valueCode": status.code,
                       "extension": [{"url": "rule", "valueString": status.rule}]})
    out["extension"] = extensions
    meta = out.setdefault("meta", {})
    tags = [t for t in meta.get("tag") or () if not (isinstance(t, dict) and t.get("system") == RECOGNITION
                                                      and t.get("code") == "HR")]
    if status.code == "recognized":
        tags.append(dict(HR_TAG))
    if tags:
        meta["tag"] = tags
    else:
        meta.pop("tag", None)
    return out

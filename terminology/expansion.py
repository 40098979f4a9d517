"""Turn an evaluated value set into the ``$expand`` answer: text filter, activeOnly, paging.

http://hl7.org/fhir/R4/valueset-operation-expand.html. The full membership is computed once
and cached by the service (:mod:`terminology.compose`); this module only selects and formats, so
paging through a large expansion does not re-evaluate it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from terminology.compose import UNCLOSED, Entry, Evaluated
from terminology.errors import InvalidRequest, TooCostly

MAX_UNPAGED = 10_000
"""Largest expansion returned without ``count``. Why: R4's biggest local value set (DICOM, 3,156
codes) fits; anything above that is an imported table (a CSV-loaded national catalogue, ICD-10)
that a client should page or narrow with ``filter`` instead of pulling megabytes at once."""


@dataclass(frozen=True, slots=True)
class ExpandRequest:
    """The ``$expand`` options that shape the answer (not which value set)."""

    filter: str | None = None
    count: int | None = None
    offset: int | None = None
    active_only: bool = False
    include_designations: bool = False


def matches_text(entry: Entry, needle: str) -> bool:
    """The ``filter`` parameter: case-insensitive substring of code, display or any designation.

    Designations count so that a Chinese table can be searched in English and vice versa.
    """
    if needle in entry.code.casefold() or (entry.display and needle in entry.display.casefold()):
        return True
    return any(needle in str(d.get("value", "")).casefold() for d in entry.designations)


def select(evaluated: Evaluated, request: ExpandRequest) -> tuple[list[Entry], int]:
    """The page of entries to return and the total matching count."""
    if (request.count is not None and request.count < 0) or (request.offset is not None and request.offset < 0):
        raise InvalidRequest("$expand count and offset must not be negative")
    entries = list(evaluated.entries.values())
    if request.active_only:
        entries = [e for e in entries if not e.inactive]
    if request.filter:
        needle = request.filter.casefold()
        entries = [e for e in entries if matches_text(e, needle)]
    total = len(entries)
    start = request.offset or 0
    if request.count is None and total - start > MAX_UNPAGED:
        raise TooCostly(f"The expansion has {total} codes; page it with count/offset (at most {MAX_UNPAGED} "
                        "without count) or narrow it with filter")
    end = total if request.count is None else start + request.count
    return entries[start:end], total


def _contains(entry: Entry, designations: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"system": entry.system}
    if entry.version:
        item["version"] = entry.version
    if entry.abstract:
        item["abstract"] = True
    if entry.inactive:
        item["inactive"] = True
    item["code"] = entry.code
    if entry.display:
        item["display"] = entry.display
    if designations and entry.designations:
        item["designation"] = list(entry.designations)
    return item


def render(valueset: dict[str, Any], evaluated: Evaluated, request: ExpandRequest) -> dict[str, Any]:
    """The ValueSet (without narrative) carrying the requested page as ``expansion``."""
    page, total = select(evaluated, request)
    params: list[dict[str, Any]] = []
    if request.filter:
        params.append({"name": "filter", "valueString": request.filter})
    if request.count is not None:
        params.append({"name": "count", "valueInteger": request.count})
    if request.offset is not None:
        params.append({"name": "offset", "valueInteger": request.offset})
    if request.active_only:
        params.append({"name": "activeOnly", "valueBoolean": True})
    if request.include_designations:
        params.append({"name": "includeDesignations", "valueBoolean": True})
    expansion: dict[str, Any] = {
        "identifier": f"urn:uuid:{uuid.uuid4()}",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "total": total,
    }
    if not evaluated.closed:
        expansion["extension"] = [{"url": UNCLOSED, "valueBoolean": True}]
    if request.offset is not None:
        expansion["offset"] = request.offset
    if params:
        expansion["parameter"] = params
    if page:
        expansion["contains"] = [_contains(e, request.include_designations) for e in page]
    out = {k: v for k, v in valueset.items() if k not in ("text", "expansion")}
    out["resourceType"] = "ValueSet"
    out["expansion"] = expansion
    return out

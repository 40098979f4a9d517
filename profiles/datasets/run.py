"""One conversion run over a file: read, resolve headers, QC + convert, report; and identifier merging.

:func:`merge_identifiers` is the read-modify-write step of the ``merge`` write mode: the Patient
the platform already holds keeps every identifier it has (another institution's 病案号 with its
``assigner``, an old 15-digit number), and the incoming record's identifiers are added after them.
Identifiers are the same when system, value and assigner institution are the same, so merging an
unchanged record again gives the stored list unchanged and the server keeps the version.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from profiles.datasets import qc, readers, report
from profiles.datasets.convert import Conversion, Record, convert, resolve_headers
from profiles.datasets.spec import DataSet
from profiles.datasets.transfer import settle
from terminology.service import Terminology


@dataclass(slots=True)
class Run:
    conversion: Conversion
    report: dict[str, Any]
    records: list[Record] = field(default_factory=list)
    file_issues: list[qc.Issue] = field(default_factory=list)

    def rebuild(self, *, delivered: bool) -> None:
        """The report again from the outcomes as they stand (after delivery: what the store did)."""
        self.report = report.build(self.conversion.converter.dataset, self.records, self.conversion.outcomes,
                                   unknown_columns=self.conversion.unknown_columns, file_issues=self.file_issues,
                                   delivered=delivered)


def records_of(dataset: DataSet, data: bytes, kind: str) -> tuple[list[Record], list[str]]:
    """The file's records keyed by element id, and its unknown column headers."""
    headers, rows = readers.read(data, kind)
    mapping, unknown = resolve_headers(dataset, headers)
    records = [Record(n, {mapping[h]: v for h, v in row.items() if h in mapping}) for n, row in enumerate(rows, 1)]
    return records, unknown


def run(dataset: DataSet, data: bytes, *, kind: str, source: str | None = None,
        terminology: Terminology | None = None, today: date | None = None) -> Run:
    """Convert a whole file and build its QC report."""
    records, unknown = records_of(dataset, data, kind)
    conversion = convert(dataset, records, source=source, terminology=terminology, today=today)
    conversion.unknown_columns = unknown
    file_issues = [qc.issue(0, column, qc.WARNING, "unknown-column") for column in unknown]
    return Run(conversion, report.build(dataset, records, conversion.outcomes, unknown_columns=unknown,
                                        file_issues=file_issues), records, file_issues)


def _identity(identifier: dict[str, Any]) -> tuple[Any, Any, Any]:
    assigner = identifier.get("assigner", {})
    return identifier.get("system"), identifier.get("value"), (assigner.get("identifier") or {}).get("value")


def merge_identifiers(stored: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    """``incoming`` with the stored resource's identifiers first and its own new ones after."""
    merged = list(stored.get("identifier", []))
    seen = {_identity(i) for i in merged}
    for identifier in incoming.get("identifier", []):
        if _identity(identifier) not in seen:
            merged.append(identifier)
            seen.add(_identity(identifier))
    return {**incoming, "identifier": settle(merged)}  # a moved resident: one current 档案编号, the other old


Lookup = Callable[[str, str], Awaitable["dict[str, Any] | None"]]
"""``(type, criteria)`` → the one stored resource matching, or None (none, or several)."""


def _is_merge(entry: dict[str, Any]) -> bool:
    request = entry["request"]
    return request["method"] == "PUT" and entry["resource"]["resourceType"] == "Patient" and "?" in request["url"]


def merge_criteria(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    """``(type, criteria)`` of the ``merge`` entries of ``bundle``: what :func:`prepare` will look up."""
    return [("Patient", e["request"]["url"].split("?", 1)[1]) for e in bundle["entry"] if _is_merge(e)]


Notice = Callable[[str, "dict[str, Any]", "dict[str, Any]"], None]
"""``(criteria, stored, incoming)``: told of every ``merge`` Patient found stored."""


async def prepare(bundle: dict[str, Any], lookup: Lookup, notice: Notice | None = None) -> dict[str, Any]:
    """The transaction to send for ``bundle``: ``merge`` Patients turned into version-checked updates.

    For each ``PUT Patient?criteria`` entry whose Patient exists, the entry becomes
    ``PUT Patient/{id}`` with ``ifMatch`` on the version read and the stored identifiers merged in,
    so a second institution's record adds its numbers without dropping the first's; a concurrent
    change in between makes the transaction fail (412) rather than lose an identifier.
    ``bundle`` is not changed; entries that need no change are shared with it.
    """
    entries = []
    for entry in bundle["entry"]:
        if _is_merge(entry):
            criteria = entry["request"]["url"].split("?", 1)[1]
            stored = await lookup("Patient", criteria)
            if stored is not None:
                if notice is not None:
                    notice(criteria, stored, entry["resource"])
                request = {**entry["request"], "url": f"Patient/{stored['id']}"}
                version = (stored.get("meta") or {}).get("versionId")
                if version:
                    request["ifMatch"] = f'W/"{version}"'
                entry = {**entry, "request": request,
                         "resource": {**merge_identifiers(stored, entry["resource"]), "id": stored["id"]}}
        entries.append(entry)
    return {**bundle, "entry": entries}


def finish(result: Run, failures: dict[int, str], conflicts: dict[str, tuple[str, str]]) -> None:
    """Put what delivery did into the run and rebuild its report: each accepted record is ``stored`` unless its
    person's transaction failed (``failures``: the person's position in delivery order, which is the order of
    :meth:`Conversion.iter_bundles`, → the server's diagnostics), then it is ``failed`` with a ``server-rejected``
    error carrying them; and what the store showed about a person (``conflicts``: person criteria → QC code and
    detail) as a warning on each of its accepted records."""
    name = result.conversion.converter.dataset.by_role("name")
    position = {person: n for n, person in enumerate(result.conversion.converter.persons)}
    for outcome in result.conversion.outcomes:
        if not outcome.accepted:
            continue
        failed = failures.get(position.get(outcome.person or "", -1))
        outcome.status = "stored" if failed is None else "failed"
        if failed is not None:
            outcome.issues.append(qc.issue(outcome.record, None, qc.ERROR, "server-rejected", failed))
        conflict = conflicts.get(outcome.person or "")
        if conflict is not None:
            outcome.issues.append(qc.issue(outcome.record, name.id if name else None, qc.WARNING, *conflict))
    result.rebuild(delivered=True)

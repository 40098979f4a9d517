"""Delivering converted persons to a FHIR server: several persons per transaction, failures isolated.

A conversion gives one transaction Bundle per person (:mod:`profiles.datasets.convert`). Sending
each on its own costs one request, one store commit and, for ``merge`` Patients, one search per
person, which bounded ingest at a few hundred persons per second. Here persons are grouped into
batches of up to ``batch_entries`` entries: one search finds the stored Patients of the whole batch
(:func:`profiles.datasets.run.prepare` then merges their identifiers), and the batch goes as one
transaction. The batch is an all-or-nothing superset of each person's transaction, so nothing is
weaker than sending persons one by one; and when a batch fails, its persons are sent again one by
one, so a bad person fails alone (the QC report and the failure list name it) and the others land.

Persons in one batch share entries only where their Bundles hold the *same* entry (the same
fullUrl and content, e.g. the institution's Organization); a fullUrl seen twice with different
content closes the batch, so no entry is silently dropped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from profiles import resident_id
from profiles.datasets.qc import demographic_criteria, likely_duplicate, stored_name_conflict
from profiles.datasets.run import Lookup, merge_criteria, prepare
from profiles.datasets.transfer import close_moved_episodes

Find = Callable[[str, list[str]], Awaitable[dict[str, "dict[str, Any] | None"]]]
"""``(type, [criteria, …])`` → for each criteria the one stored resource matching it, or None."""
Search = Callable[[str, str], Awaitable["list[dict[str, Any]]"]]
"""``(type, criteria)`` → a few of the stored resources matching (for reporting likely duplicates)."""
Submit = Callable[[dict[str, Any]], Awaitable["list[str] | str"]]
"""Send one transaction: the response statuses of its entries, or an error text when it failed."""

DEFAULT_BATCH_ENTRIES = 400
_RESIDENT_ID = f"identifier={resident_id.SYSTEM}|"


@dataclass(slots=True)
class Delivery:
    persons: int = 0
    transactions: int = 0
    failed: int = 0
    """Persons whose transaction failed."""
    created: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)
    failures: dict[int, str] = field(default_factory=dict)
    """Position of a failed person in the delivered order (0-based) → the server's diagnostics."""
    conflicts: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Person criteria → (QC code, detail) of what the store showed about that person: the person's key
    under another name (``stored-id-different-name``), or another stored person with the same name,
    sex, birth date and phone (``stored-likely-duplicate``, for persons without an ID number)."""

    def notice(self, criteria: str, stored: dict[str, Any], incoming: dict[str, Any]) -> None:
        conflict = stored_name_conflict(stored, incoming)
        if conflict is not None:
            self.conflicts[criteria] = ("stored-id-different-name", conflict)


def batches(bundles: Iterable[dict[str, Any]],
            batch_entries: int = DEFAULT_BATCH_ENTRIES) -> Iterator[list[dict[str, Any]]]:
    """Consecutive persons grouped so that each group holds at most ``batch_entries`` distinct entries
    (a person larger than that is a group of its own) and no fullUrl with two different contents;
    lazily, so a large file is never held as FHIR all at once."""
    current: list[dict[str, Any]] = []
    seen: dict[str, dict[str, Any]] = {}
    for bundle in bundles:
        entries = bundle["entry"]
        new = [e for e in entries if e["fullUrl"] not in seen]
        clash = any(e["fullUrl"] in seen and seen[e["fullUrl"]] != e for e in entries)
        if current and (clash or len(seen) + len(new) > batch_entries):
            yield current
            current, seen = [], {}
        current.append(bundle)
        for entry in entries:
            seen.setdefault(entry["fullUrl"], entry)
    if current:
        yield current


def combine(bundles: list[dict[str, Any]]) -> dict[str, Any]:
    """One transaction holding every distinct entry of ``bundles``, in first-seen order."""
    if len(bundles) == 1:
        return bundles[0]
    entries: dict[str, dict[str, Any]] = {}
    for bundle in bundles:
        for entry in bundle["entry"]:
            entries.setdefault(entry["fullUrl"], entry)
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries.values())}


async def _lookups(group: list[dict[str, Any]], find: Find) -> Lookup:
    """The stored Patients of the group's ``merge`` entries, found together."""
    wanted: dict[str, list[str]] = {}
    for bundle in group:
        for type_, criteria in merge_criteria(bundle):
            wanted.setdefault(type_, []).append(criteria)
    found = {type_: await find(type_, criteria) for type_, criteria in wanted.items()}

    async def lookup(type_: str, criteria: str) -> dict[str, Any] | None:
        return found[type_].get(criteria)
    return lookup


async def _likely_duplicates(group: list[dict[str, Any]], lookup: Lookup, search: Search,
                             delivery: Delivery) -> None:
    """Persons keyed by something other than an ID number, looked for among the stored persons by
    name, sex, birth date and phone: another stored Patient with all four is a likely duplicate."""
    for bundle in group:
        for type_, criteria in merge_criteria(bundle):
            if criteria.startswith(_RESIDENT_ID):
                continue
            incoming = next(e["resource"] for e in bundle["entry"] if e["request"]["url"] == f"{type_}?{criteria}")
            demographics = demographic_criteria(incoming)
            if demographics is None:
                continue
            other = likely_duplicate(await lookup(type_, criteria), await search(type_, demographics))
            if other is not None:
                delivery.conflicts[criteria] = ("stored-likely-duplicate", other)


def diagnostics(outcome: Any) -> str:
    """An OperationOutcome's issues as one line (``severity code: diagnostics @ expression; …``), or the text."""
    if isinstance(outcome, dict) and outcome.get("resourceType") == "OperationOutcome":
        parts = []
        for issue in outcome.get("issue") or ():
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or ""
            where = ", ".join(issue.get("expression") or ())
            parts.append(f"{issue.get('severity', 'error')} {issue.get('code', '')}: {text}" +
                         (f" @ {where}" if where else ""))
        return "; ".join(parts)[:2000] or "OperationOutcome without issues"
    return str(outcome)[:2000]


def _count(delivery: Delivery, statuses: list[str]) -> None:
    for status in statuses:
        if status.startswith("201"):
            delivery.created += 1
        elif status.startswith("200"):
            delivery.updated += 1


async def deliver(bundles: Iterable[dict[str, Any]], *, find: Find, submit: Submit, search: Search | None = None,
                  batch_entries: int = DEFAULT_BATCH_ENTRIES,
                  advance: Callable[[int], None] | None = None) -> Delivery:
    """Send every person, batched; a failed batch is retried person by person. With ``search``,
    persons without an ID number are checked for likely duplicates among the stored ones."""
    delivery = Delivery()
    for group in batches(bundles, batch_entries):
        first = delivery.persons
        delivery.persons += len(group)
        lookup = await _lookups(group, find)
        if search is not None:
            await _likely_duplicates(group, lookup, search, delivery)
        prepared = [await prepare(bundle, lookup, delivery.notice) for bundle in group]
        if search is not None:  # a moved resident: the old district's enrolment is closed with the new one's
            prepared = [await close_moved_episodes(bundle, search) for bundle in prepared]
        outcome = await submit(combine(prepared))
        delivery.transactions += 1
        if isinstance(outcome, list):
            _count(delivery, outcome)
        elif len(group) == 1:
            delivery.failed += 1
            delivery.errors.append(outcome)
            delivery.failures[first] = outcome
        else:
            for n, bundle in enumerate(group):  # isolate the failing person(s); re-read what the batch did not write
                alone = await prepare(bundle, await _lookups([bundle], find))
                if search is not None:
                    alone = await close_moved_episodes(alone, search)
                single = await submit(alone)
                delivery.transactions += 1
                if isinstance(single, list):
                    _count(delivery, single)
                else:
                    delivery.failed += 1
                    delivery.errors.append(single)
                    delivery.failures[first + n] = single
        if advance:
            advance(len(group))
    return delivery

"""Sort values per parameter type (http://hl7.org/fhir/R4/search.html#sort), defined once for
both stores and the in-memory evaluator.

A parameter sorts by one value per entry: its smallest over the resource's entries when
ascending, its largest when descending; resources without one come last either way, then type and
id break ties. Ranges (date, number, quantity) sort by their start ascending and their end
descending. A reference sorts by its reference string as a client wrote it relative to this
server, ``Type/id`` (absolute and canonical URLs by the URL), so both stores order references the
same way; SQLite computes that string in SQL, MongoDB stores it with the resource.
"""

from __future__ import annotations

from collections.abc import Mapping

SORT_FIELDS: dict[str, tuple[str, str]] = {
    # table: (field for ascending, field for descending)
    "token": ("code", "code"), "string": ("value", "value"), "uri": ("value", "value"),
    "reference": ("ref", "ref"), "date": ("lo", "hi"), "number": ("lo", "hi"),
    "quantity": ("lo", "hi"),
}
"""``ref`` is the derived reference string of :func:`reference_string`, not a stored field."""

NUMERIC = frozenset({"date", "number", "quantity"})


def reference_string(row: Mapping[str, object]) -> str | None:
    """``Type/id`` of a local reference entry, else its URL (None when it has neither)."""
    if row.get("ref_type") and row.get("ref_id"):
        return f"{row['ref_type']}/{row['ref_id']}"
    url = row.get("url")
    return str(url) if url else None


def sort_value(table: str, row: Mapping[str, object], descending: bool) -> object:
    """The value one entry (``row``: its fields by name) contributes to a sort on its parameter."""
    field = SORT_FIELDS[table][1 if descending else 0]
    return reference_string(row) if field == "ref" else row.get(field)


def sort_value_types(table: str) -> tuple[type, ...]:
    """Python types a sort value of ``table`` may have (what a paging cursor may carry)."""
    return (int, float) if table in NUMERIC else (str,)

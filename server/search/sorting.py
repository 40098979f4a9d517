"""Sort values of a resource, computed once at write time from its search entries.

``_sort=param`` orders by the smallest value of the parameter ascending and by the largest
descending (http://hl7.org/fhir/R4/search.html#sort); resources without a value sort last. Both
stores keep the result of :func:`sort_values` beside the resource so sorting is an index lookup.
"""

from __future__ import annotations

from collections.abc import Iterable

from server.search.model import Entry


def _low_high(entry: Entry) -> tuple[object, object] | None:
    table, v = entry.table, entry.values
    if table == "token":
        key = v[1]
        return (key, key) if key is not None else None
    if table in ("string", "uri", "composite"):
        return (v[0], v[0]) if v[0] is not None else None
    if table in ("date", "number", "quantity"):
        return (v[0], v[1])
    if table == "reference":
        key = f"{v[0]}/{v[1]}" if v[1] is not None else v[2]
        return (key, key) if key is not None else None
    return None


def sort_values(entries: Iterable[Entry]) -> dict[str, tuple[object, object]]:
    """``{param: (min of low values, max of high values)}`` over all entries of each parameter."""
    out: dict[str, tuple[object, object]] = {}
    for entry in entries:
        pair = _low_high(entry)
        if pair is None or pair[0] is None:
            continue
        seen = out.get(entry.param)
        if seen is None:
            out[entry.param] = pair
        else:
            lo = pair[0] if pair[0] < seen[0] else seen[0]  # type: ignore[operator]
            hi = pair[1] if pair[1] > seen[1] else seen[1]  # type: ignore[operator]
            out[entry.param] = (lo, hi)
    return out

"""history at instance, type and system level (http://hl7.org/fhir/R4/http.html#history).

Newest first, ``_count``/``_since``/``_at``, and keyset paging: the ``next`` link carries the
position of the last entry, so pages stay consistent while new versions are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from server.errors import BadRequest, NotFound
from server.fhir.instant import from_datetime
from server.interactions.bundles import bundle, decode_cursor, encode_cursor, history_entry, page_url
from server.interactions.result import Result
from server.interactions.services import Services
from server.interactions.visibility import can_see, visible_versions
from server.interactions.write import check_type
from server.stores.base import HistoryQuery, Version

Position = tuple[int, str, str, int]
"""A keyset position in history order: (last_updated, type, id, version)."""

SCAN_LIMIT = 5000
"""Under a restricted grant, most versions one history page reads while skipping what the caller
may not see; past it the page ends early (shorter, with a ``next`` link from where it stopped)."""
SCAN_BATCH = 100
"""Versions read per store call while skipping hidden ones (at least a page and one)."""


def _instant(name: str, value: str) -> int:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise BadRequest(f"Parameter {name}: '{value}' is not a FHIR instant", expression=(name,)) from None
    return from_datetime(parsed)


def _count(svc: Services, value: str | None) -> int:
    if value is None:
        return svc.settings.history_default_count
    if not value.isdigit():
        raise BadRequest(f"Parameter _count: '{value}' is not a non-negative integer", expression=("_count",))
    return min(int(value), svc.settings.max_count)


async def history(
    svc: Services,
    params: Sequence[tuple[str, str]],
    *,
    base: str,
    type_: str | None = None,
    id_: str | None = None,
) -> Result:
    if type_ is not None:
        check_type(svc, type_)
    if id_ is not None:
        current = await svc.store.read(type_ or "", id_)
        if current is None or not (svc.grant.open or await can_see(svc, current)):
            raise NotFound(f"{type_}/{id_} is not known")
    values = dict(params)
    count = _count(svc, values.get("_count"))
    since = _instant("_since", values["_since"]) if "_since" in values else None
    at = _instant("_at", values["_at"]) if "_at" in values else None
    before = None
    if "_cursor" in values:
        cursor = decode_cursor(values["_cursor"])
        if len(cursor) != 4:
            raise BadRequest("The paging cursor is malformed; follow the Bundle's links")
        before = (int(cursor[0]), str(cursor[1]), str(cursor[2]), int(cursor[3]))
    query = HistoryQuery(type=type_, id=id_, since=since, at=at, count=count + 1, before=before)
    position: Position | None = None
    if svc.grant.open:
        rows = await svc.store.history(query) if count > 0 else []
        if len(rows) > count and count > 0:
            last = rows[count - 1]
            position = (last.last_updated, last.type, last.id, last.version)
        rows = rows[:count]
    else:
        rows, position = await _visible_page(svc, query, count)
    path = "/".join(p for p in (type_, id_, "_history") if p)
    kept = [(k, v) for k, v in params if k in ("_count", "_since", "_at")]
    links = [("self", page_url(base, path, params))]
    if position is not None:
        token = encode_cursor(list(position))
        links.append(("next", page_url(base, path, [*kept, ("_cursor", token)])))
    entries = [history_entry(base, v) for v in rows]
    return Result(200, resource=bundle("history", entries, total=None, links=links))


async def _visible_page(svc: Services, query: HistoryQuery, count: int) -> tuple[list[Version], Position | None]:
    """One page of the versions the caller may see, and the position the ``next`` link continues
    from (None: no more). Reads on past hidden versions up to :data:`SCAN_LIMIT`, so neither hidden
    entries nor their number show. When the scan stops early the page is shorter, and continues
    from the instant of the last version read: a position that names no hidden resource (the
    visible versions of that instant move to the next page; the scan stops only past the page's
    first instant, so the next page always starts earlier)."""
    if count <= 0:
        return [], None
    kept: list[Version] = []
    scanned = 0
    first: int | None = None
    before = query.before
    batch = max(count + 1, SCAN_BATCH)
    while True:
        rows = await svc.store.history(replace(query, count=batch, before=before))
        if rows and first is None:
            first = rows[0].last_updated
        scanned += len(rows)
        kept += await visible_versions(svc, rows)
        if len(kept) > count:
            last = kept[count - 1]
            return kept[:count], (last.last_updated, last.type, last.id, last.version)
        if len(rows) < batch:
            return kept, None
        last = rows[-1]
        before = (last.last_updated, last.type, last.id, last.version)
        if scanned >= SCAN_LIMIT and last.last_updated != first:
            instant = last.last_updated
            return [v for v in kept if v.last_updated != instant], (instant + 1, "", "", 0)

"""Match-then-write for conditional create, update, delete and patch
(http://hl7.org/fhir/R4/http.html#ccreate), made race-safe by the session lock.

Two requests with the same criteria take the same lock key, so the second one searches only
after the first one's write is committed: 64 concurrent ``If-None-Exist`` creates leave exactly one
resource (the bug every anchor server has had once).

A condition must constrain something. What it constrains is read from the parsed model, not from
the raw query string: ``DELETE /Flag?_format=json`` has a query but no filter, and matching it would
touch every Flag. Such a condition is refused (400) wherever conditions are accepted.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

from server.errors import BadRequest
from server.interactions.codes import TerminologyCodes
from server.interactions.services import Services
from server.search.model import Always, Condition
from server.search.parse import SILENT, parse_criteria
from server.stores.base import Session

_RELATIVE = re.compile(r"^/?([A-Z][A-Za-z]*)?\?(.*)$", re.DOTALL)
"""``Patient?criteria``, ``/Patient?criteria`` or ``?criteria`` (If-None-Exist's relative forms)."""


def _filters(criteria: str) -> list[tuple[str, str]]:
    """The criteria's (name, value) pairs without the HTTP layer's ``_format``/``_pretty``."""
    return [(n, v) for n, v in parse_qsl(criteria.lstrip("?"), keep_blank_values=True) if n not in SILENT]


def criteria_key(type_: str, criteria: str) -> str:
    """Canonical lock key: the same criteria in any parameter order, with or without ``_format``,
    give the same key (else two creates that differ only in ``_format`` would not serialise)."""
    return f"{type_}?{urlencode(sorted(_filters(criteria)))}"


def condition(svc: Services, type_: str, criteria: str) -> Condition:
    """The parsed criteria; 400 when they constrain nothing (empty, or only ``_format``/``_pretty``)."""
    criteria = criteria.lstrip("?")
    codes = TerminologyCodes(svc.terminology) if svc.terminology is not None else None
    parsed = parse_criteria(type_, criteria, svc.registry, codes=codes)
    if isinstance(parsed, Always):
        shown = f" '{criteria}'" if criteria.strip() else ""
        raise BadRequest(f"Conditional criteria{shown} constrain nothing: they would match every {type_}; "
                         f"give at least one search parameter ({type_}?identifier=…)")
    return parsed


async def matches(svc: Services, session: Session, type_: str, criteria: str, *, limit: int = 2) -> list[str]:
    """Ids of ``type_`` resources matching ``criteria`` (at most ``limit``), under the criteria lock.
    Only resources the caller may see can match (the grant restricts the criteria): a hidden
    resource is no match, so it never answers a 412 or a 200 that would reveal it."""
    where = condition(svc, type_, criteria)
    if not svc.grant.open:
        where = svc.grant.restrict_where(type_, where, "search")
    await session.lock(criteria_key(type_, criteria))
    return await session.find(type_, where, limit)


def _same_base(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme.lower(), a.netloc.lower(), a.path.rstrip("/")) == (b.scheme.lower(), b.netloc.lower(),
                                                                        b.path.rstrip("/"))


def if_none_exist_criteria(type_: str, value: str, *, base: str, field: str = "If-None-Exist") -> str:
    """The criteria of an If-None-Exist header (or a Bundle entry's ``request.ifNoneExist``).

    Accepted: bare criteria (``identifier=…``), the relative forms ``Patient?…`` / ``?…``, and an
    absolute URL on this server's ``base`` (HAPI's client sends ``http://host/fhir/Patient?…``).
    Another server or another resource type is a 400: matching it here would answer for the wrong thing."""
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        origin = f"{parts.scheme}://{parts.netloc}"
        head, _, named = parts.path.rstrip("/").rpartition("/")
        if _same_base(origin + parts.path, base):
            named = ""
        elif not _same_base(origin + head, base):
            raise BadRequest(f"{field} '{value}' names another server; this server's base is {base}",
                             expression=(field,))
        text = f"{named}?{parts.query}"
    found = _RELATIVE.match(text)
    if found is None:
        return text
    named, criteria = found.group(1), found.group(2)
    if named is not None and named != type_:
        raise BadRequest(f"{field} '{value}' names {named}, but this creates a {type_}", expression=(field,))
    return criteria


def create_criteria(type_: str, if_none_exist: str | None, query: str, *, base: str,
                    fields: tuple[str, str] = ("If-None-Exist", "query")) -> str | None:
    """The criteria of a conditional create, or None for a plain create.

    They come from If-None-Exist, or from the POST's own query string (``POST /Patient?identifier=…``,
    as fhirpy's ``get_or_create`` sends it, and as other servers read it): ignoring that query would
    create a duplicate on every call. A query of only ``_format``/``_pretty`` is a plain create; a query
    and a header that disagree are a 400, since either reading could be the wrong one."""
    from_query = "&".join(p for p in query.split("&") if p and unquote_plus(p.partition("=")[0]) not in SILENT)
    from_header = None
    if if_none_exist is not None:
        from_header = if_none_exist_criteria(type_, if_none_exist, base=base, field=fields[0])
    if from_header is not None and from_query and criteria_key(type_, from_header) != criteria_key(type_, from_query):
        raise BadRequest(f"The {fields[1]} '{query}' and {fields[0]} '{if_none_exist}' give different criteria; "
                         "send the criteria once", expression=(fields[0],))
    if from_header is not None:
        return from_header
    return from_query or None

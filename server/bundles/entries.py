"""Reading Bundle entries into requests: method, target, conditions, body. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from server.errors import BadRequest
from server.interactions.conditional import create_criteria

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
"""Transaction processing order (http://hl7.org/fhir/R4/http.html#trules)."""


@dataclass
class EntryRequest:
    index: int
    method: str
    type: str
    id: str | None
    rest: list[str]
    """Path segments after ``Type/id`` (``_history``, version) for GET entries."""
    query: str
    full_url: str | None
    resource: dict[str, Any] | None
    if_match: str | None
    if_none_exist: str | None
    if_none_match: str | None
    if_modified_since: str | None

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"


def relative(url: str, base: str) -> str:
    """``http://base/Patient/1`` -> ``Patient/1`` when it is this server's base."""
    if base and url.startswith(base.rstrip("/") + "/"):
        return url[len(base.rstrip("/")) + 1:]
    return url.lstrip("/")


def create_condition(req: EntryRequest, base: str) -> str | None:
    """A POST entry's conditional-create criteria, from ``request.ifNoneExist`` and/or a query in
    ``request.url`` (read the same way as If-None-Exist and ``POST Type?…`` over HTTP), or None."""
    where = f"{req.where}.request"
    return create_criteria(req.type, req.if_none_exist, req.query, base=base,
                           fields=(f"{where}.ifNoneExist", f"{where}.url"))


def read_entry(index: int, entry: Any, base: str) -> EntryRequest:
    where = f"Bundle.entry[{index}]"
    if not isinstance(entry, dict):
        raise BadRequest(f"{where} must be an object", expression=(where,))
    request = entry.get("request")
    if not isinstance(request, dict):
        raise BadRequest(f"{where} has no request", expression=(f"{where}.request",))
    method = request.get("method")
    if method not in METHODS:
        raise BadRequest(f"{where}.request.method '{method}' is not one of {', '.join(METHODS)}",
                         expression=(f"{where}.request.method",))
    url = request.get("url")
    if not isinstance(url, str) or not url.strip():
        raise BadRequest(f"{where}.request.url is missing", expression=(f"{where}.request.url",))
    parts = urlsplit(relative(url.strip(), base))
    if parts.scheme.lower() in ("http", "https"):
        raise BadRequest(f"{where}.request.url '{url}' names another server; this server's base is {base}",
                         expression=(f"{where}.request.url",))
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        raise BadRequest(f"{where}.request.url '{url}' names no resource type", expression=(f"{where}.request.url",))
    resource = entry.get("resource")
    if resource is not None and not isinstance(resource, dict):
        raise BadRequest(f"{where}.resource must be a resource object", expression=(f"{where}.resource",))
    if method in ("POST", "PUT") and resource is None:
        raise BadRequest(f"{where} ({method}) has no resource", expression=(f"{where}.resource",))
    for field in ("ifMatch", "ifNoneExist", "ifNoneMatch", "ifModifiedSince"):
        if request.get(field) is not None and not isinstance(request[field], str):  # was a 500 further on
            raise BadRequest(f"{where}.request.{field} must be a string", expression=(f"{where}.request.{field}",))
    full_url = entry.get("fullUrl")
    return EntryRequest(
        index=index,
        method=method,
        type=segments[0],
        id=segments[1] if len(segments) > 1 else None,
        rest=segments[2:],
        query=parts.query,
        full_url=full_url if isinstance(full_url, str) else None,
        resource=resource,
        if_match=request.get("ifMatch"),
        if_none_exist=request.get("ifNoneExist"),
        if_none_match=request.get("ifNoneMatch"),
        if_modified_since=request.get("ifModifiedSince"),
    )

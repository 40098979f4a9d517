"""Building the Bundles that search and history answer with.

Stored bodies are spliced into the Bundle as ``orjson.Fragment`` (already-serialised JSON), so a
page of 1,000 resources is never parsed and re-serialised just to be wrapped.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

from server.errors import BadRequest
from server.fhir.ids import new_id
from server.fhir.instant import now_us, to_instant
from server.stores.base import Version


def encode_cursor(values: Sequence[object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).decode().rstrip("=")


def decode_cursor(token: str) -> list[Any]:
    try:
        values = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise BadRequest("The paging cursor is malformed; follow the Bundle's links") from None
    if not isinstance(values, list):
        raise BadRequest("The paging cursor is malformed; follow the Bundle's links")
    return values


def page_url(base: str, path: str, params: Iterable[tuple[str, str]]) -> str:
    query = urlencode(list(params))
    return f"{base}/{path}" + (f"?{query}" if query else "")


def bundle(kind: str, entries: list[dict[str, Any]], *, total: int | None, links: list[tuple[str, str]]) -> dict:
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": new_id(),
        "meta": {"lastUpdated": to_instant(now_us())},
        "type": kind,
    }
    if total is not None:
        out["total"] = total
    out["link"] = [{"relation": rel, "url": url} for rel, url in links]
    out["entry"] = entries
    return out


def resource_value(version: Version) -> Any:
    return orjson.Fragment(version.body) if version.body is not None else None


def full_url(base: str, version: Version) -> str:
    return f"{base}/{version.type}/{version.id}"


def history_entry(base: str, version: Version) -> dict[str, Any]:
    entry: dict[str, Any] = {"fullUrl": full_url(base, version)}
    if not version.deleted:
        entry["resource"] = resource_value(version)
    url = f"{version.type}/{version.id}" if version.method != "POST" else version.type
    status = {"POST": "201 Created", "DELETE": "204 No Content"}.get(version.method, "200 OK")
    if version.method == "PUT" and version.version == 1:
        status = "201 Created"
    entry["request"] = {"method": "PUT" if version.method == "PATCH" else version.method, "url": url}
    entry["response"] = {
        "status": status,
        "etag": f'W/"{version.version}"',
        "lastModified": to_instant(version.last_updated),
    }
    return entry

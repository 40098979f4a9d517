"""Parsing request bodies into FHIR JSON, with errors that say where the problem is."""

from __future__ import annotations

from typing import Any

import orjson

from server.errors import BadRequest


def loads(body: bytes, *, what: str = "request body") -> Any:
    if not body or not body.strip():
        raise BadRequest(f"The {what} is empty; a FHIR JSON resource was expected")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The {what} is not valid JSON: {exc}") from None


def load_resource(body: bytes, *, what: str = "request body") -> dict[str, Any]:
    data = loads(body, what=what)
    if not isinstance(data, dict):
        raise BadRequest(f"The {what} must be a JSON object holding a FHIR resource")
    if not isinstance(data.get("resourceType"), str):
        raise BadRequest(f"The {what} has no resourceType", expression=("resourceType",))
    return data


def dumps(data: Any, *, pretty: bool = False) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 if pretty else 0)

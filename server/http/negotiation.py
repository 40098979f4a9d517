"""Formats (http://hl7.org/fhir/R4/http.html#mime-type): ``_format``, ``Accept``, ``Content-Type``
and ``Prefer``. JSON only for now: an XML request is answered 406/415 with an OperationOutcome."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from server.errors import NotAcceptable, UnsupportedMediaType

FHIR_JSON = "application/fhir+json"
JSON_TYPES = {"application/fhir+json", "application/json", "json", "application/json+fhir", "text/json"}
XML_TYPES = {"application/fhir+xml", "application/xml", "xml", "text/xml", "application/xml+fhir"}
JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class Negotiated:
    media_type: str
    pretty: bool
    prefer_return: str | None
    """``minimal``, ``representation`` or ``OperationOutcome`` (Prefer: return=…)."""
    strict: bool
    """Prefer: handling=strict."""


def _media(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def negotiate(request: Request) -> Negotiated:
    fmt = request.query_params.get("_format")
    media = FHIR_JSON
    if fmt is not None:
        wanted = _media(fmt)
        if wanted in XML_TYPES:
            raise NotAcceptable("XML is not supported yet; ask for application/fhir+json (_format=json)")
        if wanted not in JSON_TYPES:
            raise NotAcceptable(f"_format '{fmt}' is not supported; use json or application/fhir+json")
        media = "application/json" if wanted == "application/json" else FHIR_JSON
    else:
        accept = request.headers.get("accept")
        if accept:
            kinds = [_media(part) for part in accept.split(",")]
            if any(k in JSON_TYPES for k in kinds):
                media = "application/json" if "application/fhir+json" not in kinds and "application/json" in kinds \
                    else FHIR_JSON
            elif any(k in ("*/*", "application/*", "") for k in kinds):
                media = FHIR_JSON
            elif any(k in XML_TYPES for k in kinds):
                raise NotAcceptable("XML is not supported yet; ask for application/fhir+json")
            else:
                raise NotAcceptable(f"Cannot answer in '{accept}'; this server speaks application/fhir+json")
    prefer = _prefer(request.headers.get("prefer", ""))
    return Negotiated(
        media_type=media,
        pretty=request.query_params.get("_pretty") == "true",
        prefer_return=prefer.get("return"),
        strict=prefer.get("handling") == "strict",
    )


def _prefer(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in value.replace(";", ",").split(","):
        if "=" in part:
            key, _, val = part.partition("=")
            out[key.strip().lower()] = val.strip().strip('"')
    return out


def check_content_type(request: Request, *, patch: bool = False) -> None:
    raw = request.headers.get("content-type")
    if raw is None:
        return  # lenient: many clients omit it; the body is still parsed as JSON
    media = _media(raw)
    if patch:
        if media != JSON_PATCH:
            raise UnsupportedMediaType(f"PATCH needs Content-Type {JSON_PATCH}, not '{raw}'")
        return
    if media in XML_TYPES:
        raise UnsupportedMediaType("XML request bodies are not supported yet; send application/fhir+json")
    if media not in JSON_TYPES:
        raise UnsupportedMediaType(f"Content-Type '{raw}' is not supported; send application/fhir+json")

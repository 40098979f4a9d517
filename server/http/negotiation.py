"""Formats (http://hl7.org/fhir/R4/http.html#mime-type): ``_format``, ``Accept``, ``Content-Type``
and ``Prefer``. JSON and XML (http://hl7.org/fhir/R4/xml.html) both ways: the XML form is
converted at the edge (:mod:`profiles.fhirxml`), so everything behind this layer sees JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request

from server.errors import NotAcceptable, UnsupportedMediaType

Format = Literal["json", "xml"]
FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"
JSON_TYPES = {"application/fhir+json", "application/json", "json", "application/json+fhir", "text/json"}
XML_TYPES = {"application/fhir+xml", "application/xml", "xml", "text/xml", "application/xml+fhir"}
WILDCARDS = {"*/*", "application/*", ""}
JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class Negotiated:
    media_type: str
    pretty: bool
    prefer_return: str | None
    """``minimal``, ``representation`` or ``OperationOutcome`` (Prefer: return=…)."""
    strict: bool
    """Prefer: handling=strict."""

    @property
    def format(self) -> Format:
        return "xml" if self.media_type in XML_TYPES else "json"


def _media(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _answer(kind: str) -> str | None:
    """The media type to answer with when a client asks for ``kind`` (None: not one of ours)."""
    if kind in JSON_TYPES:
        return "application/json" if kind == "application/json" else FHIR_JSON
    if kind in XML_TYPES:
        return "application/xml" if kind == "application/xml" else FHIR_XML
    return FHIR_JSON if kind in WILDCARDS else None


def accepted(header: str) -> list[str]:
    """Media ranges of an Accept header, most preferred first (RFC 9110 §12.5.1 ``q`` weights)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        kind, *params = (p.strip() for p in part.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if weight > 0:
            ranked.append((-weight, position, kind.lower()))
    return [kind for _, _, kind in sorted(ranked)]


def negotiate(request: Request) -> Negotiated:
    fmt = request.query_params.get("_format")
    media = FHIR_JSON
    if fmt is not None:
        found = _answer(_media(fmt))
        if found is None or _media(fmt) in WILDCARDS:
            raise NotAcceptable(f"_format '{fmt}' is not supported; use json or xml")
        media = found
    elif accept := request.headers.get("accept"):
        answers = [a for a in map(_answer, accepted(accept)) if a is not None]
        if not answers:
            raise NotAcceptable(f"Cannot answer in '{accept}'; this server speaks {FHIR_JSON} and {FHIR_XML}")
        media = answers[0]
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


def body_format(content_type: str | None) -> Format:
    """The format of a request body by its Content-Type (missing: JSON, as many clients omit it)."""
    if content_type is None or not content_type.strip():
        return "json"
    media = _media(content_type)
    if media in JSON_TYPES:
        return "json"
    if media in XML_TYPES:
        return "xml"
    raise UnsupportedMediaType(f"Content-Type '{content_type}' is not supported; send {FHIR_JSON} or {FHIR_XML}")


def check_content_type(request: Request, *, patch: bool = False) -> Format:
    raw = request.headers.get("content-type")
    if patch:
        if raw is not None and _media(raw) != JSON_PATCH:
            raise UnsupportedMediaType(f"PATCH needs Content-Type {JSON_PATCH}, not '{raw}'")
        return "json"
    return body_format(raw)

"""A syntactically valid search value for any declared search parameter.

The ``capability`` suite searches with every parameter a server declares; it does not know what
is stored, so the value only has to be well formed for the parameter's type
(http://hl7.org/fhir/R4/search.html#ptypes). A server must answer such a search with 200 and a
``searchset`` Bundle (matches or not); a 400 for a declared parameter means it is declared but
broken. Reference values name a target type from the parameter's definition, since a bare id is
ambiguous for a parameter with several targets; composite values join one value per component
with ``$`` (http://hl7.org/fhir/R4/search.html#composite).
"""

from __future__ import annotations

from typing import Any

from profiles.definitions import core

SIMPLE = {
    "number": "1",
    "date": "ge2020-01-01",
    "string": "conformance",
    "token": "http://example.org/conformance|conformance",
    "quantity": "1",
    "uri": "http://example.org/conformance",
}
SPECIAL = {"near": "0|0|1|km"}
"""Special parameters have no generic syntax; the ones R4 defines are listed by code."""
NO_MATCH_ID = "capability-no-match"


def _definition(url: str | None) -> dict[str, Any] | None:
    if not url:
        return None
    found = core().by_url(url)
    return found if found is not None and found.get("resourceType") == "SearchParameter" else None


def _reference(definition: dict[str, Any] | None) -> str:
    targets = [t for t in (definition or {}).get("target", []) if core().is_resource_type(t)]
    return f"{targets[0]}/{NO_MATCH_ID}" if targets else NO_MATCH_ID


def search_value(code: str, type_: str, definition_url: str | None = None) -> str:
    """A value for ``code`` of search type ``type_`` (definition: the SearchParameter's canonical url)."""
    if code == "_id":
        return NO_MATCH_ID  # a logical id has no system (http://hl7.org/fhir/R4/search.html#id)
    definition = _definition(definition_url)
    if type_ == "reference":
        return _reference(definition)
    if type_ == "composite":
        parts = []
        for component in (definition or {}).get("component", []):
            part = _definition(component.get("definition"))
            kind = part.get("type", "token") if part else "token"
            # inside a composite a token is code-only: the ``|`` of system|code would be ambiguous
            parts.append("conformance" if kind == "token" else search_value(code, kind, component.get("definition")))
        return "$".join(parts) if len(parts) >= 2 else "conformance$conformance"
    if type_ == "special":
        return SPECIAL.get(code, "conformance")
    return SIMPLE.get(type_, "conformance")

"""String parameters (search.html#string): case- and accent-insensitive starts-with by default,
``:exact`` on the text as written, ``:contains`` anywhere.

Each string part is one entry: ``value`` normalised (:func:`normalise`), ``exact`` as written.
A HumanName contributes its text, family, given, prefix and suffix; an Address its text, lines,
city, district, state, postalCode and country — each part separately, so ``name=Pet`` finds
``given: Peter``. For a Chinese name the text (``张三丰``) and the family (``张``) are both
entries, so ``name=张`` and ``name=张三`` match while ``name=三丰`` only does if ``given`` holds it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from server.search.model import Condition, Entry, FieldTest, Match
from server.search.registry import ParamDef
from server.search.types.common import DEFAULT, Options, invalid, normalise, unescape, unsupported_modifier

NAME_PARTS = ("text", "family", "given", "prefix", "suffix")
ADDRESS_PARTS = ("text", "line", "city", "district", "state", "postalCode", "country")


def strings(value: Any, fhir_type: str) -> list[str]:
    """The searchable strings of one value (several for HumanName and Address)."""
    if isinstance(value, str):
        return [value] if value else []
    if not isinstance(value, dict):
        return []
    parts = NAME_PARTS if fhir_type == "HumanName" else ADDRESS_PARTS if fhir_type == "Address" else ()
    if not parts:
        text = value.get("text")  # e.g. an Annotation/CodeableConcept reached without `.text`
        return [text] if isinstance(text, str) and text else []
    out: list[str] = []
    for part in parts:
        got = value.get(part)
        for s in got if isinstance(got, list) else (got,):
            if isinstance(s, str) and s:
                out.append(s)
    return out


def index(param: ParamDef, value: Any, fhir_type: str, *, path: str | None = None,
          resource: dict[str, Any] | None = None, options: Options = DEFAULT) -> Iterable[Entry]:
    return [Entry("string", param.code, (normalise(s), s)) for s in strings(value, fhir_type)]


def tests(name: ParamDef | str, modifier: str | None, raw: str) -> tuple[FieldTest, ...]:
    text = unescape(raw)
    if not text:
        invalid(name, "empty string value")
    if modifier is None:
        return (FieldTest("value", "prefix", normalise(text)),)
    if modifier == "exact":
        # the normalised value narrows through the index on ``value``; ``exact`` decides
        return (FieldTest("value", "eq", normalise(text)), FieldTest("exact", "eq", text))
    if modifier == "contains":
        return (FieldTest("value", "contains", normalise(text)),)
    raise AssertionError(modifier)


def condition(param: ParamDef, modifier: str | None, raw: str, options: Options = DEFAULT) -> Condition:
    if modifier not in (None, "exact", "contains"):
        unsupported_modifier(param, modifier)
    return Match("string", param.code, tests(param, modifier, raw))

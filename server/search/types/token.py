"""Token parameters (search.html#token): codes, identifiers, booleans and other exact-match values.

Stored shape ``(system, code, text)``, one entry per coding / identifier / value:

- Coding: system, code, normalised display; CodeableConcept: each coding, plus ``(None, None,
  text)`` for its text; Identifier: system, value, normalised ``type.text``; ContactPoint: the
  contact system (``phone``, ``email`` ...) as system and the value as code; boolean: ``true`` /
  ``false``; code, id, string, uri: the value with no system.
- Identifier types also go under ``<code>:of-type`` as ``(type system, type code, value)`` so
  ``identifier:of-type=system|code|value`` is answered from one entry.

Searches: ``code`` (any system), ``system|code``, ``|code`` (no system), ``system|`` (any code);
``:text`` starts-with on the normalised text; ``:not`` (resources without the code match too, so
it lowers to ``Not``); ``:of-type``. ``:in``/``:not-in``/``:above``/``:below`` need a
terminology service: declined with NotSupported. A code element bound to a required value set
has an implicit system the resource does not carry; such values are stored without a system, so
code-only searches find them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from server.search.model import Condition, Entry, FieldTest, Match, Not, Or
from server.search.registry import ParamDef
from server.search.types.common import (
    DEFAULT,
    Options,
    invalid,
    normalise,
    not_supported,
    split_escaped,
    unescape,
    unsupported_modifier,
)

OF_TYPE = ":of-type"
TERMINOLOGY_MODIFIERS = frozenset({"in", "not-in", "above", "below"})


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _text(value: Any) -> str | None:
    return normalise(value) if isinstance(value, str) and value else None


def _coding(c: Any) -> tuple[str | None, str | None, str | None] | None:
    if not isinstance(c, dict):
        return None
    found = (_s(c.get("system")), _s(c.get("code")), _text(c.get("display")))
    return found if found != (None, None, None) else None


def tokens(value: Any, fhir_type: str) -> list[tuple[str | None, str | None, str | None]]:
    """The (system, code, text) triples of one value."""
    if isinstance(value, bool):
        return [(None, "true" if value else "false", None)]
    if isinstance(value, str):
        return [(None, value, None)] if value else []
    if isinstance(value, int | float):
        return [(None, str(value), None)]
    if not isinstance(value, dict):
        return []
    if fhir_type == "CodeableConcept" or "coding" in value:
        out = [t for c in value.get("coding", ()) if (t := _coding(c))]
        if text := _text(value.get("text")):
            out.append((None, None, text))
        return out
    if fhir_type == "Identifier":
        type_ = value.get("type")
        text = _text(type_.get("text")) if isinstance(type_, dict) else None
        found = (_s(value.get("system")), _s(value.get("value")), text)
        return [found] if found[:2] != (None, None) else []
    if fhir_type == "ContactPoint":
        found = (_s(value.get("system")), _s(value.get("value")), None)
        return [found] if found[1] else []
    if fhir_type == "Coding" or "code" in value or "system" in value:
        coding = _coding(value)
        return [coding] if coding else []
    return []


def of_type(value: Any) -> list[tuple[str | None, str | None, str | None]]:
    """(type system, type code, identifier value) of an Identifier, per type coding."""
    type_ = value.get("type") if isinstance(value, dict) else None
    ident = _s(value.get("value")) if isinstance(value, dict) else None
    if not isinstance(type_, dict) or ident is None:
        return []
    return [(_s(c.get("system")), _s(c.get("code")), ident) for c in type_.get("coding", ())
            if isinstance(c, dict) and _s(c.get("code"))]


def index(param: ParamDef, value: Any, fhir_type: str, *, path: str | None = None,
          resource: dict[str, Any] | None = None, options: Options = DEFAULT) -> Iterable[Entry]:
    out = [Entry("token", param.code, t) for t in tokens(value, fhir_type)]
    if fhir_type == "Identifier":
        out.extend(Entry("token", param.code + OF_TYPE, t) for t in of_type(value))
    return out


def tests(name: ParamDef | str, raw: str) -> tuple[FieldTest, ...]:
    """Tests for ``code``, ``system|code``, ``|code`` or ``system|``."""
    parts = split_escaped(raw, "|")
    if len(parts) > 2:
        invalid(name, f"'{raw}' has more than one unescaped '|' (use [system]|[code])")
    if len(parts) == 1:
        code = unescape(parts[0])
        if not code:
            invalid(name, "empty token")
        return (FieldTest("code", "eq", code),)
    system, code = unescape(parts[0]), unescape(parts[1])
    if not system and not code:
        invalid(name, "'|' alone is not a token")
    if not system:
        return (FieldTest("system", "eq", None), FieldTest("code", "eq", code))
    if not code:
        return (FieldTest("system", "eq", system),)
    return (FieldTest("system", "eq", system), FieldTest("code", "eq", code))


def _codes_match(param: ParamDef, codes: Iterable[tuple[str | None, str]]) -> Condition:
    """Any of ``codes``; a stored value without a system (a ``code`` element, whose system is
    implied by its binding) matches by code alone, as a code-only search does."""
    by_system: dict[str | None, set[str]] = {}
    for system, code in codes:
        by_system.setdefault(system, set()).add(code)
    branches: list[Condition] = []
    for system, found in sorted(by_system.items(), key=lambda item: item[0] or ""):
        branches.append(Match("token", param.code, (FieldTest("code", "in", tuple(sorted(found))),
                                                    FieldTest("system", "eq", system))))
    every = tuple(sorted({c for found in by_system.values() for c in found}))
    if every and None not in by_system:
        branches.append(Match("token", param.code, (FieldTest("code", "in", every), FieldTest("system", "eq", None))))
    return Or(tuple(branches))


def _terminology(param: ParamDef, modifier: str, raw: str, options: Options) -> Condition:
    """``:in``/``:not-in`` a value set (by url), ``:below``/``:above`` a ``system|code`` in its
    code system's hierarchy (http://hl7.org/fhir/R4/search.html#token)."""
    if options.codes is None:
        not_supported(param, f"':{modifier}' needs a terminology service")
    assert options.codes is not None
    value = unescape(raw)
    if modifier in ("in", "not-in"):
        codes = options.codes.value_set_codes(value)
        if codes is None:
            invalid(param, f"value set '{value}' is not known to this server")
        assert codes is not None
        match = _codes_match(param, codes)
        return Not(match) if modifier == "not-in" else match
    system, bar, code = value.partition("|")
    if not bar or not system or not code:
        invalid(param, f"':{modifier}' takes system|code")
    related = options.codes.related_codes(system, code, modifier)
    if related is None:
        not_supported(param, f"the code system '{system}' defines no hierarchy this server knows for ':{modifier}'")
    assert related is not None
    return _codes_match(param, [(system, c) for c in related])


def condition(param: ParamDef, modifier: str | None, raw: str, options: Options = DEFAULT) -> Condition:
    if modifier is None:
        return Match("token", param.code, tests(param, raw))
    if modifier == "not":
        return Not(Match("token", param.code, tests(param, raw)))
    if modifier == "text":
        text = unescape(raw)
        if not text:
            invalid(param, "empty :text value")
        return Match("token", param.code, (FieldTest("text", "prefix", normalise(text)),))
    if modifier == "of-type":
        parts = split_escaped(raw, "|")
        if len(parts) != 3 or not all(parts[1:]):
            invalid(param, f"':of-type' needs [type system]|[type code]|[value], got '{raw}'")
        system, code, value = (unescape(p) for p in parts)
        system_test = (FieldTest("system", "eq", system),) if system else ()
        return Match("token", param.code + OF_TYPE,
                     (*system_test, FieldTest("code", "eq", code), FieldTest("text", "eq", value)))
    if modifier in TERMINOLOGY_MODIFIERS:
        return _terminology(param, modifier, raw, options)
    unsupported_modifier(param, modifier)

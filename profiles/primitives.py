"""Checks for the JSON form of the R4 primitive types (http://hl7.org/fhir/R4/datatypes.html#primitive).

Each primitive type gets one *check*: a function of the parsed JSON value that returns ``None``
when the value is acceptable or ``(issue code, message)`` when it is not. The lexical rules come
from the primitive StructureDefinitions themselves (the ``regex`` extension on ``<type>.value``),
compiled once, with three adjustments that the JSON format and Python make necessary:

- The JSON kind comes first (http://hl7.org/fhir/R4/json.html#primitive): ``boolean`` is a JSON
  boolean, ``integer``/``positiveInt``/``unsignedInt``/``decimal`` are JSON numbers, everything
  else is a JSON string. Numbers arrive parsed, so their regexes are replaced by type and range
  checks (32-bit signed for the integer types, finite for decimal).
- The regexes are written for Java, where ``\\s`` is ASCII whitespace only; they are compiled with
  ``re.ASCII`` so that, as in Java, ``\\S`` matches every non-ASCII character (Chinese text, NBSP).
- The base64Binary regex ``(\\s*([0-9a-zA-Z\\+/=]){4}\\s*)+`` backtracks exponentially on a long
  value that does not match (a denial of service on a server that validates every write); it is
  replaced by the possessive regex for the same language, which runs in linear time.

Dates also get the calendar check the regex cannot make (no 31 April, 29 February only in leap
years), and ``xhtml`` the basic narrative check of http://hl7.org/fhir/R4/narrative.html#xhtml.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from profiles.definitions import Definitions
from profiles.issues import STRUCTURE, VALUE
from profiles.numbers import FhirDecimal

Problem = tuple[str, str]
"""(issue-type code, message) describing why a value is not acceptable."""
Check = Callable[[Any], Problem | None]

REGEX_EXTENSION = "http://hl7.org/fhir/StructureDefinition/regex"
XHTML_NAMESPACE = "http://www.w3.org/1999/xhtml"
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

REGEX_OVERRIDES = {"base64Binary": r"(?:\s*[0-9a-zA-Z+/=]{4})++\s*"}
"""Linear-time regexes for the same language as the definition's (see the module docstring)."""

HINTS = {
    "date": "expected YYYY, YYYY-MM or YYYY-MM-DD",
    "dateTime": "expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.fff] with a time zone "
    "(Z or +hh:mm) when a time is given",
    "instant": "expected YYYY-MM-DDThh:mm:ss[.fff] with a time zone (Z or +hh:mm)",
    "time": "expected hh:mm:ss[.fff] (24-hour, no time zone)",
    "id": "expected 1 to 64 characters from A-Z, a-z, 0-9, '-' and '.'",
    "code": "expected no leading, trailing or repeated whitespace",
    "uri": "expected no whitespace",
    "url": "expected no whitespace",
    "canonical": "expected no whitespace",
    "oid": "expected urn:oid: followed by dotted digits, e.g. urn:oid:2.16.840.1",
    "uuid": "expected urn:uuid: followed by a lower-case UUID",
    "base64Binary": "expected base64 in groups of 4 characters from A-Z, a-z, 0-9, '+', '/', '='",
    "string": "expected only printable characters, spaces, tabs and line breaks",
    "markdown": "expected only printable characters, spaces, tabs and line breaks",
}
STRING_MAX_LENGTH = 1024 * 1024
"""string.value maxLength in the R4 definitions (1 MiB characters)."""
SHOW_MAX = 60


def json_kind(value: Any) -> str:
    """The JSON kind of a parsed value, as messages name it."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def show(value: Any) -> str:
    """A value for a message, shortened so one bad attachment does not flood the outcome."""
    text = repr(value)
    return text if len(text) <= SHOW_MAX else text[: SHOW_MAX - 3] + "..."


def value_regex(definitions: Definitions, type_name: str) -> str | None:
    """The regex the definition of a primitive type gives its value, or None (xhtml has none)."""
    sd = definitions.structure_definition(type_name)
    if sd is None:
        raise KeyError(type_name)
    for element in sd["snapshot"]["element"]:
        if element["path"] == type_name + ".value":
            for t in element.get("type", ()):
                for ext in t.get("extension", ()):
                    if ext["url"] == REGEX_EXTENSION:
                        return str(ext["valueString"])
    return None


def _bad_day(value: str) -> bool:
    """True when YYYY-MM-DD... names a day its month does not have (the regex allows 1-31)."""
    if len(value) < 10 or value[8:10] <= "28":
        return False
    return int(value[8:10]) > calendar.monthrange(int(value[0:4]), int(value[5:7]))[1]


def _string_check(type_name: str, pattern: str | None) -> Check:
    fullmatch = re.compile(pattern, re.ASCII).fullmatch if pattern is not None else None
    hint = HINTS.get(type_name, "")
    dated = type_name in ("date", "dateTime", "instant")
    max_length = STRING_MAX_LENGTH if type_name in ("string", "markdown") else 0

    def check(value: Any) -> Problem | None:
        if value.__class__ is not str:
            return STRUCTURE, f"a {type_name} must be a JSON string, not {json_kind(value)}"
        if not value:
            return VALUE, f"a {type_name} must not be an empty string (omit the element instead)"
        if fullmatch is not None and fullmatch(value) is None:
            return VALUE, f"{show(value)} is not a valid {type_name}: {hint}"
        if dated and _bad_day(value):
            return VALUE, f"{show(value)} is not a valid {type_name}: there is no such day in that month"
        if max_length and len(value) > max_length:
            return VALUE, f"a {type_name} must be at most {max_length} characters long, not {len(value)}"
        return None

    return check


INTEGER = re.compile(r"-?[0-9]+")


def _integer_check(type_name: str, low: int) -> Check:
    def check(value: Any) -> Problem | None:
        if value.__class__ is not int:
            if value.__class__ is FhirDecimal and INTEGER.fullmatch(value.text):
                return VALUE, f"{value} is out of range for {type_name}: expected {low} to {INT32_MAX}"
            if value.__class__ is float or value.__class__ is FhirDecimal:
                return VALUE, f"{show(value)} is not a valid {type_name}: expected a whole number"
            return STRUCTURE, f"a {type_name} must be a JSON number, not {json_kind(value)}"
        if value < low or value > INT32_MAX:
            return VALUE, f"{value} is out of range for {type_name}: expected {low} to {INT32_MAX}"
        return None

    return check


def _check_decimal(value: Any) -> Problem | None:
    """A JSON number; ``Decimal`` too, for callers that parse with ``parse_float=Decimal`` to keep precision."""
    cls = value.__class__
    if cls is int:
        return None
    if cls is float or cls is FhirDecimal or cls is Decimal:
        return None if math.isfinite(value) else (VALUE, f"{value} is not a valid decimal")
    return STRUCTURE, f"a decimal must be a JSON number, not {json_kind(value)}"


def _check_boolean(value: Any) -> Problem | None:
    if value is True or value is False:
        return None
    return STRUCTURE, f"a boolean must be JSON true or false, not {json_kind(value)}"


def _check_xhtml(value: Any) -> Problem | None:
    """The basic narrative check: a string holding a ``<div>`` in the XHTML namespace."""
    if value.__class__ is not str:
        return STRUCTURE, f"narrative xhtml must be a JSON string, not {json_kind(value)}"
    if not value.startswith("<div"):
        return VALUE, "narrative xhtml must be a single <div> element (http://hl7.org/fhir/R4/narrative.html)"
    if XHTML_NAMESPACE not in value:
        return VALUE, f'narrative <div> must declare xmlns="{XHTML_NAMESPACE}"'
    return None


def primitive_checks(definitions: Definitions) -> dict[str, Check]:
    """One check per primitive type of ``definitions``, regexes compiled once."""
    checks: dict[str, Check] = {}
    for name in sorted(definitions.primitive_types):
        if name == "boolean":
            checks[name] = _check_boolean
        elif name == "decimal":
            checks[name] = _check_decimal
        elif name == "integer":
            checks[name] = _integer_check(name, INT32_MIN)
        elif name == "unsignedInt":
            checks[name] = _integer_check(name, 0)
        elif name == "positiveInt":
            checks[name] = _integer_check(name, 1)
        elif name == "xhtml":
            checks[name] = _check_xhtml
        else:
            checks[name] = _string_check(name, REGEX_OVERRIDES.get(name) or value_regex(definitions, name))
    return checks

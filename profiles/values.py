"""Value constraints of an element definition: fixed[x], pattern[x], minValue[x]/maxValue[x], maxLength.

http://hl7.org/fhir/R4/elementdefinition-definitions.html#ElementDefinition.fixed_x_ : a fixed
value must match exactly — every element of the instance equals the fixed one and nothing is
added. http://hl7.org/fhir/R4/elementdefinition-definitions.html#ElementDefinition.pattern_x_ :
a pattern is a partial match — every element the pattern has must be present with that value;
for repeating elements each pattern item must match some instance item; anything else may be
added. Numbers compare by value (``1`` equals ``1.0``). ``id`` and ``extension`` of a fixed
complex value are not part of the value, so the instance may carry its own.
"""

from __future__ import annotations

import base64
import binascii
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from profiles.invariants import date_less_or_equal
from profiles.numbers import FhirDecimal

IGNORED_IN_FIXED = frozenset({"id", "extension"})

_UCUM_KINDS: dict[str, dict[str, str]] = {
    "g": {"kg": "1000", "g": "1", "mg": "0.001", "ug": "0.000001", "ng": "1e-9"},
    "m": {"km": "1000", "m": "1", "cm": "0.01", "mm": "0.001", "um": "0.000001"},
    "L": {"L": "1", "dL": "0.1", "mL": "0.001", "uL": "0.000001"},
    "s": {"ms": "0.001", "s": "1", "min": "60", "h": "3600", "d": "86400", "wk": "604800"},
}
UCUM_FACTORS: dict[str, tuple[Decimal, str]] = {
    unit: (Decimal(factor), kind) for kind, units in _UCUM_KINDS.items() for unit, factor in units.items()}
"""The UCUM units limits are most often written in, to compare ``5 g`` with a limit of ``0 kg``."""


def _number(value: Any) -> Decimal | None:
    if value is True or value is False or not isinstance(value, int | float | Decimal):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _same_primitive(expected: Any, actual: Any) -> bool:
    a, b = _number(expected), _number(actual)
    if a is not None and b is not None:
        return a == b
    return type(expected) is type(actual) and expected == actual


def matches_fixed(expected: Any, actual: Any) -> bool:
    """Exact match (http://hl7.org/fhir/R4/elementdefinition.html#fixed)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return False
        keys = (set(expected) | set(actual)) - IGNORED_IN_FIXED
        return all(k in expected and k in actual and matches_fixed(expected[k], actual[k]) for k in keys)
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(expected) == len(actual)
                and all(matches_fixed(e, a) for e, a in zip(expected, actual, strict=True)))
    return _same_primitive(expected, actual)


def matches_pattern(expected: Any, actual: Any) -> bool:
    """Partial match (http://hl7.org/fhir/R4/elementdefinition.html#pattern)."""
    if isinstance(expected, dict):
        if isinstance(actual, list):
            return any(matches_pattern(expected, a) for a in actual)
        if not isinstance(actual, dict):
            return False
        return all(k in actual and matches_pattern(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        items = actual if isinstance(actual, list) else [actual]
        return all(any(matches_pattern(e, a) for a in items) for e in expected)
    if isinstance(actual, list):
        return any(_same_primitive(expected, a) for a in actual)
    return _same_primitive(expected, actual)


def compare(limit: tuple[str, Any], value: Any) -> int | None:
    """Sign of ``value - limit`` for a minValue[x]/maxValue[x] limit; None when they cannot be compared.

    Quantities compare by value when their code/unit agree; dates, dateTimes and instants at their
    common precision (http://hl7.org/fhirpath/N1/#comparison).
    """
    type_name, bound = limit
    if type_name == "Quantity":
        if not isinstance(value, dict) or not isinstance(bound, dict):
            return None
        bound_unit = bound.get("code") or bound.get("unit")
        value_unit = value.get("code") or value.get("unit")
        bound, value = bound.get("value"), value.get("value")
        if bound_unit != value_unit:
            bound_factor, value_factor = UCUM_FACTORS.get(str(bound_unit)), UCUM_FACTORS.get(str(value_unit))
            a, b = _number(value), _number(bound)
            if bound_factor is None or value_factor is None or bound_factor[1] != value_factor[1] or a is None \
                    or b is None:
                return None
            a, b = a * value_factor[0], b * bound_factor[0]
            return (a > b) - (a < b)
    a, b = _number(value), _number(bound)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    if isinstance(value, str) and isinstance(bound, str):
        if type_name in ("date", "dateTime", "instant"):
            less_or_equal = date_less_or_equal(value, bound)
            greater_or_equal = date_less_or_equal(bound, value)
            if less_or_equal is None or greater_or_equal is None:
                return None
            return 0 if less_or_equal and greater_or_equal else (-1 if less_or_equal else 1)
        return (value > bound) - (value < bound)
    return None


def _as_written(value: Any) -> Any:
    """orjson's fallback: a FhirDecimal (a float subclass orjson will not take) as its own text."""
    if isinstance(value, FhirDecimal):
        return orjson.Fragment(value.text)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def describe(value: Any) -> str:
    """A short JSON-ish rendering of a fixed/pattern value for messages."""
    text = orjson.dumps(value, default=_as_written).decode()
    return text if len(text) <= 120 else text[:117] + "..."


def attachment_problem(attachment: dict[str, Any]) -> str | None:
    """Attachment.size must be the length of the decoded data (http://hl7.org/fhir/R4/datatypes.html#Attachment)."""
    data, size = attachment.get("data"), attachment.get("size")
    if not isinstance(data, str) or not isinstance(size, int) or isinstance(size, bool):
        return None
    try:
        actual = len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        return None
    if actual != size:
        return f"Attachment.size says {size} bytes but the data is {actual} bytes"
    return None

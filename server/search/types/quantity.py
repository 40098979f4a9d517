"""Quantity parameters: index Quantity/Age/Duration/Money/Range values as given and in UCUM-canonical
units; lower ``[prefix]number[|system|code]`` (search.html#quantity).

Each value is indexed under the parameter's code exactly as written (system/code, plus an
entry keyed by the free-text ``unit`` when it differs from the code, so ``5.4||mg`` finds either).
When the unit is a UCUM code :mod:`server.search.ucum` knows, it is also indexed under
``<code>:canonical`` converted to the canonical unit (mg -> g). A search with a UCUM unit is
lowered against the canonical entries (so ``5.4|http://unitsofmeasure.org|mg`` finds 0.0054 g);
one without a unit against the as-given entries only, so "5.4" never matches 5,400 mg through its
canonical form. A comparator (``<5``) makes the value open on one side; a Range is [low, high].
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from server.search import ucum
from server.search.model import Condition, Entry, FieldTest
from server.search.registry import ParamDef
from server.search.types.common import DEFAULT, Options, invalid, split_escaped, unescape, unsupported_modifier
from server.search.types.number import numeric_tests, parse_decimal, point
from server.search.types.prefix import Alternatives, matches, split_prefix

CANONICAL = ":canonical"
"""Suffix of the parameter name the canonical-unit entries are stored under."""
ISO_4217 = "urn:iso:std:iso:4217"
OPEN = sys.float_info.max
"""Stands for an open bound (a comparator, a Range without low or high)."""


@dataclass(frozen=True, slots=True)
class Value:
    lo: float
    hi: float
    system: str | None
    code: str | None
    canonical: bool = False


def _scaled(x: float, factor: Decimal) -> float:
    return x if abs(x) == OPEN else float(Decimal(repr(x)) * factor)


def _unit_values(lo: float, hi: float, q: dict[str, Any]) -> list[Value]:
    system, code, unit = q.get("system"), q.get("code"), q.get("unit")
    system = system if isinstance(system, str) else None
    code = code if isinstance(code, str) else None
    out = [Value(lo, hi, system, code)]
    if isinstance(unit, str) and unit and unit != code:
        out.append(Value(lo, hi, None, unit))
    conversion = ucum.canonical(code) if system == ucum.UCUM else None
    if conversion is not None:
        factor, canon = conversion
        out.append(Value(_scaled(lo, factor), _scaled(hi, factor), ucum.UCUM, canon, True))
    return out


def values(value: Any, fhir_type: str) -> list[Value]:
    """Every indexed form of one Quantity-like value (empty for SampledData and non-quantities)."""
    if not isinstance(value, dict):
        return []
    if fhir_type == "Range" or "low" in value or "high" in value:
        low, high = value.get("low"), value.get("high")
        lo = point(low.get("value")) if isinstance(low, dict) else None
        hi = point(high.get("value")) if isinstance(high, dict) else None
        if lo is None and hi is None:
            return []
        unit_of = low if isinstance(low, dict) and lo is not None else high
        return _unit_values(-OPEN if lo is None else lo, OPEN if hi is None else hi,
                            unit_of if isinstance(unit_of, dict) else {})
    v = point(value.get("value"))
    if v is None:
        return []
    if fhir_type == "Money" or "currency" in value:
        currency = value.get("currency")
        return [Value(v, v, ISO_4217 if currency else None, currency if isinstance(currency, str) else None)]
    comparator = value.get("comparator")
    lo = -OPEN if comparator in ("<", "<=") else v
    hi = OPEN if comparator in (">", ">=") else v
    return _unit_values(lo, hi, value)


def index(param: ParamDef, value: Any, fhir_type: str, *, path: str | None = None,
          resource: dict[str, Any] | None = None, options: Options = DEFAULT) -> Iterable[Entry]:
    return [Entry("quantity", param.code + CANONICAL if q.canonical else param.code, (q.lo, q.hi, q.system, q.code))
            for q in values(value, fhir_type)]


@dataclass(frozen=True, slots=True)
class Query:
    """One parsed quantity search value."""

    alternatives: Alternatives
    system: str | None
    code: str | None
    canonical: bool


def parse(name: ParamDef | str, raw: str, *, lo: str = "lo", hi: str = "hi") -> Query:
    parts = split_escaped(raw, "|")
    if len(parts) not in (1, 3):
        invalid(name, f"'{raw}' is not [prefix]number or [prefix]number|system|code")
    prefix, text = split_prefix(unescape(parts[0]))
    number = parse_decimal(name, text)
    system = unescape(parts[1]) or None if len(parts) == 3 else None
    code = unescape(parts[2]) or None if len(parts) == 3 else None
    conversion = ucum.canonical(code) if system == ucum.UCUM else None
    if conversion is not None:
        factor, canon = conversion
        return Query(numeric_tests(prefix, number, factor, lo=lo, hi=hi), ucum.UCUM, canon, True)
    return Query(numeric_tests(prefix, number, lo=lo, hi=hi), system, code, False)


def condition(param: ParamDef, modifier: str | None, raw: str, options: Options = DEFAULT) -> Condition:
    if modifier is not None:
        unsupported_modifier(param, modifier)
    q = parse(param, raw)
    extra: tuple[FieldTest, ...] = ()
    if q.system is not None:
        extra += (FieldTest("system", "eq", q.system),)
    if q.code is not None:
        extra += (FieldTest("code", "eq", q.code),)
    return matches("quantity", param.code + CANONICAL if q.canonical else param.code, q.alternatives, extra)

"""Number parameters: index decimal/integer values; lower prefixes with implicit precision.

Per search.html#number, ``eq``/``ne`` (and ``ap``) use the precision the value is written with:
``5.4`` means [5.35, 5.45), ``100`` means [99.5, 100.5), ``1e2`` means [50, 150). The other
prefixes treat the value as exact. Indexed values are points (lo == hi), since JSON numbers carry
no precision of their own. ``ap`` is ±10 % of the value (and never narrower than eq).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from server.search.model import Condition, Entry
from server.search.registry import ParamDef
from server.search.types.common import DEFAULT, Options, invalid, unescape, unsupported_modifier
from server.search.types.prefix import Alternatives, matches, range_tests, split_prefix

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def parse_decimal(name: ParamDef | str, text: str) -> Decimal:
    """The search number as a Decimal (keeps its written precision); InvalidSearch if malformed."""
    if not _NUMBER.match(text):
        invalid(name, f"'{text}' is not a number")
    try:
        return Decimal(text)
    except InvalidOperation:
        invalid(name, f"'{text}' is not a number")


def numeric_tests(prefix: str, value: Decimal, scale: Decimal = Decimal(1), *, lo: str = "lo",
                  hi: str = "hi") -> Alternatives:
    """Alternatives for ``prefix value`` after multiplying by ``scale`` (unit conversion)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int), "parse_decimal admits only finite numbers"
    half = Decimal(5).scaleb(exponent - 1)  # half a unit of the last digit
    exact = float(value * scale)
    if prefix in ("eq", "ne"):
        low, high = float((value - half) * scale), float((value + half) * scale)
        # a range narrower than a double's resolution (12345678901234567890.12 ± 0.005) collapses
        # onto the double the value is indexed as: it must contain it, not exclude its own upper end
        return range_tests(prefix, low, high, upper_open=low != high, lo=lo, hi=hi)
    if prefix == "ap":
        spread = max(abs(value) / 10, half)
        return range_tests("ap", exact, exact, approx=(float((value - spread) * scale),
                                                       float((value + spread) * scale)), lo=lo, hi=hi)
    return range_tests(prefix, exact, exact, lo=lo, hi=hi)


def lower(name: ParamDef | str, raw: str, *, lo: str = "lo", hi: str = "hi") -> Alternatives:
    prefix, text = split_prefix(unescape(raw))
    return numeric_tests(prefix, parse_decimal(name, text), lo=lo, hi=hi)


def point(value: Any) -> float | None:
    """A JSON number as a float (booleans and strings are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    return float(value)


def index(param: ParamDef, value: Any, fhir_type: str, *, path: str | None = None,
          resource: dict[str, Any] | None = None, options: Options = DEFAULT) -> Iterable[Entry]:
    v = point(value)
    return [] if v is None else [Entry("number", param.code, (v, v))]


def condition(param: ParamDef, modifier: str | None, raw: str, options: Options = DEFAULT) -> Condition:
    if modifier is not None:
        unsupported_modifier(param, modifier)
    return matches("number", param.code, lower(param, raw))

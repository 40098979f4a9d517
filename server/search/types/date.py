"""Date parameters: index date/dateTime/instant/Period/Timing as [lo, hi] µs ranges; lower prefixes.

Every date is a range at its own precision (search.html#date): ``2020`` is the whole of 2020,
``2020-03-04T10:00`` one minute, ``...:05.25`` a hundredth of a second. Bounds are integer
microseconds since 1970-01-01T00:00Z, both inclusive. A Period's missing start or end is open
(:data:`MIN_US` / :data:`MAX_US`); a Timing contributes each ``event`` and its ``boundsPeriod``.

Time zones: a value with an offset is converted to UTC; a date or dateTime without one (which R4
allows for dates and for search values) is taken as UTC, so results do not depend on where the
server runs. ``ap`` widens the search range by 10 % of its distance from now, at least one day
(the spec leaves the amount to the server, search.html#prefix).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

from server.search.model import Condition, Entry
from server.search.registry import ParamDef
from server.search.types.common import DEFAULT, Options, invalid, unescape, unsupported_modifier
from server.search.types.prefix import Alternatives, matches, range_tests, split_prefix

MIN_US = -62135596800000000
"""0001-01-01T00:00:00Z: the open start of a Period."""
MAX_US = 253402300799999999
"""9999-12-31T23:59:59.999999Z: the open end of a Period."""
DAY_US = 86_400_000_000

_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+\- ]\d{2}:\d{2})?)?)?)?$"
)


def _days(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year; H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _month_len(y: int, m: int) -> int:
    if m == 12:
        return 31
    return _days(y, m + 1, 1) - _days(y, m, 1)


def parse_range(text: str) -> tuple[int, int] | None:
    """[lo, hi] µs of a FHIR date/dateTime/instant (or search date) at its precision, or None."""
    m = _DATE.match(text) if isinstance(text, str) else None
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    y = int(year)
    mo = int(month) if month else 1
    d = int(day) if day else 1
    if not 1 <= mo <= 12 or not 1 <= d <= _month_len(y, mo):
        return None
    h = int(hour) if hour else 0
    mi = int(minute) if minute else 0
    s = int(second) if second else 0
    if h > 23 or mi > 59 or s > 59:
        return None
    us = 0
    if fraction:
        us = int(fraction[:6].ljust(6, "0"))
    base = _days(y, mo, d) * DAY_US + ((h * 60 + mi) * 60 + s) * 1_000_000 + us
    if fraction:
        width = 10 ** (6 - min(len(fraction), 6))
    elif second:
        width = 1_000_000
    elif minute:
        width = 60_000_000
    elif day:
        width = DAY_US
    elif month:
        width = _month_len(y, mo) * DAY_US
    else:
        width = (_days(y + 1, 1, 1) - _days(y, 1, 1)) * DAY_US
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1  # a ' ' is a '+' that a query string decoded as space
        zh, zm = int(zone[1:3]), int(zone[4:6])
        if zh > 14 or zm > 59:
            return None
        base -= sign * (zh * 60 + zm) * 60_000_000
    lo, hi = base, base + width - 1
    return max(lo, MIN_US), min(hi, MAX_US)


def value_ranges(value: Any, fhir_type: str) -> list[tuple[int, int]]:
    """The ranges one extracted value covers (empty when it is not a date at all)."""
    if isinstance(value, str):
        found = parse_range(value)
        return [found] if found else []
    if not isinstance(value, dict):
        return []
    if fhir_type == "Timing" or "event" in value or "repeat" in value:
        out = [r for e in value.get("event", ()) if (r := parse_range(e))]
        bounds = value.get("repeat", {}).get("boundsPeriod") if isinstance(value.get("repeat"), dict) else None
        if isinstance(bounds, dict):
            out.extend(value_ranges(bounds, "Period"))
        return out
    start, end = value.get("start"), value.get("end")
    if start is None and end is None:
        return []
    lo = parse_range(start) if start is not None else (MIN_US, MIN_US)
    hi = parse_range(end) if end is not None else (MAX_US, MAX_US)
    if lo is None or hi is None:
        return []
    return [(lo[0], hi[1])]


def index(param: ParamDef, value: Any, fhir_type: str, *, path: str | None = None,
          resource: dict[str, Any] | None = None, options: Options = DEFAULT) -> Iterable[Entry]:
    return [Entry("date", param.code, r) for r in value_ranges(value, fhir_type)]


def now_us(options: Options) -> int:
    return options.now if options.now is not None else time.time_ns() // 1000


def lower(name: ParamDef | str, raw: str, options: Options = DEFAULT, *, lo: str = "lo",
          hi: str = "hi") -> Alternatives:
    """Alternatives for one prefixed date search value (also used for ``_lastUpdated`` and
    composite components)."""
    prefix, text = split_prefix(unescape(raw))
    found = parse_range(text)
    if found is None:
        invalid(name, f"'{raw}' is not a valid date (expected YYYY[-MM[-DD[Thh:mm[:ss[.fff]][Z|+hh:mm]]]])")
    sl, sh = found
    approx = None
    if prefix == "ap":
        delta = max(abs((sl + sh) // 2 - now_us(options)) // 10, DAY_US)
        approx = (sl - delta, sh + delta)
    return range_tests(prefix, sl, sh, approx=approx, lo=lo, hi=hi)


def condition(param: ParamDef, modifier: str | None, raw: str, options: Options = DEFAULT) -> Condition:
    if modifier is not None:
        unsupported_modifier(param, modifier)
    return matches("date", param.code, lower(param, raw, options))

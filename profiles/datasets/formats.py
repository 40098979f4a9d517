"""WS 363 data-element formats: parse a local value into its FHIR primitive, or say why it does not fit.

WS 363 writes a data element's representation as a short notation (fact sheet
/work/shared/cn/README.md §1): ``A..50`` up to 50 letters, ``AN..18`` up to 18 alphanumerics,
``N1`` exactly one digit, ``N..3`` up to three digits, ``N..4,1`` up to four digits with one
decimal, ``D8`` a date ``YYYYMMDD``, ``DT15`` a date-time ``YYYYMMDDThhmmss``, ``L`` a boolean T/F.
Local systems often export ISO dates instead, and desks type ``2024/3/5``, ``1937.12.14`` or ``1993年4月28日``;
those are accepted with a warning (``nonstandard``), because the meaning is unambiguous (year first). A date whose
year comes last (``03/05/2024``: 5 March or 3 May?) is refused with that reason, never guessed. Dates
become FHIR ``date``; date-times become FHIR ``dateTime`` with the China Standard Time offset ``+08:00``
(http://hl7.org/fhir/R4/datatypes.html#dateTime needs an offset when a time is given).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache

OFFSET = "+08:00"
_NOTATION = re.compile(r"(?P<kind>AN|A|N|DT|D|L)(?P<range>\.\.)?(?P<digits>\d+)?(?:,(?P<scale>\d+))?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?")
_DESK_DATE = re.compile(r"(?P<y>\d{4})\s*[/.\-年]\s*(?P<m>\d{1,2})\s*[/.\-月]\s*(?P<d>\d{1,2})\s*日?"
                        r"(?:[\sT]*(?P<H>\d{1,2})\s*[:时]\s*(?P<M>\d{2})(?:\s*[:分]\s*(?P<S>\d{2})\s*秒?)?)?")
"""Year first with ``/``, ``.``, ``-`` or 年月日, one- or two-digit month and day: unambiguous desk dates."""
_YEAR_LAST = re.compile(r"\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}([\sT].*)?|\d{2}[/.\-]\d{1,2}[/.\-]\d{1,2}([\sT].*)?")
"""``03/05/2024`` (5 March or 3 May?), ``24/3/5``: refused, not guessed."""


def normalize(text: str) -> str:
    """Full-width digits, letters and punctuation as ASCII (NFKC: ``２０２４`` → ``2024``, ``＜`` → ``<``), trimmed."""
    return unicodedata.normalize("NFKC", text).strip()


def _desk(text: str, with_time: bool) -> str | None:
    """A year-first desk date (``2024/3/5``, ``1937.12.14``, ``1993年4月28日``, optionally a time) as D8 or
    DT15 text, or None when it is not one."""
    match = _DESK_DATE.fullmatch(text)
    if match is None or (match["H"] is not None and not with_time):
        return None
    day = f"{match['y']}{int(match['m']):02d}{int(match['d']):02d}"
    if not with_time:
        return day
    return f"{day}T{int(match['H'] or 0):02d}{match['M'] or '00'}{match['S'] or '00'}"


def _ambiguous(text: str) -> Parsed:
    return Parsed(None, f"ambiguous date {text!r}: day, month and year order unknown (write YYYYMMDD)")


@dataclass(frozen=True, slots=True)
class Parsed:
    """A value in FHIR form (``value``), or the reason it does not fit (``problem``); ``nonstandard``
    marks a value accepted in a tolerated non-WS form."""

    value: str | Decimal | bool | None
    problem: str | None = None
    nonstandard: bool = False


@dataclass(frozen=True, slots=True)
class Format:
    kind: str
    """``A``, ``AN``, ``N``, ``D``, ``DT`` or ``L``."""
    length: int | None
    exact: bool
    scale: int | None


@cache
def format_of(notation: str) -> Format:
    """The :class:`Format` of a WS 363 notation such as ``AN..18`` (``ValueError`` if it is not one)."""
    match = _NOTATION.fullmatch(notation.strip())
    if match is None:
        raise ValueError(f"not a WS 363 format notation: {notation!r}")
    digits = match["digits"]
    return Format(match["kind"], int(digits) if digits else None, match["range"] is None and digits is not None,
                  int(match["scale"]) if match["scale"] else None)


def _date(text: str) -> Parsed:
    nonstandard = False
    if _ISO_DATE.fullmatch(text):
        text, nonstandard = text.replace("-", ""), True
    elif (desk := _desk(text, False)) is not None:
        text, nonstandard = desk, True
    elif _YEAR_LAST.fullmatch(text):
        return _ambiguous(text)
    if len(text) != 8 or not text.isdigit():
        return Parsed(None, "expected a date YYYYMMDD (D8)")
    try:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return Parsed(None, f"{text} is not a calendar date")
    return Parsed(day.isoformat(), None, nonstandard)


def _datetime(text: str) -> Parsed:
    nonstandard = False
    if _ISO_DATETIME.fullmatch(text):
        digits = re.sub(r"\D", "", text)
        text, nonstandard = digits[:8] + "T" + digits[8:].ljust(6, "0"), True
    elif len(text) == 14 and text.isdigit():
        text, nonstandard = text[:8] + "T" + text[8:], True
    elif len(text) == 8 and text.isdigit():
        text, nonstandard = text + "T000000", True
    elif (desk := _desk(text, True)) is not None:
        text, nonstandard = desk, True
    elif _YEAR_LAST.fullmatch(text):
        return _ambiguous(text)
    if len(text) != 15 or text[8] != "T" or not (text[:8] + text[9:]).isdigit():
        return Parsed(None, "expected a date-time YYYYMMDDThhmmss (DT15)")
    try:
        moment = datetime(int(text[:4]), int(text[4:6]), int(text[6:8]), int(text[9:11]), int(text[11:13]),
                          int(text[13:15]))
    except ValueError:
        return Parsed(None, f"{text} is not a calendar date-time")
    return Parsed(moment.isoformat() + OFFSET, None, nonstandard)


def _number(text: str, fmt: Format) -> Parsed:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return Parsed(None, "expected a number")
    if not number.is_finite():
        return Parsed(None, "expected a finite number")
    whole, _, fraction = text.lstrip("+-").partition(".")
    if fmt.scale is None and fraction:
        return Parsed(None, "expected a whole number")
    if fmt.scale is not None and len(fraction) > fmt.scale:
        return Parsed(None, f"at most {fmt.scale} decimal place(s) allowed")
    if fmt.length is not None and len(whole) + len(fraction) > fmt.length:
        return Parsed(None, f"at most {fmt.length} digit(s) allowed")
    if fmt.exact and fmt.length is not None and len(whole) != fmt.length:
        return Parsed(None, f"exactly {fmt.length} digit(s) expected")
    return Parsed(number)


def parse(notation: str, text: str) -> Parsed:
    """``text`` (already stripped, non-empty) parsed by the WS 363 format ``notation``."""
    fmt = format_of(notation)
    if fmt.kind == "D":
        return _date(text)
    if fmt.kind == "DT":
        return _datetime(text)
    if fmt.kind == "L":
        if text in ("T", "F", "1", "0", "true", "false"):
            return Parsed(text in ("T", "1", "true"))
        return Parsed(None, "expected T or F (L)")
    if fmt.kind == "N" and fmt.exact and fmt.scale is None and text.isdigit() and len(text) == fmt.length:
        return Parsed(text)  # a fixed-width numeric code such as N1/N2 keeps its leading zeros
    if fmt.kind == "N":
        parsed = _number(text, fmt)
        return parsed
    if fmt.length is not None and len(text) > fmt.length:
        return Parsed(None, f"longer than {fmt.length} characters")
    if fmt.exact and fmt.length is not None and len(text) != fmt.length:
        return Parsed(None, f"exactly {fmt.length} characters expected")
    return Parsed(text)


def day_of(value: str) -> date:
    """The calendar day of a FHIR date or dateTime produced by :func:`parse`."""
    return date.fromisoformat(value[:10])

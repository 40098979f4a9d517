"""GB 11643-1999 公民身份号码 (citizen identity number): structure and ISO 7064 MOD 11-2 check digit.

The same rule is written as a FHIRPath invariant (``cn-id-1``) on the 居民身份证号 identifier slice
of the regional Patient profile (``profiles/regional/StructureDefinition-cn-patient.json``); this
module is its Python twin, for code that maps data sets onto FHIR before validation (the
WS 363/445 data-set mapping) and for tests that keep the two in step.

An 18-character number is (fact sheet /shared/cn/README.md §2):

1. characters 1–6: 地址码, a GB/T 2260 county-level region code (the first two digits a province:
   11–15, 21–23, 31–37, 41–46, 50–54, 61–65, or 71/81/82 on 港澳台 residence permits);
2. characters 7–14: 出生日期码 YYYYMMDD, a real calendar date not in the future;
3. characters 15–17: 顺序码, odd for men and even for women in the 17th character;
4. character 18: the ISO 7064:1983 MOD 11-2 check character, ``0``–``9`` or ``X`` (10):
   S = Σ a_i·W_i with W_i = 2^(18−i) mod 11, check = "10X98765432"[S mod 11].

Only an upper-case ``X`` is valid in a stored identifier; :func:`normalize` upper-cases a
lower-case ``x`` typed at a registration desk, before the check.
"""

from __future__ import annotations

import re
from datetime import date

SYSTEM = "urn:oid:2.16.156.10011.1.3"
"""Identifier.system of the 居民身份证号 (WS/T 500 identifier root 2.16.156.10011.1.3)."""
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARACTERS = "10X98765432"
ADDRESS_CODE = r"(1[1-5]|2[1-3]|3[1-7]|4[1-6]|5[0-4]|6[1-5]|71|8[12])[0-9]{4}"
"""地址码: a GB/T 2260 county code's shape, a real province (or 港澳台) and four digits."""
STRUCTURE = re.compile(
    ADDRESS_CODE +  # 地址码
    r"(18|19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])"  # 出生日期码 YYYYMMDD (shape only)
    r"[0-9]{3}[0-9X]")  # 顺序码 + 校验码
"""The shape the FHIRPath invariant ``cn-id-1`` matches with ``matches()`` (same pattern, anchored there)."""


def check_character(first17: str) -> str:
    """The MOD 11-2 check character of the first 17 digits (``ValueError`` if they are not 17 digits)."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError(f"the check character needs exactly 17 digits, got {first17!r}")
    total = sum(int(digit) * weight for digit, weight in zip(first17, WEIGHTS, strict=True))
    return CHECK_CHARACTERS[total % 11]


def birth_date(number: str) -> date | None:
    """The 出生日期码 of an 18-character number as a date, or None when it is not a calendar date."""
    try:
        return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None


def problem(number: str, *, today: date | None = None) -> str | None:
    """Why ``number`` is not a valid 18-character 公民身份号码, or None when it is.

    ``today`` bounds the birth date (default: the current date).
    """
    if len(number) != 18:
        return f"must be 18 characters, found {len(number)}"
    if STRUCTURE.fullmatch(number) is None:
        if number[17] == "x":
            return "the check character X must be upper-case"
        return ("must be a 6-digit region code starting with a province code, a birth date YYYYMMDD, "
                "a 3-digit sequence and a check character 0-9 or X")
    born = birth_date(number)
    if born is None:
        return f"the birth date {number[6:14]} is not a calendar date"
    if born > (today if today is not None else date.today()):
        return f"the birth date {born.isoformat()} is in the future"
    expected = check_character(number[:17])
    if number[17] != expected:
        return f"the check character is {number[17]}, but the first 17 digits give {expected}"
    return None


def is_valid(number: str, *, today: date | None = None) -> bool:
    """Whether ``number`` is a valid 18-character 公民身份号码 (strict: upper-case X only)."""
    return problem(number, today=today) is None


def normalize(number: str) -> str:
    """``number`` as it should be stored: surrounding spaces removed, a lower-case check ``x`` upper-cased."""
    number = number.strip()
    return number[:17] + "X" if len(number) == 18 and number[17] == "x" else number


def sex_code(number: str) -> str:
    """The GB/T 2261.1 sex code the 顺序码 implies: ``1`` (男) for an odd 17th digit, ``2`` (女) for even."""
    return "1" if int(number[16]) % 2 else "2"


def upgrade(number15: str) -> str:
    """A 15-digit GB 11643-1989 number as 18 characters: ``19`` inserted before the 2-digit year, check appended.

    Raises ``ValueError`` when ``number15`` is not 15 digits.
    """
    if len(number15) != 15 or not number15.isascii() or not number15.isdigit():
        raise ValueError(f"a first-generation number has exactly 15 digits, got {number15!r}")
    first17 = number15[:6] + "19" + number15[6:]
    return first17 + check_character(first17)

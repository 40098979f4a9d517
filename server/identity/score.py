"""``Patient/$match`` scoring (pure, no I/O): how alike two Patients are, and how sure that is.

Each piece of evidence adds (or takes) points; the score is their sum clamped to 0–1:

===============================================================  ========  ==========================
evidence (input Patient vs. candidate)                           points    notes
===============================================================  ========  ==========================
a shared strong identifier: valid 居民身份证号 (GB 11643 check      +0.60     :mod:`.keys`
character) or 居民健康卡号
a shared 居民身份证号 whose check character is wrong                +0.20     never *certain*
a shared other identifier (same system and value: 健康档案编号,    +0.25     each system once
病案号 …)
both have valid 居民身份证号 and they differ                        excluded  a different person
name: the same text (whitespace ignored, Latin case-folded)      +0.20
name: the same pinyin, other characters (同音字, e.g. 张伟/章伟)    +0.10     pypinyin, tones ignored
birth date: equal / both full dates and different                +0.10     −0.20
sex: equal / both male|female and different                      +0.05     −0.20
phone: the same digits (a leading +86/86 ignored)                +0.10
address: the same GB/T 2260 county code / the same prefecture    +0.05     +0.02
===============================================================  ========  ==========================

Grades (the ``match-grade`` extension, http://hl7.org/fhir/StructureDefinition/match-grade):

- ``certain``: a shared strong identifier and nothing that contradicts it (no different birth date
  or sex, and the names, when both are given, equal or the same in pinyin);
- ``probable``: otherwise a score of at least 0.45 (e.g. same name, birth date, sex and phone);
- ``possible``: otherwise a score of at least 0.20 (e.g. same name, birth date and sex: a weak match,
  offered to an operator, never linked automatically);
- below 0.20: not a match (not returned).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from pypinyin import lazy_pinyin

from server.identity.keys import ID_NUMBER, identifiers, strong_key, valid_id_number

STRONG = 0.60
BAD_CHECK = 0.20
OTHER_ID = 0.25
NAME_EXACT = 0.20
NAME_PINYIN = 0.10
BIRTH = 0.10
SEX = 0.05
PHONE = 0.10
COUNTY = 0.05
PREFECTURE = 0.02
CONFLICT = -0.20
PROBABLE = 0.45
POSSIBLE = 0.20
_COUNTY_CODE = re.compile(r"^[1-8][0-9]{5}$")
_FULL_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


@dataclass(frozen=True, slots=True)
class Match:
    score: float
    grade: str | None
    """certain | probable | possible, or None: not a match."""
    reasons: tuple[str, ...]


def names(patient: dict[str, Any]) -> list[str]:
    """Each name as one comparable string: ``text``, else family + given; whitespace removed, NFKC, case-folded."""
    found: list[str] = []
    for name in patient.get("name") or ():
        if not isinstance(name, dict):
            continue
        text = name.get("text")
        if not isinstance(text, str) or not text.strip():
            given = name.get("given") or []
            text = "".join([str(name.get("family") or ""), *(str(g) for g in given if isinstance(g, str))])
        text = "".join(unicodedata.normalize("NFKC", text).split()).casefold()
        if text and text not in found:
            found.append(text)
    return found


def pinyin(text: str) -> str:
    """The toneless pinyin of ``text`` (other characters kept as they are)."""
    return "".join(lazy_pinyin(text)).casefold()


def phones(patient: dict[str, Any]) -> set[str]:
    found = set()
    for telecom in patient.get("telecom") or ():
        if isinstance(telecom, dict) and telecom.get("system") in ("phone", "sms", None):
            digits = re.sub(r"[^0-9]", "", str(telecom.get("value") or ""))
            if len(digits) == 13 and digits.startswith("86"):
                digits = digits[2:]
            if digits:
                found.add(digits)
    return found


def county_codes(patient: dict[str, Any]) -> set[str]:
    """GB/T 2260 codes in the addresses: a 6-digit ``district``/``city``/``state`` or an extension's code."""
    found: set[str] = set()
    for address in patient.get("address") or ():
        if not isinstance(address, dict):
            continue
        values = [address.get(k) for k in ("district", "city", "state")]
        for ext in address.get("extension") or ():
            if isinstance(ext, dict):
                coding = ext.get("valueCoding") or {}
                values += [ext.get("valueCode"), ext.get("valueString"),
                           coding.get("code") if isinstance(coding, dict) else None]
        found.update(v for v in values if isinstance(v, str) and _COUNTY_CODE.match(v))
    return found


def _valid_ids(patient: dict[str, Any]) -> set[str]:
    return {v for s, v in identifiers(patient) if s == ID_NUMBER and valid_id_number(v)}


def score(query: dict[str, Any], candidate: dict[str, Any]) -> Match:
    """How well ``candidate`` matches ``query`` (see the module docstring for the table)."""
    points = 0.0
    reasons: list[str] = []
    mine, theirs = set(identifiers(query)), set(identifiers(candidate))
    ids_q, ids_c = _valid_ids(query), _valid_ids(candidate)
    if ids_q and ids_c and not ids_q & ids_c:
        return Match(0.0, None, ("different 居民身份证号",))
    strong = False
    others: set[str] = set()
    for system, value in sorted(mine & theirs):
        if strong_key(system, value) is not None:
            if not strong:
                points += STRONG
                reasons.append(f"strong identifier {system}")
            strong = True
        elif system == ID_NUMBER:
            points += BAD_CHECK
            reasons.append("居民身份证号 with a wrong check character")
        elif system not in others:
            others.add(system)
            points += OTHER_ID
            reasons.append(f"identifier {system}")
    conflict = False
    names_q, names_c = names(query), names(candidate)
    if names_q and names_c:
        if set(names_q) & set(names_c):
            points += NAME_EXACT
            reasons.append("name")
        elif {pinyin(n) for n in names_q} & {pinyin(n) for n in names_c}:
            points += NAME_PINYIN
            reasons.append("name (pinyin)")
        else:
            conflict = True
    birth_q, birth_c = query.get("birthDate"), candidate.get("birthDate")
    if isinstance(birth_q, str) and isinstance(birth_c, str):
        if birth_q == birth_c:
            points += BIRTH
            reasons.append("birth date")
        elif _FULL_DATE.match(birth_q) and _FULL_DATE.match(birth_c):
            points += CONFLICT
            conflict = True
    sex_q, sex_c = query.get("gender"), candidate.get("gender")
    if isinstance(sex_q, str) and isinstance(sex_c, str):
        if sex_q == sex_c:
            points += SEX
            reasons.append("sex")
        elif {sex_q, sex_c} == {"male", "female"}:
            points += CONFLICT
            conflict = True
    if phones(query) & phones(candidate):
        points += PHONE
        reasons.append("phone")
    codes_q, codes_c = county_codes(query), county_codes(candidate)
    if codes_q & codes_c:
        points += COUNTY
        reasons.append("county")
    elif {c[:4] for c in codes_q} & {c[:4] for c in codes_c}:
        points += PREFECTURE
        reasons.append("prefecture")
    total = round(min(1.0, max(0.0, points)), 4)
    if strong and not conflict:
        grade: str | None = "certain"
    elif total >= PROBABLE:
        grade = "probable"
    elif total >= POSSIBLE:
        grade = "possible"
    else:
        grade = None
    return Match(total, grade, tuple(reasons))

"""The regional profiles' invariants (``cn-*``) and ``obs-3``, evaluated natively.

These constraints run on every Patient, lab Observation and practitioner a regional platform
ingests; evaluated with fhirpathpy they cost 0.1–1 ms each (``cn-id-1`` folds 17 digits with
``aggregate()``), which made validation the larger part of a data-set ingest. Each function here is
the twin of one expression, registered under its key *and* exact text (:data:`NATIVE`), so a
profile that changes the text goes back to FHIRPath; ``tests/profiles/test_regional_invariants.py``
checks that every registered text is still the one in ``profiles/regional/`` and that both engines
agree on a table of cases. A function returns True where the FHIRPath result is ``true`` or empty
(the caller's rule for "satisfied"), False where it is ``false``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

from profiles import resident_id

Native = Callable[[Any, Any], bool]

_ID_SHAPE = re.compile(r"[0-9]{17}[0-9X]")
_REGION = re.compile(resident_id.ADDRESS_CODE)
_LOINC = "http://loinc.org"
_DATA_ELEMENTS = "urn:oid:2.16.156.10011.2.2.1"
_SEX_ORIGINAL = "http://yidang.org/fhir/StructureDefinition/cn-sex-original"


def _exists(value: dict[str, Any], name: str) -> bool:
    """``name.exists()`` on an element: present as a value or, for primitives, as ``_name``."""
    return value.get(name) not in (None, [], {}) or value.get("_" + name) not in (None, [], {})


def _choice_exists(value: dict[str, Any], stem: str) -> bool:
    return any(k.startswith(stem) and k[len(stem):][:1].isupper() and v not in (None, [], {})
               for k, v in value.items())


def _any_of(*names: str) -> Native:
    """``a.exists() or b.exists() or …``; a name ending in ``[x]`` is a choice element."""
    def check(value: Any, env: Any) -> bool:
        if not isinstance(value, dict):
            return True
        return any(_choice_exists(value, n[:-3]) if n.endswith("[x]") else _exists(value, n) for n in names)
    return check


def _current_resident_ids(patient: dict[str, Any]) -> list[str]:
    """``identifier.where(system = ID).where(use.empty() or use != 'old').where(value.matches(shape)).value``."""
    out = []
    for identifier in patient.get("identifier") or ():
        if not isinstance(identifier, dict) or identifier.get("system") != resident_id.SYSTEM:
            continue
        if identifier.get("use") == "old":
            continue
        number = identifier.get("value")
        if isinstance(number, str) and _ID_SHAPE.fullmatch(number):
            out.append(number)
    return out


def _equivalent(left: Any, right: str) -> bool:
    """FHIRPath ``~`` on strings: equal ignoring case and surrounding/repeated white space."""
    return isinstance(left, str) and " ".join(left.split()).lower() == right


def cn_id_1(identifier: Any, env: Any) -> bool:
    """A current 居民身份证号 is a GB 11643 number: shape, a real date not in the future, the check digit."""
    if not isinstance(identifier, dict):
        return True
    number = identifier.get("value")
    if number is None or identifier.get("use") == "old":
        return True
    if not isinstance(number, str) or resident_id.STRUCTURE.fullmatch(number) is None:
        return False
    born = resident_id.birth_date(number)
    return (born is not None and number[6:14] <= date.today().strftime("%Y%m%d")
            and resident_id.check_character(number[:17]) == number[17])


def cn_pat_1(patient: Any, env: Any) -> bool:
    """The birth date equals the 出生日期码 of every current 居民身份证号."""
    if not isinstance(patient, dict) or not isinstance(patient.get("birthDate"), str):
        return True
    birth = patient["birthDate"]
    return all(f"{n[6:10]}-{n[10:12]}-{n[12:14]}".startswith(birth) for n in _current_resident_ids(patient))


def cn_pat_2(patient: Any, env: Any) -> bool:
    """The GB/T 2261.1 sex code kept on ``gender`` agrees with ``gender``."""
    if not isinstance(patient, dict):
        return True
    element = patient.get("_gender")
    extensions = element.get("extension") if isinstance(element, dict) else None
    expected = {"1": "male", "2": "female", "0": "unknown", "9": "unknown"}
    for extension in extensions or ():
        if not isinstance(extension, dict) or extension.get("url") != _SEX_ORIGINAL:
            continue
        coding = extension.get("valueCoding")
        code = coding.get("code") if isinstance(coding, dict) else None
        if code in expected and not _equivalent(patient.get("gender"), expected[code]):
            return False
    return True


def cn_pat_3(patient: Any, env: Any) -> bool:
    """The 17th digit of a current 居民身份证号 is odd for men and even for women."""
    if not isinstance(patient, dict):
        return True
    gender = patient.get("gender")
    if not (_equivalent(gender, "male") or _equivalent(gender, "female")):
        return True
    male = _equivalent(gender, "male")
    return all((int(n[16]) % 2 == 1) == male for n in _current_resident_ids(patient))


def cn_reg_1(extension: Any, env: Any) -> bool:
    """A GB/T 2260 region code has six digits and a real province prefix."""
    coding = extension.get("valueCoding") if isinstance(extension, dict) else None
    code = coding.get("code") if isinstance(coding, dict) else None
    return code is None or (isinstance(code, str) and _REGION.fullmatch(code) is not None)


def cn_lab_1(concept: Any, env: Any) -> bool:
    """The item code carries the institution's local coding (a system other than LOINC and WS 363)."""
    if not isinstance(concept, dict):
        return True
    return any(isinstance(c, dict) and isinstance(c.get("system"), str)
               and c["system"] not in (_LOINC, _DATA_ELEMENTS) for c in concept.get("coding") or ())


def cn_lab_3(observation: Any, env: Any) -> bool:
    """A quantity result has a unit (text or code)."""
    quantity = observation.get("valueQuantity") if isinstance(observation, dict) else None
    return not isinstance(quantity, dict) or _exists(quantity, "unit") or _exists(quantity, "code")


_ID_RULE = (
    "iif(value.empty() or (use.exists() and use = 'old'), true, iif(value.matches('^(1[1-5]|2[1-3]|3[1-7]|4[1-6]"
    "|5[0-4]|6[1-5]|71|8[12])[0-9]{4}(18|19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9X]$'), "
    "value.substring(12, 2).toInteger() <= iif(value.substring(10, 2).toInteger() = 2, "
    "iif((value.substring(6, 4).toInteger() mod 4 = 0 and value.substring(6, 4).toInteger() mod 100 != 0) or "
    "value.substring(6, 4).toInteger() mod 400 = 0, 29, 28), iif(value.substring(10, 2).toInteger() in "
    "(4 | 6 | 9 | 11), 30, 31)) and value.substring(6, 8) <= today().toString().replace('-', '') and "
    "'10X98765432'.substring(value.substring(0, 17).toChars().aggregate((($total + $this.toInteger()) * 2) mod 11, "
    "0), 1) = value.substring(17, 1), false))")
_CURRENT_IDS = ("identifier.where(system = 'urn:oid:2.16.156.10011.1.3').where(use.empty() or use != 'old')"
                ".where(value.matches('^[0-9]{17}[0-9X]$'))")

NATIVE: dict[tuple[str, str], Native] = {
    ("cn-id-1", _ID_RULE): cn_id_1,
    ("cn-pat-1", "birthDate.exists() implies " + _CURRENT_IDS + ".all((value.substring(6, 4) + '-' + "
     "value.substring(10, 2) + '-' + value.substring(12, 2)).startsWith(%resource.birthDate.toString()))"): cn_pat_1,
    ("cn-pat-2", "gender.extension('" + _SEX_ORIGINAL + "').value.code.all(iif($this = '1', %resource.gender ~ "
     "'male', iif($this = '2', %resource.gender ~ 'female', iif($this = '0' or $this = '9', %resource.gender ~ "
     "'unknown', true))))"): cn_pat_2,
    ("cn-pat-3", "(gender.exists() and (gender ~ 'male' or gender ~ 'female')) implies " + _CURRENT_IDS +
     ".all(iif(value.substring(16, 1).toInteger() mod 2 = 1, %resource.gender ~ 'male', "
     "%resource.gender ~ 'female'))"): cn_pat_3,
    ("cn-reg-1", "value.code.matches('^(1[1-5]|2[1-3]|3[1-7]|4[1-6]|5[0-4]|6[1-5]|71|8[12])[0-9]{4}$')"): cn_reg_1,
    ("cn-lab-1", "coding.where(system.exists() and system != 'http://loinc.org' and "
     "system != 'urn:oid:2.16.156.10011.2.2.1').exists()"): cn_lab_1,
    ("cn-lab-2", "value.exists() or dataAbsentReason.exists() or hasMember.exists() or component.exists()"):
        _any_of("value[x]", "dataAbsentReason", "hasMember", "component"),
    ("cn-lab-3", "value.ofType(Quantity).all(unit.exists() or code.exists())"): cn_lab_3,
    ("obs-3", "low.exists() or high.exists() or text.exists()"): _any_of("low", "high", "text"),
}
"""(key, exact expression) → its native twin."""

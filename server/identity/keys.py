"""Strong identifiers and the link assurance rule (pure, no I/O).

A *strong* identifier names one resident nationally, whichever institution wrote it:

======================================  =============================================================
``urn:oid:2.16.156.10011.1.3``          居民身份证号, only when valid (GB 11643 structure, real birth date,
                                        ISO 7064 MOD 11-2 check character): a mistyped number never links
``urn:oid:2.16.156.10011.1.19``         居民健康卡号 (any non-empty value)
======================================  =============================================================

Identifiers of every ``use`` count (an ``old`` number, e.g. a merged duplicate's, still names the person).
Institution-scoped numbers (门诊号, 病案号, 健康档案编号 …) are not strong: they are unique only
within their assigner.

Link assurance (``Person.link.assurance``, http://hl7.org/fhir/R4/valueset-identity-assuranceLevel.html):

- ``level4``: the Patient carries a valid 居民身份证号 of the Person **and** its ``birthDate`` and
  ``gender`` agree with those the number encodes (digits 7–14; 17th digit odd = male, even = female):
  two independent facts confirm the identity;
- ``level3``: linked by a strong identifier only (a health card, or an ID number whose birth date or
  sex is missing on the Patient or disagrees with it);
- ``level1``/``level2`` are never set automatically: an operator links a weak match (same name,
  birth date and sex, no shared strong identifier) by updating the Person with one of them, and the
  automatic maintenance leaves such links alone.
"""

from __future__ import annotations

from typing import Any

from profiles import resident_id

ID_NUMBER = resident_id.SYSTEM
HEALTH_CARD = "urn:oid:2.16.156.10011.1.19"
STRONG_SYSTEMS = (ID_NUMBER, HEALTH_CARD)
AUTOMATIC = ("level3", "level4")
"""Assurance levels the automatic linking sets and owns."""
REPLACED_BY = "replaced-by"

Key = tuple[str, str]
"""(system, value) of a strong identifier."""


def identifiers(resource: dict[str, Any]) -> list[Key]:
    """Every (system, value) pair of ``resource.identifier`` with both set."""
    found: list[Key] = []
    for ident in resource.get("identifier") or ():
        if isinstance(ident, dict):
            system, value = ident.get("system"), ident.get("value")
            if isinstance(system, str) and isinstance(value, str) and value.strip():
                found.append((system, value.strip()))
    return found


def valid_id_number(value: str) -> bool:
    return resident_id.is_valid(resident_id.normalize(value))


def strong_key(system: str, value: str) -> Key | None:
    """The key a strong identifier links by (an ID number normalised), or None when it is not one."""
    if system == ID_NUMBER:
        number = resident_id.normalize(value)
        return (system, number) if resident_id.is_valid(number) else None
    if system == HEALTH_CARD and value.strip():
        return system, value.strip()
    return None


def replaced(patient: dict[str, Any]) -> bool:
    """Whether the Patient was merged into another (``link`` type ``replaced-by``)."""
    return any(isinstance(link, dict) and link.get("type") == REPLACED_BY for link in patient.get("link") or ())


def strong_keys(patient: dict[str, Any]) -> list[Key]:
    """The strong identifiers the Patient is linked by, sorted and unique; none for a merged-away Patient."""
    if replaced(patient):
        return []
    keys = {key for system, value in identifiers(patient) if (key := strong_key(system, value)) is not None}
    return sorted(keys)


def assurance(patient: dict[str, Any]) -> str:
    """``level4`` or ``level3`` by the rule of the module docstring."""
    for system, value in strong_keys(patient):
        if system != ID_NUMBER:
            continue
        born = resident_id.birth_date(value)
        sex = "male" if resident_id.sex_code(value) == "1" else "female"
        if born is not None and patient.get("birthDate") == born.isoformat() and patient.get("gender") == sex:
            return "level4"
    return "level3"


def lock_key(key: Key) -> str:
    """The session-lock key of one strong identifier (never collides with resource or criteria keys)."""
    return f"identity|{key[0]}|{key[1]}"

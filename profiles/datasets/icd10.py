"""ICD-10 diagnosis codes as Chinese records carry them: the standard edition and the national clinical edition.

China codes diagnoses with several ICD-10 editions (fact sheet /work/shared/cn/README.md §1.3): GB/T 14396-2016
(WHO codes: ``I10``, ``E11.9``; OID ``urn:oid:2.16.156.10011.2.3.3.11``) and the 国家临床版 2.0 / 国家医保版 2.0,
which extend the WHO category with three characters after the dot (``E11.900``; ``x`` where WHO has no fourth
character: ``I10.x00``) and optionally an ``x``-and-three-digits extension (``I10.x00x002`` 高血压3级). No OID is
known for the clinical edition, so Yidang names it :data:`CLINICAL` (a CodeSystem in ``profiles/regional/``).

A clinical-edition code is stored twice on ``Condition.code``: under :data:`CLINICAL` as given, and under the
standard system as its WHO category (:func:`category`: ``I10.x00x002`` → ``I10``, ``E11.900`` → ``E11.9``), which
every clinical code has, so ``Condition?code=urn:oid:2.16.156.10011.2.3.3.11|I10`` finds the diagnoses of every
edition. A code of neither shape is malformed (QC rejects the record, as the regional profile would).
"""

from __future__ import annotations

import re

STANDARD = "urn:oid:2.16.156.10011.2.3.3.11"
CLINICAL = "http://yidang.org/fhir/CodeSystem/cn-icd10-clinical"
CLINICAL_VERSION = "国家临床版2.0"
_STANDARD = re.compile(r"[A-Z][0-9]{2}(\.[0-9A-Za-z]{1,2})?[+*]?")
_CLINICAL = re.compile(r"(?P<category>[A-Z][0-9]{2})\.(?P<fourth>[0-9x])[0-9]{2}(x[0-9]{3})?(?P<mark>[+*]?)")


def is_clinical(code: str) -> bool:
    """Whether ``code`` has the clinical-edition shape (three characters after the dot, optional extension)."""
    return _CLINICAL.fullmatch(code) is not None


def problem(code: str) -> str | None:
    """Why ``code`` is not an ICD-10 code of either edition, or None."""
    if _STANDARD.fullmatch(code) or _CLINICAL.fullmatch(code):
        return None
    return "not an ICD-10 code (GB/T 14396 such as I10, E11.9, or 国家临床版 2.0 such as E11.900, I10.x00x002)"


def category(code: str) -> str:
    """The WHO-level code of a clinical-edition code (``I10.x00x002`` → ``I10``, ``E11.900`` → ``E11.9``); a
    standard code unchanged."""
    match = _CLINICAL.fullmatch(code)
    if match is None:
        return code
    fourth = match["fourth"]
    return match["category"] + ("" if fourth == "x" else "." + fourth) + match["mark"]

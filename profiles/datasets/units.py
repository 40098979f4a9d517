"""Lab units: the units Chinese lab systems write, as UCUM, and the analytes whose unit is fixed.

A lab result's 定量结果计量单位 (DE04.30.016.00) is free text (``mmol/L``, ``μmol/L``, ``×10^9/L``, ``g/L``).
:func:`ucum` reads it as a UCUM code (http://unitsofmeasure.org, the system FHIR Quantity uses); :data:`ANALYTES`
names, per LOINC code, the unit Chinese platforms store the analyte in and the factors from the other units a
result may come in (mg/dL glucose from an imported analyser, g/dL haemoglobin). A result in another unit of the
same kind is converted; in a unit of another kind (96 "mmol/L" glucose is plausible as mg/dL, not as mmol/L — the
range check catches that) or an unknown one it is rejected, never stored under the wrong unit.
Factors: glucose 1 mg/dL = 0.0555 mmol/L (M = 180.16 g/mol); cholesterol (total, HDL, LDL) 0.02586 (386.65 g/mol);
triglycerides 0.01129 (885.7 g/mol); creatinine 1 mg/dL = 88.42 µmol/L (113.12 g/mol); haemoglobin 1 g/dL = 10 g/L.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

UCUM = "http://unitsofmeasure.org"

_TABLE = {
    "mmol/l": "mmol/L", "umol/l": "umol/L", "nmol/l": "nmol/L", "pmol/l": "pmol/L", "mol/l": "mol/L",
    "g/l": "g/L", "mg/l": "mg/L", "ug/l": "ug/L", "ng/l": "ng/L", "g/dl": "g/dL", "mg/dl": "mg/dL",
    "ng/ml": "ng/mL", "pg/ml": "pg/mL", "ug/ml": "ug/mL", "u/l": "U/L", "iu/l": "[IU]/L", "miu/l": "m[IU]/L",
    "miu/ml": "m[IU]/mL", "uiu/ml": "u[IU]/mL", "iu/ml": "[IU]/mL", "u/ml": "U/mL", "ku/l": "kU/L",
    "10*9/l": "10*9/L", "10*12/l": "10*12/L", "10*6/l": "10*6/L", "%": "%", "fl": "fL", "pg": "pg", "s": "s",
    "秒": "s", "mm/h": "mm/h", "mmhg": "mm[Hg]", "ml/min": "mL/min", "ml/min/1.73m2": "mL/min/{1.73_m2}",
    "/hp": "/[HPF]", "/ul": "/uL", "个/ul": "/uL", "cells/ul": "/uL", "ratio": "{ratio}", "g": "g", "kg": "kg",
    "cm": "cm", "mm": "mm", "/min": "/min", "次/分": "/min", "次/min": "/min", "mosm/kg": "mosm/kg",
}
"""Lower-case, normalised unit text → UCUM code."""

_POWER = re.compile(r"^(?:[x×*]\s*)?10\s*(?:\^|\*|e|)\s*(9|12|6)\s*/\s*l$")


def normalize(text: str) -> str:
    """NFKC, µ/μ as u, no spaces, lower case: the key of :data:`_TABLE`."""
    folded = unicodedata.normalize("NFKC", text).replace("μ", "u").replace("µ", "u").replace("⁹", "9")
    return re.sub(r"\s+", "", folded).lower()


def ucum(text: str) -> str | None:
    """The UCUM code of a lab unit as written (``×10^9/L`` → ``10*9/L``, ``μmol/L`` → ``umol/L``), or None."""
    key = normalize(text)
    power = _POWER.match(key)
    if power:
        return f"10*{power[1]}/L"
    return _TABLE.get(key)


@dataclass(frozen=True, slots=True)
class Analyte:
    name: str
    unit: str
    """The UCUM code the platform stores this analyte in."""
    factors: dict[str, Decimal]
    """Other UCUM unit → factor to :attr:`unit`."""
    plausible: tuple[Decimal, Decimal] | None = None
    """Values possible in :attr:`unit` (96 mmol/L glucose is a mg/dL value labelled mmol/L): outside is rejected."""


_GLUCOSE = {"mg/dL": Decimal("0.0555")}
_CHOLESTEROL = {"mg/dL": Decimal("0.02586")}
_G = (Decimal("0.5"), Decimal("60"))   # glucose mmol/L
_C = (Decimal("0.1"), Decimal("30"))   # cholesterol mmol/L
_T = (Decimal("0.05"), Decimal("60"))  # triglycerides mmol/L
_CR = (Decimal("5"), Decimal("3000"))  # creatinine umol/L
_HB = (Decimal("10"), Decimal("300"))  # haemoglobin g/L
ANALYTES = {
    "14749-6": Analyte("葡萄糖", "mmol/L", _GLUCOSE, _G), "14771-0": Analyte("空腹血糖", "mmol/L", _GLUCOSE, _G),
    "15074-8": Analyte("血糖", "mmol/L", _GLUCOSE, _G), "2345-7": Analyte("葡萄糖", "mmol/L", _GLUCOSE, _G),
    "2093-3": Analyte("总胆固醇", "mmol/L", _CHOLESTEROL, _C),
    "14647-2": Analyte("总胆固醇", "mmol/L", _CHOLESTEROL, _C),
    "2085-9": Analyte("高密度脂蛋白胆固醇", "mmol/L", _CHOLESTEROL, _C),
    "14646-4": Analyte("高密度脂蛋白胆固醇", "mmol/L", _CHOLESTEROL, _C),
    "13457-7": Analyte("低密度脂蛋白胆固醇", "mmol/L", _CHOLESTEROL, _C),
    "22748-8": Analyte("低密度脂蛋白胆固醇", "mmol/L", _CHOLESTEROL, _C),
    "2571-8": Analyte("甘油三酯", "mmol/L", {"mg/dL": Decimal("0.01129")}, _T),
    "14927-8": Analyte("甘油三酯", "mmol/L", {"mg/dL": Decimal("0.01129")}, _T),
    "14682-9": Analyte("肌酐", "umol/L", {"mg/dL": Decimal("88.42")}, _CR),
    "2160-0": Analyte("肌酐", "umol/L", {"mg/dL": Decimal("88.42")}, _CR),
    "718-7": Analyte("血红蛋白", "g/L", {"g/dL": Decimal("10")}, _HB),
    "6690-2": Analyte("白细胞计数", "10*9/L", {}), "1742-6": Analyte("丙氨酸氨基转移酶", "U/L", {}),
}
"""Per LOINC code: the unit the platform stores (Chinese practice, SI) and the conversions it makes. LOINC codes
of a mass property (2345-7 glucose mg/dL, 2093-3 cholesterol) are listed too: Chinese labs map their item to them
while reporting mmol/L."""


@dataclass(frozen=True, slots=True)
class Checked:
    value: Decimal
    unit: str | None
    """UCUM code to store, None when the unit is unknown."""
    converted_from: str | None = None
    """``96 mg/dL`` when the value was converted."""
    problem: str | None = None


def check(value: Decimal, text: str, loinc: str | None) -> Checked:
    """A result's value and unit text against its analyte (by LOINC code): the UCUM code, converted when the
    unit is another of the analyte's known units, or the reason it cannot be stored (``problem``)."""
    code = ucum(text)
    analyte = ANALYTES.get(loinc or "")
    if analyte is None:
        return Checked(value, code)
    if code is None:
        return Checked(value, None, problem=f"unit {text!r} is not a known unit; {analyte.name} is stored in "
                                            f"{analyte.unit}")
    converted_from = None
    if code != analyte.unit:
        factor = analyte.factors.get(code)
        if factor is None:
            return Checked(value, code, problem=f"{analyte.name} (LOINC {loinc}) is stored in {analyte.unit}; "
                                                f"{text} cannot be converted")
        value, converted_from = (value * factor).quantize(Decimal("0.01")), f"{value} {text}"
    low_high = analyte.plausible
    if low_high is not None and not low_high[0] <= value <= low_high[1]:
        return Checked(value, analyte.unit, problem=f"{value} {analyte.unit} is not a possible {analyte.name} "
                                                    f"value ({low_high[0]}–{low_high[1]}): wrong unit?")
    return Checked(value, analyte.unit, converted_from=converted_from)

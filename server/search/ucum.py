"""A small UCUM table: common units to a canonical unit and the factor to get there.

Quantity search compares values across units of one kind (search.html#quantity: "5.4 mg" finds
"0.0054 g"). A full UCUM engine is out of scope; this table covers the units clinical data
mostly uses (mass, length, volume, amount and mass concentration, time, rates, percent).
Factors are exact Decimals so indexed and searched values scale identically. Units missing here
(e.g. ``Cel``, whose conversion is affine, or ``mmol/L`` <-> ``mg/dL``, which needs a molar mass)
are compared only with the unit they were written in.
"""

from __future__ import annotations

from decimal import Decimal

UCUM = "http://unitsofmeasure.org"

_KINDS: dict[str, dict[str, str]] = {
    "g": {"kg": "1000", "g": "1", "mg": "0.001", "ug": "0.000001", "ng": "1e-9", "[lb_av]": "453.59237",
          "[oz_av]": "28.349523125"},
    "m": {"km": "1000", "m": "1", "cm": "0.01", "mm": "0.001", "um": "0.000001", "[in_i]": "0.0254",
          "[ft_i]": "0.3048"},
    "L": {"L": "1", "dL": "0.1", "cL": "0.01", "mL": "0.001", "uL": "0.000001"},
    "mol/L": {"mol/L": "1", "mmol/L": "0.001", "umol/L": "0.000001", "nmol/L": "1e-9", "pmol/L": "1e-12"},
    "g/L": {"g/L": "1", "g/dL": "10", "mg/dL": "0.01", "mg/L": "0.001", "ug/mL": "0.001", "ug/L": "0.000001",
            "ng/mL": "0.000001", "kg/m3": "1"},
    "s": {"ms": "0.001", "s": "1", "min": "60", "h": "3600", "d": "86400", "wk": "604800",
          "mo": "2629800", "a": "31557600"},
    "/s": {"/s": "1", "/min": "0.016666666666666666666666666667", "/h": "0.00027777777777777777777777778"},
    "%": {"%": "1"},
    "m2": {"m2": "1", "cm2": "0.0001"},
    "kg/m2": {"kg/m2": "1", "g/m2": "0.001"},
}

TABLE: dict[str, tuple[Decimal, str]] = {
    unit: (Decimal(factor), canonical) for canonical, units in _KINDS.items() for unit, factor in units.items()
}
"""UCUM code -> (factor, canonical code): value * factor is the value in the canonical unit."""


def canonical(code: str | None) -> tuple[Decimal, str] | None:
    """(factor, canonical code) for a UCUM code this table knows, else None."""
    return TABLE.get(code) if code else None

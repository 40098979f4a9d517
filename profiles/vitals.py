"""The vital-signs profiles a code makes mandatory.

http://hl7.org/fhir/R4/observation-vitalsigns.html: an Observation that reports one of the vital
signs with its LOINC code SHALL conform to that sign's profile (heart rate 8867-4 → ``heartrate``,
with a value in ``/min``, a ``vital-signs`` category, an effective time …), whether or not it
claims it. The HL7 reference validator checks them so; this module says which profiles apply. The
codes are read from the profiles themselves (their ``Observation.code.coding`` slice), so the
table is the one the loaded definitions state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from profiles.definitions import FHIR_BASE

PROFILES = ("vitalspanel", "resprate", "heartrate", "oxygensat", "bodytemp", "bodyheight", "headcircum",
            "bodyweight", "bmi", "bp")
"""The vital-signs profiles of R4 (http://hl7.org/fhir/R4/observation-vitalsigns.html)."""
LOINC = "http://loinc.org"


def _code(definition: dict[str, Any]) -> str | None:
    """The LOINC code a vital-signs profile fixes in its ``Observation.code.coding`` slice."""
    elements = definition.get("differential", {}).get("element", [])
    systems: dict[str, Any] = {}
    codes: dict[str, Any] = {}
    for element in elements if isinstance(elements, list) else ():
        if not isinstance(element, dict) or not isinstance(element.get("id"), str):
            continue
        slice_id, _, leaf = element["id"].rpartition(".")
        if not slice_id.startswith("Observation.code.coding:"):
            continue
        if leaf == "system":
            systems[slice_id] = element.get("fixedUri")
        elif leaf == "code":
            codes[slice_id] = element.get("fixedCode")
    found = [code for slice_id, code in codes.items() if systems.get(slice_id) == LOINC and isinstance(code, str)]
    return found[0] if len(found) == 1 else None


def code_table(lookup: Callable[[str], dict[str, Any] | None]) -> dict[str, str]:
    """LOINC code -> url of the vital-signs profile it requires, from the definitions ``lookup`` finds."""
    table: dict[str, str] = {}
    for name in PROFILES:
        url = FHIR_BASE + name
        definition = lookup(url)
        code = _code(definition) if definition is not None else None
        if code is not None:
            table[code] = url
    return table


def required_profiles(resource: dict[str, Any], table: dict[str, str]) -> list[str]:
    """The vital-signs profiles an Observation must conform to because of the LOINC codes of its ``code``."""
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    out: list[str] = []
    for coding in codings if isinstance(codings, list) else ():
        if isinstance(coding, dict) and coding.get("system") == LOINC and isinstance(coding.get("code"), str):
            url = table.get(coding["code"])
            if url is not None and url not in out:
                out.append(url)
    return out

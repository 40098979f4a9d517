"""Local lab item codes → LOINC, per institution: the mapping table the platform maintains, as ConceptMaps.

Each institution codes its lab items its own way (检验项目代码: ``GLU``, ``0101``); the data sets store that code
under ``http://yidang.org/fhir/sid/lab-item/{机构代码}``. The platform maps them to LOINC with one ConceptMap per
institution, url ``http://yidang.org/fhir/ConceptMap/lab-loinc-{机构代码}``, group source = that system, target
``http://loinc.org``. Loaded through the FHIR API (``PUT ConceptMap?url=…`` or ``yidang terminology load``), the
server's terminology service uses it at once (``$translate``, ``$ingest-local``); ``yidang ingest`` reads the
stored ones before converting. A lab-report record without a LOINC编码 gets the LOINC coding from the map, beside
its local coding, so ``Observation?code=http://loinc.org|…`` finds the results of every institution.

``python -m profiles.datasets.labmap TABLE.csv > maps.json`` turns a CSV table (columns 机构代码, 检验项目代码,
LOINC编码 and optionally 检验项目名称; or ``source, local_code, loinc, display``) into a Bundle of those
ConceptMaps for ``yidang terminology load`` or a transaction.
"""

from __future__ import annotations

import sys
from typing import Any

from profiles.datasets import readers

LOINC = "http://loinc.org"
ITEM_SYSTEM = "http://yidang.org/fhir/sid/lab-item/"
MAP_URL = "http://yidang.org/fhir/ConceptMap/lab-loinc-"
_COLUMNS = {"机构代码": "source", "医疗卫生机构代码": "source", "source": "source", "检验项目代码": "code",
            "local_code": "code", "code": "code", "LOINC编码": "loinc", "LOINC": "loinc", "loinc": "loinc",
            "检验项目名称": "display", "display": "display"}


def conceptmap(source: str, items: list[tuple[str, str, str | None]]) -> dict[str, Any]:
    """The ConceptMap of one institution: ``items`` are (local code, LOINC code, item name)."""
    return {
        "resourceType": "ConceptMap", "id": f"lab-loinc-{source}", "url": MAP_URL + source, "status": "active",
        "name": f"LabLoinc{source}", "title": f"检验项目代码 → LOINC ({source})",
        "sourceUri": ITEM_SYSTEM + source, "targetUri": LOINC,
        "group": [{"source": ITEM_SYSTEM + source, "target": LOINC, "element": [
            {"code": code, **({"display": name} if name else {}),
             "target": [{"code": loinc, "equivalence": "equivalent"}]} for code, loinc, name in items]}],
    }


def from_table(data: bytes) -> list[dict[str, Any]]:
    """One ConceptMap per institution from a CSV table (UTF-8 or GB18030)."""
    headers, rows = readers.read_csv(data)
    names = {h: _COLUMNS[h.strip().lstrip("\ufeff")] for h in headers if h.strip().lstrip("\ufeff") in _COLUMNS}
    if not {"source", "code", "loinc"} <= set(names.values()):
        raise ValueError("a lab map needs the columns 机构代码, 检验项目代码 and LOINC编码")
    by_source: dict[str, list[tuple[str, str, str | None]]] = {}
    for row in rows:
        fields = {names[k]: v.strip() for k, v in row.items() if k in names}
        if fields.get("source") and fields.get("code") and fields.get("loinc"):
            by_source.setdefault(fields["source"], []).append((fields["code"], fields["loinc"],
                                                               fields.get("display") or None))
    return [conceptmap(source, items) for source, items in by_source.items()]


def bundle(maps: list[dict[str, Any]]) -> dict[str, Any]:
    """A transaction that puts each ConceptMap by its url (replacing an earlier version)."""
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": m, "request": {"method": "PUT", "url": f"ConceptMap?url={m['url']}"}} for m in maps]}


if __name__ == "__main__":
    import json
    from pathlib import Path

    print(json.dumps(bundle(from_table(Path(sys.argv[1]).read_bytes())), ensure_ascii=False, indent=1))

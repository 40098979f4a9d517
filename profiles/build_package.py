"""Build ``profiles/data/r4-core.zip`` from the official R4 definition bundles.

Run from the repository root with the official package beside the checkout::

    python -m profiles.build_package ../shared/fhir-r4

The zip holds one JSON member per conformance resource (``StructureDefinition/Patient.json``)
plus ``index.json`` (canonical url -> member, resource/type names, search parameters by base).
Members are read lazily, so start-up never parses the 60 MB of definitions.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import orjson

BUNDLES = (
    "Bundle-types.json",
    "Bundle-resources.json",
    "Bundle-profiles-others.json",
    "Bundle-extensions.json",
    "Bundle-searchParams.json",
)
OUT = Path(__file__).parent / "data" / "r4-core.zip"


def build(source: Path, out: Path = OUT) -> None:
    urls: dict[str, str] = {}
    lists: dict[str, list[str]] = {"resourceTypes": [], "dataTypes": [], "primitiveTypes": [], "searchParameters": []}
    resources: list[dict] = []
    for name in BUNDLES:
        bundle = orjson.loads((source / name).read_bytes())
        resources.extend(entry["resource"] for entry in bundle["entry"])
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        seen: set[str] = set()
        for res in resources:
            member = f"{res['resourceType']}/{res['id']}.json"
            if member in seen:
                continue
            seen.add(member)
            zf.writestr(member, orjson.dumps(res))
            if "url" in res:
                urls[res["url"]] = member
            if res["resourceType"] == "StructureDefinition" and res.get("derivation") == "specialization":
                kind = res["kind"]
                if kind == "resource" and not res.get("abstract"):
                    lists["resourceTypes"].append(res["type"])
                elif kind == "primitive-type":
                    lists["primitiveTypes"].append(res["type"])
                elif kind == "complex-type":
                    lists["dataTypes"].append(res["type"])
            if res["resourceType"] == "SearchParameter":
                lists["searchParameters"].append(member)
        for key in ("resourceTypes", "dataTypes", "primitiveTypes"):
            lists[key] = sorted(set(lists[key]))
        zf.writestr("index.json", orjson.dumps({"urls": urls, **lists}))


if __name__ == "__main__":
    build(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/fhir-r4"))

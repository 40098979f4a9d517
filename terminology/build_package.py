"""Build ``terminology/data/r4-terminology.zip`` from the official R4 terminology bundles.

Run from the repository root with the official package beside the checkout::

    python -m terminology.build_package ../shared/fhir-r4

The zip holds one JSON member per resource (``CodeSystem/v3-ActCode.json``,
``ValueSet/marital-status.json``, ``ConceptMap/cm-name-use-v2.json``), one member per published
expansion (``expansion/<id>.json``: only ``url``, ``version`` and ``expansion``; the ValueSet
itself is already in ``ValueSet/``), and ``index.json``:

- ``CodeSystem`` / ``ValueSet`` / ``ConceptMap``: canonical url -> member (for a CodeSystem the
  url is the code system uri a Coding carries in ``system``);
- ``expansions``: ValueSet url -> expansion member;
- ``maps``: for each ConceptMap its source/target systems and scopes, so ``$translate`` can find
  candidate maps without parsing them all.

CodeSystem supplements (``content = supplement``) are packaged but not indexed as code systems:
their url is not a system a Coding can name.
"""

from __future__ import annotations

import sys
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from terminology.package import KINDS, R4_ZIP, summarize_map

BUNDLES = (
    "Bundle-valuesets.json",
    "Bundle-v2-valuesets.json",
    "Bundle-v3-valuesets.json",
    "Bundle-conceptmaps.json",
)
EXPANSIONS = "Bundle-valueset-expansions.json"


def _entries(source: Path, name: str) -> list[dict[str, Any]]:
    bundle = orjson.loads((source / name).read_bytes())
    return [entry["resource"] for entry in bundle["entry"]]


def build(source: Path, out: Path = R4_ZIP) -> dict[str, int]:
    """Write the zip; returns counts per kind (for the build log and tests)."""
    index: dict[str, Any] = {kind: {} for kind in KINDS}
    index["expansions"] = {}
    index["maps"] = []
    counts = dict.fromkeys((*KINDS, "expansions"), 0)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        seen: set[str] = set()
        for name in BUNDLES:
            for res in _entries(source, name):
                kind = res["resourceType"]
                member = f"{kind}/{res['id']}.json"
                if kind not in KINDS or member in seen or res.get("url") in index[kind]:
                    continue
                seen.add(member)
                zf.writestr(member, orjson.dumps(res))
                counts[kind] += 1
                if kind == "CodeSystem" and res.get("content") == "supplement":
                    continue
                index[kind][res["url"]] = member
                if kind == "ConceptMap":
                    index["maps"].append(asdict(summarize_map(res)))
        for res in _entries(source, EXPANSIONS):
            member = f"expansion/{res['id']}.json"
            slim = {"url": res["url"], "version": res.get("version"), "expansion": res["expansion"]}
            zf.writestr(member, orjson.dumps(slim))
            index["expansions"][res["url"]] = member
            counts["expansions"] += 1
        zf.writestr("index.json", orjson.dumps(index))
    return counts


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/fhir-r4")))

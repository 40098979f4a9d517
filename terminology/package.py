"""The terminology resources the product ships: R4's CodeSystems, ValueSets, published expansions
and ConceptMaps (``data/r4-terminology.zip``), plus the Chinese national tables (``data/cn/**.json``).

Like :mod:`profiles.definitions`, the zip is read lazily: opening the package parses only
``index.json`` and the small Chinese files; a resource is parsed the first time something asks
for it, so importing :mod:`terminology` never touches the 30 MB of R4 bundles.

The Chinese files are plain FHIR JSON meant to be read and corrected by people; files whose
content is not yet checked against the official standard live in ``data/cn/unconfirmed/``.
"""

from __future__ import annotations

import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson

DATA = Path(__file__).parent / "data"
R4_ZIP = DATA / "r4-terminology.zip"
CN_DIR = DATA / "cn"
KINDS = ("CodeSystem", "ValueSet", "ConceptMap")


@dataclass(frozen=True, slots=True)
class MapSummary:
    """What a ConceptMap translates, so ``$translate`` without a map url can pick candidates
    without parsing every map."""

    url: str
    sources: tuple[str, ...]  # group.source code systems
    targets: tuple[str, ...]  # group.target code systems
    source_scope: str | None  # sourceUri / sourceCanonical (a ValueSet)
    target_scope: str | None


def summarize_map(resource: dict[str, Any]) -> MapSummary:
    groups = resource.get("group", [])
    return MapSummary(
        url=resource["url"],
        sources=tuple(sorted({g["source"] for g in groups if "source" in g})),
        targets=tuple(sorted({g["target"] for g in groups if "target" in g})),
        source_scope=resource.get("sourceUri") or resource.get("sourceCanonical"),
        target_scope=resource.get("targetUri") or resource.get("targetCanonical"),
    )


class Package:
    """Read-only access to the shipped terminology resources, by kind and canonical url."""

    def __init__(self, path: Path = R4_ZIP, cn_dir: Path | None = CN_DIR) -> None:
        self._zip = zipfile.ZipFile(path)
        self._lock = threading.Lock()
        index = orjson.loads(self._zip.read("index.json"))
        self._members: dict[str, dict[str, str]] = {kind: index[kind] for kind in KINDS}
        self._expansions: dict[str, str] = index["expansions"]
        self._maps: list[MapSummary] = [MapSummary(**{**m, "sources": tuple(m["sources"]),
                                                      "targets": tuple(m["targets"])}) for m in index["maps"]]
        self._cache: dict[str, dict[str, Any]] = {}
        self._local: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self.local_files: dict[str, Path] = {}
        if cn_dir is not None and cn_dir.is_dir():
            for file in sorted(cn_dir.rglob("*.json")):
                resource = orjson.loads(file.read_bytes())
                self._local[resource["resourceType"]][resource["url"]] = resource
                self.local_files[resource["url"]] = file
                if resource["resourceType"] == "ConceptMap":
                    self._maps.append(summarize_map(resource))

    def _member(self, member: str) -> dict[str, Any]:
        found = self._cache.get(member)
        if found is None:
            with self._lock:
                found = orjson.loads(self._zip.read(member))
            self._cache[member] = found
        return found

    def resource(self, kind: str, url: str) -> dict[str, Any] | None:
        """The packaged CodeSystem/ValueSet/ConceptMap with this canonical url (``|version`` ignored)."""
        url = url.split("|", 1)[0]
        local = self._local[kind].get(url)
        if local is not None:
            return local
        member = self._members[kind].get(url)
        return self._member(member) if member else None

    def expansion(self, url: str) -> dict[str, Any] | None:
        """The expansion published with the R4 specification for this ValueSet url, if any.

        Returned as ``{"url", "version", "expansion"}``; the ValueSet itself is :meth:`resource`.
        """
        member = self._expansions.get(url.split("|", 1)[0])
        return self._member(member) if member else None

    def urls(self, kind: str) -> list[str]:
        """Every canonical url of this kind in the package (R4 first, then the Chinese tables)."""
        return [*self._members[kind], *(u for u in self._local[kind] if u not in self._members[kind])]

    def resources(self, kind: str) -> Iterator[dict[str, Any]]:
        """Every packaged resource of this kind (parses members as it goes)."""
        for url in self.urls(kind):
            found = self.resource(kind, url)
            if found is not None:
                yield found

    def maps(self) -> list[MapSummary]:
        """Summaries of every packaged ConceptMap."""
        return list(self._maps)


@cache
def default_package() -> Package:
    """The process-wide read-only terminology package."""
    return Package()

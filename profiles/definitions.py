"""The official FHIR R4 (4.0.1) conformance resources the product carries.

They live in ``profiles/data/r4-core.zip`` (built by ``profiles.build_package``), one member per
resource, read lazily: start-up parses only the small index; a StructureDefinition is parsed
the first time something asks for it. Resources added at run time (uploaded profiles,
SearchParameters) are layered on top by :meth:`Definitions.add`.
"""

from __future__ import annotations

import threading
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import orjson

CORE_ZIP = Path(__file__).parent / "data" / "r4-core.zip"
FHIR_BASE = "http://hl7.org/fhir/StructureDefinition/"


class Definitions:
    """Canonical resources by url, with the R4 core package underneath."""

    def __init__(self, path: Path = CORE_ZIP) -> None:
        self._zip = zipfile.ZipFile(path)
        self._lock = threading.Lock()
        index = orjson.loads(self._zip.read("index.json"))
        self._urls: dict[str, str] = index["urls"]
        self._sp_members: list[str] = index["searchParameters"]
        self.resource_types: frozenset[str] = frozenset(index["resourceTypes"])
        self.data_types: frozenset[str] = frozenset(index["dataTypes"])
        self.primitive_types: frozenset[str] = frozenset(index["primitiveTypes"])
        self._cache: dict[str, dict[str, Any]] = {}
        self._added: dict[str, dict[str, Any]] = {}

    def _member(self, member: str) -> dict[str, Any]:
        found = self._cache.get(member)
        if found is None:
            with self._lock:
                found = orjson.loads(self._zip.read(member))
            self._cache[member] = found
        return found

    def by_url(self, url: str) -> dict[str, Any] | None:
        """The conformance resource with this canonical url (``|version`` ignored), or None."""
        url = url.split("|", 1)[0]
        if url in self._added:
            return self._added[url]
        member = self._urls.get(url)
        return self._member(member) if member else None

    def structure_definition(self, type_or_url: str) -> dict[str, Any] | None:
        """StructureDefinition of a type name (``Patient``, ``HumanName``, ``string``) or a url."""
        url = type_or_url if "/" in type_or_url else FHIR_BASE + type_or_url
        return self.by_url(url)

    def is_resource_type(self, name: str) -> bool:
        return name in self.resource_types

    def search_parameters(self) -> Iterator[dict[str, Any]]:
        """All core SearchParameter resources (the 1,375 of R4)."""
        for member in self._sp_members:
            yield self._member(member)

    def compartment(self, code: str) -> dict[str, Any]:
        """CompartmentDefinition for ``Patient``, ``Encounter``, ``Practitioner``, ``RelatedPerson``, ``Device``."""
        member = f"CompartmentDefinition/{code[0].lower()}{code[1:]}.json"
        return self._member(member)

    def add(self, resource: dict[str, Any]) -> None:
        """Layer a run-time conformance resource (uploaded profile, ValueSet, ...) over the core."""
        if "url" in resource:
            self._added[resource["url"]] = resource

    def remove(self, url: str) -> None:
        self._added.pop(url, None)


@cache
def core() -> Definitions:
    """The process-wide read-only R4 core definitions."""
    return Definitions()

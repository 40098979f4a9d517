"""Conformance resources by canonical url: the R4 core package plus what is added at run time.

The validator looks everything up here: the StructureDefinitions it validates against (core,
uploaded through the API, loaded from an implementation-guide folder), the ValueSets and
CodeSystems its fallback binding checker reads, and the Questionnaires a QuestionnaireResponse
answers. Canonical references may carry a version (``url|1.0``,
http://hl7.org/fhir/R4/references.html#canonical); one version per url is kept, so the version
is ignored on lookup.

Anything that caches what it derived from these resources (generated snapshots here, compiled
profiles in :mod:`profiles.engine`) compares :attr:`ProfileRegistry.generation`, which every
:meth:`~ProfileRegistry.add` and :meth:`~ProfileRegistry.remove` bumps, so a profile uploaded or
changed through the API is used by the very next validation.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from profiles.definitions import FHIR_BASE, Definitions, core
from profiles.snapshot import SnapshotError, generate_snapshot

CANONICAL_TYPES = frozenset({
    "StructureDefinition", "ValueSet", "CodeSystem", "ConceptMap", "Questionnaire", "NamingSystem",
    "OperationDefinition", "SearchParameter", "CapabilityStatement", "ImplementationGuide",
    "CompartmentDefinition", "StructureMap", "GraphDefinition", "MessageDefinition", "PlanDefinition",
    "ActivityDefinition", "Library", "Measure", "TerminologyCapabilities", "ExampleScenario",
})
"""Resource types that have a canonical ``url`` and can be added to the registry."""


def canonical_url(reference: str) -> str:
    """The url part of a canonical reference (``http://x/vs|1.0`` -> ``http://x/vs``)."""
    return reference.split("|", 1)[0]


class ProfileRegistry:
    """Canonical resources layered over the core definitions, with generated snapshots cached.

    Thread-safe for the server's use: lookups read plain dicts; :meth:`add` and :meth:`remove`
    take a lock and bump :attr:`generation`.
    """

    def __init__(self, definitions: Definitions | None = None) -> None:
        self.definitions = definitions if definitions is not None else core()
        self._added: dict[str, dict[str, Any]] = {}
        self._snapshots: dict[str, list[dict[str, Any]]] = {}
        self._broken: dict[str, str] = {}
        self._warnings: dict[str, list[str]] = {}
        self._lock = threading.RLock()
        self.generation = 0

    # -- lookup ----------------------------------------------------------------------------

    def get(self, url: str) -> dict[str, Any] | None:
        """The canonical resource with this url (added ones shadow core ones), or None."""
        url = canonical_url(url)
        found = self._added.get(url)
        if found is not None:
            return found
        return self.definitions.by_url(url)

    def structure_definition(self, type_or_url: str) -> dict[str, Any] | None:
        """A StructureDefinition by url or by core type name (``Patient``, ``string``)."""
        url = type_or_url if ":" in type_or_url else FHIR_BASE + type_or_url
        found = self.get(url)
        if found is None or found.get("resourceType") != "StructureDefinition":
            return None
        return found

    def added(self, resource_type: str | None = None) -> Iterator[dict[str, Any]]:
        """The run-time resources (of one type, when given)."""
        for resource in list(self._added.values()):
            if resource_type is None or resource.get("resourceType") == resource_type:
                yield resource

    def snapshot(self, type_or_url: str) -> list[dict[str, Any]] | None:
        """The snapshot elements of a StructureDefinition, generated from its differential if needed.

        None when the definition is unknown or its snapshot cannot be generated
        (:meth:`snapshot_problem` says why).
        """
        sd = self.structure_definition(type_or_url)
        if sd is None:
            return None
        url = sd.get("url", type_or_url)
        found = self._snapshots.get(url)
        if found is not None:
            return found
        if url in self._broken:
            return None
        if "snapshot" in sd and sd["snapshot"].get("element"):
            elements: list[dict[str, Any]] = sd["snapshot"]["element"]
        else:
            problems: list[str] = []
            try:
                elements = generate_snapshot(sd, self._base_snapshot, problems=problems)
            except SnapshotError as problem:
                self._broken[url] = str(problem)
                return None
            if problems:
                self._warnings[url] = problems
        self._snapshots[url] = elements
        return elements

    def snapshot_problem(self, url: str) -> str | None:
        """Why the snapshot of ``url`` could not be generated, if it could not."""
        return self._broken.get(canonical_url(url))

    def snapshot_warnings(self, url: str) -> list[str]:
        """Differential elements of ``url`` that matched nothing in its base and were left out."""
        return self._warnings.get(canonical_url(url), [])

    def _base_snapshot(self, url: str) -> list[dict[str, Any]] | None:
        return self.snapshot(canonical_url(url))

    # -- changes ---------------------------------------------------------------------------

    def add(self, resource: dict[str, Any]) -> None:
        """Add (or replace) a canonical resource; a Bundle adds each of its entries' resources."""
        if resource.get("resourceType") == "Bundle":
            for entry in resource.get("entry", ()):
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                    self.add(entry["resource"])
            return
        url = resource.get("url")
        if not isinstance(url, str) or resource.get("resourceType") not in CANONICAL_TYPES:
            return
        with self._lock:
            self._added[canonical_url(url)] = resource
            self._changed()

    def add_all(self, resources: Iterable[dict[str, Any]]) -> None:
        for resource in resources:
            self.add(resource)

    def remove(self, url: str) -> None:
        with self._lock:
            if self._added.pop(canonical_url(url), None) is not None:
                self._changed()

    def _changed(self) -> None:
        """Forget everything derived: a change to one profile can change any profile built on it."""
        self._snapshots = {}
        self._broken = {}
        self._warnings = {}
        self.generation += 1

    def load_ig(self, directory: str | Path) -> list[str]:
        """Add every conformance resource in the JSON (and FHIR XML) files of an IG folder, recursively.

        Files that are not FHIR resources (package.json, .index.json, examples without a url)
        are skipped. Returns the urls added.
        """
        from profiles.xml_format import XmlFormatError

        added: list[str] = []
        for path in sorted(Path(directory).rglob("*")):
            if path.suffix not in (".json", ".xml") or not path.is_file():
                continue
            try:
                resource = read_resource(path, self.definitions)
            except (orjson.JSONDecodeError, UnicodeDecodeError, XmlFormatError):
                continue
            if isinstance(resource, dict) and resource.get("resourceType") in (*CANONICAL_TYPES, "Bundle"):
                before = self.generation
                self.add(resource)
                if self.generation != before and "url" in resource:
                    added.append(resource["url"])
        return added


def read_resource(path: Path, definitions: Definitions | None = None) -> Any:
    """A resource file parsed: JSON (a UTF-8 byte-order mark is tolerated) or FHIR XML by suffix.

    Raises ``orjson.JSONDecodeError``/``UnicodeDecodeError`` or
    :class:`profiles.xml_format.XmlFormatError` for content that is neither.
    """
    from profiles.xml_format import parse_xml

    data = path.read_bytes()
    if path.suffix == ".xml":
        return parse_xml(data, definitions if definitions is not None else core())
    return orjson.loads(data.decode("utf-8-sig"))

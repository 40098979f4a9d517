"""The regional profiles shipped with the server: Chinese regional health-platform StructureDefinitions.

The definitions live in ``profiles/regional/`` as hand-written JSON, one conformance resource per
file (``StructureDefinition-<id>.json``, plus the few ValueSets/CodeSystems they alone need);
``profiles/regional/README.md`` lists them and the facts they rest on. Their canonical base is
:data:`BASE` (``http://yidang.org/fhir/StructureDefinition/<id>``), the same ``http://yidang.org/fhir``
base the national code tables of :mod:`terminology.cn` use for their ValueSets.

Only differentials are checked in. The registry generates each snapshot from the differential
and its base (:func:`profiles.snapshot.generate_snapshot`) the first time a resource is validated
against it and caches it, so loading costs a few file reads at start-up and the snapshot can never
drift from the differential; :func:`with_snapshot` gives a definition with its snapshot filled in
for serving or export.

``profiles/regional/examples/`` holds, for every profile, instances that conform
(``<id>-valid-<n>.json``) and counter-examples that break exactly one rule
(``<id>-invalid-<reason>.json``); ``examples/expectations.json`` names, for each counter-example,
the rule it breaks and the FHIRPath location of the error (:func:`examples`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from profiles.registry import CANONICAL_TYPES, ProfileRegistry

DIRECTORY = Path(__file__).parent / "regional"
EXAMPLES = DIRECTORY / "examples"
BASE = "http://yidang.org/fhir/StructureDefinition/"
"""Canonical base of the regional StructureDefinitions (profiles and extensions)."""


def definitions() -> list[dict[str, Any]]:
    """The regional conformance resources, freshly parsed (callers may keep or change them)."""
    found: list[dict[str, Any]] = []
    for path in sorted(DIRECTORY.glob("*.json")):
        resource = orjson.loads(path.read_bytes())
        if not isinstance(resource, dict) or resource.get("resourceType") not in CANONICAL_TYPES:
            raise ValueError(f"{path} is not a conformance resource")
        found.append(resource)
    return found


def load_regional(registry: ProfileRegistry) -> list[str]:
    """Add every regional conformance resource to ``registry``; returns their canonical urls."""
    resources = definitions()
    registry.add_all(resources)
    return [str(r["url"]) for r in resources]


def regional_registry() -> ProfileRegistry:
    """A new registry with the R4 core definitions and the regional profiles."""
    registry = ProfileRegistry()
    load_regional(registry)
    return registry


def profile_urls() -> list[str]:
    """Canonical urls of the regional StructureDefinitions, profiles and extensions alike."""
    return [str(r["url"]) for r in definitions() if r["resourceType"] == "StructureDefinition"]


def with_snapshot(registry: ProfileRegistry, url: str) -> dict[str, Any]:
    """The StructureDefinition ``url`` with its generated snapshot (``KeyError`` when unknown or not generable)."""
    sd = registry.structure_definition(url)
    elements = registry.snapshot(url) if sd is not None else None
    if sd is None or elements is None:
        raise KeyError(f"{url}: {registry.snapshot_problem(url) or 'unknown StructureDefinition'}")
    return {**copy.deepcopy(sd), "snapshot": {"element": copy.deepcopy(elements)}}


@dataclass(frozen=True, slots=True)
class Example:
    """One example instance and what validating it against its profile must give."""

    name: str
    """File name in ``profiles/regional/examples/``."""
    resource: dict[str, Any]
    profile: str
    """The regional profile it claims (its first ``meta.profile``)."""
    valid: bool
    reason: str = ""
    """For a counter-example: the one rule it breaks, in words."""
    expression: str = ""
    """For a counter-example: the FHIRPath location of the error it must produce."""
    key: str = ""
    """For a counter-example: the invariant key or issue code of that error."""


def examples() -> list[Example]:
    """Every example and counter-example, in file-name order."""
    expected = orjson.loads((EXAMPLES / "expectations.json").read_bytes())
    found: list[Example] = []
    for path in sorted(EXAMPLES.glob("*.json")):
        if path.name == "expectations.json":
            continue
        resource = orjson.loads(path.read_bytes())
        profile = resource["meta"]["profile"][0]
        if "-invalid-" in path.name:
            rule = expected[path.name]
            found.append(Example(path.name, resource, profile, False, rule["reason"], rule["expression"],
                                 rule["key"]))
        else:
            found.append(Example(path.name, resource, profile, True))
    return found

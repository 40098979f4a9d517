"""Reading TestScripts and their fixtures, in FHIR JSON or FHIR XML.

A fixture is either contained in the script (``resource.reference = "#id"``) or a file the
reference names (http://hl7.org/fhir/R4/testscript-definitions.html#TestScript.fixture.resource).
File references are resolved the way the tools that write such scripts lay them out: relative to
the script's folder or any folder above it (Touchstone's ``/FHIR4-0-1-Test/_reference/x.xml``),
and, for a ``Type/id`` reference, the specification's own ``Type-id.json``/``.xml`` naming beside
the script (``Patient/example`` -> ``Patient-example.json``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from profiles.fhirxml import FhirXmlError, from_xml


class ScriptError(ValueError):
    """Raised when a script or one of its fixtures cannot be read."""


@dataclass(frozen=True)
class LoadedScript:
    resource: dict[str, Any]
    source: Path | None
    """Where the script was read from (fixtures are looked up around it); None when built in memory."""
    inline: Mapping[str, Any] = field(default_factory=dict)
    """Fixture content by reference, for scripts built in memory: what cannot be contained in a
    TestScript (a JSON Patch document is an array, not a resource) is given here instead of a file."""

    @property
    def folder(self) -> Path | None:
        return self.source.parent if self.source else None


def read_content(data: bytes, where: str) -> Any:
    """JSON (any value: a JSON Patch fixture is an array) or a FHIR XML resource."""
    stripped = data.lstrip()
    if stripped.startswith(b"<"):
        try:
            return from_xml(data)
        except FhirXmlError as error:
            raise ScriptError(f"{where}: {error}") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise ScriptError(f"{where} is neither JSON nor FHIR XML: {error}") from None


def load_script(path: Path) -> LoadedScript:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ScriptError(f"cannot read {path}: {error.strerror}") from None
    resource = read_content(data, str(path))
    if not isinstance(resource, dict) or resource.get("resourceType") != "TestScript":
        raise ScriptError(f"{path} does not hold a TestScript")
    return LoadedScript(resource, path)


def _candidates(reference: str, folder: Path) -> list[Path]:
    ref = reference.split("#", 1)[0].lstrip("/")
    found: list[Path] = []
    parts = ref.split("/")
    if len(parts) == 2 and "." not in parts[1]:
        found += [folder / f"{parts[0]}-{parts[1]}{ext}" for ext in (".json", ".xml")]
    for base in [folder, *folder.parents][:8]:
        found.append(base / ref)
        found += [base / f"{ref}{ext}" for ext in (".json", ".xml")]
    return found


def fixture_content(script: LoadedScript, fixture: dict[str, Any]) -> Any:
    """The content of one ``TestScript.fixture`` (contained or from a file)."""
    reference = (fixture.get("resource") or {}).get("reference")
    fid = fixture.get("id", "?")
    if not reference:
        raise ScriptError(f"fixture {fid} has no resource.reference")
    if reference in script.inline:
        return script.inline[reference]
    if reference.startswith("#"):
        for contained in script.resource.get("contained", []):
            if contained.get("id") == reference[1:]:
                return contained
        raise ScriptError(f"fixture {fid}: no contained resource {reference}")
    if script.folder is None:
        raise ScriptError(f"fixture {fid}: {reference} cannot be resolved for a script built in memory")
    if reference.startswith(("http://", "https://")):
        raise ScriptError(f"fixture {fid}: remote fixtures ({reference}) are not fetched; keep them beside the script")
    for candidate in _candidates(reference, script.folder):
        if candidate.is_file():
            return read_content(candidate.read_bytes(), str(candidate))
    raise ScriptError(f"fixture {fid}: {reference} not found beside {script.source}")


def load_fixtures(script: LoadedScript) -> dict[str, Any]:
    return {f["id"]: fixture_content(script, f) for f in script.resource.get("fixture", []) if "id" in f}

"""The suites Yidang ships: each is a folder of TestScripts (JSON or FHIR XML) and their fixtures
under this package, described in :data:`DESCRIPTIONS`, or is generated at run time from the
target server (:data:`GENERATED`: the ``capability`` suite reads its CapabilityStatement). A suite
must not depend on Yidang extensions, so testers can point it at any R4 server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DESCRIPTIONS = {
    "base": "The FHIR REST API: CRUD, versioning, conditional interactions, history, batch/transaction, "
            "search parameter types, modifiers and prefixes, includes, paging, _summary/_elements, errors.",
    "regional": "The regional profiles: examples and counter-examples through $validate?profile=, "
                "create/read of conforming resources checked with validateProfileId.",
}
GENERATED = {
    "capability": "Generated from the server's CapabilityStatement: every declared interaction and search "
                  "parameter of every declared type (--types to restrict).",
}


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    folder: Path | None
    """None for a suite generated at run time (:data:`GENERATED`)."""

    @property
    def generated(self) -> bool:
        return self.folder is None

    def scripts(self) -> list[Path]:
        """The TestScript files of the suite, in name order (fixtures live in ``_fixtures/``)."""
        if self.folder is None:
            return []
        return sorted(p for p in self.folder.iterdir() if p.suffix in (".json", ".xml") and p.is_file())


def suites() -> list[Suite]:
    found = [Suite(p.name, DESCRIPTIONS.get(p.name, ""), p)
             for p in sorted(HERE.iterdir()) if p.is_dir() and not p.name.startswith(("_", "."))]
    found += [Suite(name, description, None) for name, description in GENERATED.items()]
    return sorted(found, key=lambda s: s.name)


def suite(name: str) -> Suite:
    for found in suites():
        if found.name == name:
            return found
    known = ", ".join(s.name for s in suites()) or "none"
    raise KeyError(f"no suite named {name!r} (known: {known})")

"""``yidang validate``: validate resource files against the core definitions and profiles, and
report per file in text (for people) or JSON (for tools)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from profiles.bindings import default_binding_checker
from profiles.engine import ProfileEngine
from profiles.issues import ValidationIssue
from profiles.registry import ProfileRegistry, read_resource
from profiles.validator import Validator, default_validator

SUFFIXES = (".json", ".xml")


@dataclass
class FileResult:
    path: str
    resource_type: str | None
    issues: list[ValidationIssue] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for i in self.issues if i.severity in ("error", "fatal"))

    @property
    def warnings(self) -> int:
        return sum(1 for i in self.issues if i.severity == "warning")


def build_validator(ig_dirs: Iterable[Path] = (), registry: ProfileRegistry | None = None) -> Validator:
    registry = registry or ProfileRegistry()
    for directory in ig_dirs:
        registry.load_ig(directory)
    engine = ProfileEngine(registry, terminology=default_binding_checker(registry))
    return default_validator().with_engine(engine)


def files_in(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file()))
        else:
            out.append(path)
    return out


def validate_files(paths: Iterable[Path], *, profiles: Sequence[str] = (), validator: Validator) -> list[FileResult]:
    results = []
    for path in files_in(paths):
        try:
            resource = read_resource(path)
        except Exception as exc:  # unreadable content is reported per file, never raised
            results.append(FileResult(str(path), None, [ValidationIssue("fatal", "structure",
                                                                        f"cannot read: {exc}", "")]))
            continue
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        results.append(FileResult(str(path), rtype, validator.validate(resource, profiles=profiles)))
    return results


def to_json(results: list[FileResult]) -> bytes:
    data: list[dict[str, Any]] = [
        {"file": r.path, "resourceType": r.resource_type, "errors": r.errors, "warnings": r.warnings,
         "issues": [{"severity": i.severity, "code": i.code, "expression": i.expression, "message": i.message}
                    for i in r.issues]}
        for r in results
    ]
    return orjson.dumps(data, option=orjson.OPT_INDENT_2)


def to_text(results: list[FileResult]) -> str:
    lines: list[str] = []
    for r in results:
        verdict = "FAIL" if r.errors else "ok"
        lines.append(f"{verdict:4s} {r.path} ({r.resource_type or '?'}): {r.errors} error(s), {r.warnings} warning(s)")
        for i in r.issues:
            where = f" at {i.expression}" if i.expression else ""
            lines.append(f"     {i.severity:11s} {i.code}{where}: {i.message}")
    failed = sum(1 for r in results if r.errors)
    lines.append(f"{len(results)} file(s), {failed} with errors")
    return "\n".join(lines)

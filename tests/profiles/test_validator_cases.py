"""Agreement with the HL7 Java reference validator on the shared fhir-test-cases share.

``shared/samples/validator-cases/cases.json`` (Apache-2.0, FHIR/fhir-test-cases) lists 132 R4
JSON cases with the error/warning counts the reference validator reports, by module, plus for
some a profile to validate against and its expected counts. Each case here runs the way the
reference harness runs it: the case's supporting StructureDefinitions/ValueSets/Questionnaires
registered in a fresh profile registry and terminology as the server registers what is written
through its API (``server.interactions.conformance.register``), validated by the validator the
server's ``$validate`` uses (``server.app.make_validator``, ``complete=True``: unknown extensions
outside HL7/example domains are errors, as the reference harness allows no extension), so this
harness and the HTTP path cannot drift apart; a JSON document that does not parse counted as one
fatal error. ``tests/http/test_validator_fidelity.py`` runs the same cases through HTTP.

Agreement is measured on valid/invalid (reference error count 0 or not) and, for information, on
the exact error count. The acceptance target (issue 4) is ≥ 95 % valid/invalid agreement on the
modules below over the cases that need no external package; tx / tx-advanced and the other
modules are reported only. Run with ``-s`` to see the table.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from profiles.registry import ProfileRegistry, read_resource
from profiles.xml_format import XmlFormatError
from server.app import make_validator
from server.interactions.conformance import register
from server.settings import Settings
from terminology import Terminology
from tests.paths import SAMPLES

CASES = SAMPLES / "validator-cases"
TARGET_MODULES = frozenset({"profile", "general", "bundle", "references", "extensions", "sd", "invariants", "fmt",
                            "xhtml"})
TARGET = 0.95
SWITCHES = {
    "contained-resource-bad-id-ignore": "runs with validateContains=IGNORE, a switch this validator lacks",
    "json-comments-1-yes": "JSON with comments: a JSON5 parser option",
    "json-comments-2-yes": "JSON with comments: a JSON5 parser option",
}
"""Cases that exercise a reference-validator option rather than a validation rule."""


@dataclass(frozen=True)
class Run:
    name: str
    module: str
    needs_package: bool
    expected_errors: int
    errors: int
    skipped: str | None = None

    @property
    def agrees(self) -> bool:
        return (self.errors > 0) == (self.expected_errors > 0)

    @property
    def target(self) -> bool:
        return self.module in TARGET_MODULES and not self.needs_package and self.skipped is None


def _load(relative: str) -> Any:
    return read_resource(CASES / relative)


def _validate(resource_file: str, supporting: list[str], profile: dict[str, Any] | None) -> int | str:
    """Error count of one case, or why it cannot run here (a supporting file not in the share)."""
    registry = ProfileRegistry()
    terminology = Terminology()
    files = supporting + ([profile["source"], *profile["supporting"]] if profile is not None else [])
    for relative in files:
        if not (CASES / relative).exists():
            return f"supporting file {relative} is not in the shared sample"
        register(registry, terminology, _load(relative))
    try:
        resource = _load(resource_file)
    except (orjson.JSONDecodeError, UnicodeDecodeError, XmlFormatError):
        return 1  # the server answers 400 with one fatal issue for content that does not parse
    validate = make_validator(Settings(), registry, terminology)  # the server's $validate, configuration and all
    urls = [_load(profile["source"])["url"]] if profile is not None else []
    return sum(1 for i in validate(resource, profiles=urls, complete=True) if i.severity in ("error", "fatal"))


def _runs() -> list[Run]:
    manifest = CASES / "cases.json"
    if not manifest.exists():
        return []
    runs: list[Run] = []
    for case in orjson.loads(manifest.read_bytes())["cases"]:
        module = str(case.get("module"))
        needs_package = bool(case.get("packages"))
        variants: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = [
            (case["name"], case["expected_base"], None)]
        if "profile" in case:
            variants.append((case["name"] + " [profile]", case["profile"]["expected"], case["profile"]))
        for name, expected, profile in variants:
            if "error" not in expected or expected.get("inline"):
                continue  # no recorded outcome (inline expectations, missing reference output)
            if case["name"] in SWITCHES:
                runs.append(Run(name, module, needs_package, expected["error"], 0, SWITCHES[case["name"]]))
                continue
            outcome = _validate(case["file"], case["supporting"], profile)
            if isinstance(outcome, str):
                runs.append(Run(name, module, needs_package, expected["error"], 0, outcome))
            else:
                runs.append(Run(name, module, needs_package, expected["error"], outcome))
    return runs


def _table(runs: list[Run]) -> str:
    """Per module: cases run, valid/invalid and exact error-count agreement, all and without packages."""
    by_module: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        if run.skipped is None:
            by_module[run.module].append(run)
    lines = [f"{'module':<19} {'target':<6} {'cases':>5} {'valid/invalid':>13} {'errors exact':>12} "
             f"{'no-package valid/invalid':>24}"]
    for module in sorted(by_module, key=lambda m: (m not in TARGET_MODULES, m)):
        group = by_module[module]
        plain = [r for r in group if not r.needs_package]
        flag = "yes" if module in TARGET_MODULES else ""
        lines.append(f"{module:<19} {flag:<6} {len(group):>5} {sum(r.agrees for r in group):>7}/{len(group):<5} "
                     f"{sum(r.errors == r.expected_errors for r in group):>6}/{len(group):<5} "
                     f"{sum(r.agrees for r in plain):>18}/{len(plain):<5}")
    target = [r for r in runs if r.target]
    if target:
        agree = sum(r.agrees for r in target)
        lines.append(f"target (listed modules, no package): {agree}/{len(target)} = {agree / len(target):.1%} "
                     "valid/invalid agreement")
    lines.extend(f"  disagrees: {r.module}/{r.name}{' (needs a package)' if r.needs_package else ''}: "
                 f"{r.errors} errors, reference {r.expected_errors}"
                 for r in runs if r.skipped is None and not r.agrees)
    lines.extend(f"  not run: {r.module}/{r.name}: {r.skipped}" for r in runs if r.skipped is not None)
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.skipif(not (CASES / "cases.json").exists(), reason="the shared validator test cases are not available")
def test_agreement_with_the_reference_validator() -> None:
    runs = _runs()
    print("\n" + _table(runs))
    target = [r for r in runs if r.target]
    agreement = sum(r.agrees for r in target) / len(target)
    assert len(target) >= 40
    assert agreement >= TARGET, _table([r for r in target if not r.agrees])

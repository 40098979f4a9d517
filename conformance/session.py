"""A conformance run as the CLI does it: collect scripts (suites and paths), run them one after
another against one server, write the reports, summarise. The CLI command stays a few lines."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import httpx
import orjson

from conformance.reports.html import html_report
from conformance.reports.junit import junit_xml
from conformance.reports.testreport import build_test_report
from conformance.runner import LoadedScript, RunOptions, ScriptError, ScriptResult, load_script, run_script
from conformance.suites import suite


def parse_variables(items: Sequence[str]) -> dict[str, str]:
    """``name=value`` pairs of ``--var``."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--var takes NAME=VALUE, not {item!r}")
        out[name.strip()] = value
    return out


def _scripts_in(folder: Path) -> list[LoadedScript]:
    found = []
    for path in sorted(folder.rglob("*")):
        if path.suffix in (".json", ".xml") and path.is_file() and "_fixtures" not in path.parts:
            try:
                found.append(load_script(path))
            except ScriptError:
                continue  # fixtures and other resources beside the scripts
    return found


def collect(paths: Sequence[Path], suites: Sequence[str]) -> list[LoadedScript]:
    """The scripts to run: every TestScript of the named suites, then of the paths given.

    Generated suites (``capability``) have no files: :func:`run_against` builds them from the
    server (a ``KeyError`` still names an unknown suite here)."""
    scripts: list[LoadedScript] = []
    for name in suites:
        scripts += [load_script(p) for p in suite(name).scripts()]
    for path in paths:
        scripts += _scripts_in(path) if path.is_dir() else [load_script(path)]
    return scripts


async def run_all(scripts: Sequence[LoadedScript], client: httpx.AsyncClient,
                  options: RunOptions) -> list[ScriptResult]:
    return [await run_script(script, client, options) for script in scripts]


def write_reports(results: Sequence[ScriptResult], folder: Path, *, server: str) -> list[Path]:
    """TestReport-<n>.json per script, junit.xml and report.html in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, result in enumerate(results, 1):
        path = folder / f"TestReport-{index:03d}.json"
        path.write_bytes(orjson.dumps(build_test_report(result, server=server), option=orjson.OPT_INDENT_2))
        written.append(path)
    (folder / "junit.xml").write_bytes(junit_xml(results))
    (folder / "report.html").write_text(html_report(results, server=server), encoding="utf-8")
    return [*written, folder / "junit.xml", folder / "report.html"]


def summary(results: Sequence[ScriptResult]) -> str:
    lines = []
    for result in results:
        counts = Counter(t.outcome for t in result.tests)
        detail = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        lines.append(f"{result.outcome.upper():7} {result.name}  ({detail or result.error or 'no tests'})")
        for test in result.tests:
            if test.outcome in ("fail", "error"):
                first = next(a for a in test.actions if a.outcome in ("fail", "error"))
                lines.append(f"        {test.name}: {first.message}")
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results)} scripts, {failed} failed")
    return "\n".join(lines)


def generated(suites: Sequence[str]) -> list[str]:
    """The names among ``suites`` that are generated from the server at run time."""
    return [name for name in suites if suite(name).generated]


async def generate_scripts(names: Sequence[str], client: httpx.AsyncClient, base_url: str, *,
                           types: Sequence[str] | None = None) -> list[LoadedScript]:
    """Build the generated suites ``names`` from the server (raises ScriptError if it cannot be read)."""
    from conformance.capability import generate

    scripts: list[LoadedScript] = []
    for name in names:
        if name == "capability":
            scripts += await generate(client, base_url, types=types)
    return scripts


async def run_against(server: str, scripts: Sequence[LoadedScript], *, variables: dict[str, str],
                      timeout: float = 30.0, generate: Sequence[str] = (),
                      types: Sequence[str] | None = None) -> list[ScriptResult]:
    """Run the generated suites ``generate`` (restricted to ``types``), then ``scripts``, against a
    server at a base URL over the network."""
    base = server.rstrip("/")
    async with httpx.AsyncClient(timeout=timeout) as client:
        built = await generate_scripts(generate, client, base, types=types)
        return await run_all([*built, *scripts], client, RunOptions(base_url=base, variables=variables))

"""JUnit XML (the de-facto schema CI systems read: testsuites/testsuite/testcase with failure,
error and skipped children). One testsuite per TestScript, one testcase per test; a setup that
did not pass is a testcase of its own, so the cause is shown where CI shows failures."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from conformance.runner.results import ActionResult, ScriptResult, worst


def _case(suite: ET.Element, classname: str, name: str, actions: list[ActionResult], seconds: float) -> None:
    case = ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{seconds:.3f}")
    outcome = worst([a.outcome for a in actions])
    bad = [a for a in actions if a.outcome == outcome]
    text = "\n".join(f"[{a.outcome}] {a.detail} {a.label}: {a.message}" for a in actions if a.outcome != "pass")
    if outcome == "fail":
        ET.SubElement(case, "failure", message=bad[0].message[:500], type="assertion").text = text
    elif outcome == "error":
        ET.SubElement(case, "error", message=bad[0].message[:500], type="error").text = text
    elif outcome == "skip":
        ET.SubElement(case, "skipped", message=actions[0].message[:500] if actions else "skipped")
    elif outcome == "warning":
        ET.SubElement(case, "system-out").text = text


def junit_xml(results: Sequence[ScriptResult], *, name: str = "yidang conformance") -> bytes:
    root = ET.Element("testsuites", name=name)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for result in results:
        suite = ET.SubElement(root, "testsuite", name=result.name, timestamp=result.started,
                              time=f"{result.elapsed_ms / 1000:.3f}")
        if result.error:
            _case(suite, result.name, "load", [ActionResult("operation", "load", "error", result.error)], 0.0)
        if any(a.outcome in ("fail", "error") for a in result.setup):
            _case(suite, result.name, "setup", result.setup, sum(a.elapsed_ms for a in result.setup) / 1000)
        for test in result.tests:
            _case(suite, result.name, test.name, test.actions, test.elapsed_ms / 1000)
        cases = suite.findall("testcase")
        counts = {"tests": len(cases), "failures": len(suite.findall("testcase/failure")),
                  "errors": len(suite.findall("testcase/error")), "skipped": len(suite.findall("testcase/skipped"))}
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")

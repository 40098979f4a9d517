"""The TestReport resource of one script run (http://hl7.org/fhir/R4/testreport.html).

Every action gets its result code (pass/skip/fail/warning/error) and a markdown ``message``;
for actions that sent a request the message carries the request line, the status and the time,
and ``detail`` links the URL that was called.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from conformance.runner.results import ActionResult, ScriptResult

ENGINE = "urn:yidang:conformance-runner"


def _message(action: ActionResult) -> str:
    lines = [action.message] if action.message else []
    exchange = action.exchange
    if exchange is not None and action.kind == "operation":
        status = exchange.status if exchange.status is not None else exchange.transport_error
        lines = [f"`{exchange.method} {exchange.url}` → {status} ({exchange.elapsed_ms:.0f} ms)"]
        if action.message and action.outcome != "pass":
            lines.append(action.message)
    return "\n\n".join(lines) or action.outcome


def _action(action: ActionResult) -> dict[str, Any]:
    body: dict[str, Any] = {"result": action.outcome, "message": _message(action)}
    if action.kind == "operation" and action.exchange is not None and action.exchange.url.startswith("http"):
        body["detail"] = action.exchange.url
    return {action.kind: body}


def _id(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9\-.]", "-", text).strip("-.")[:64]
    return cleaned or uuid.uuid4().hex


def build_test_report(result: ScriptResult, *, server: str) -> dict[str, Any]:
    """The TestReport of ``result`` run against ``server``."""
    script = result.script
    failed = result.outcome in ("fail", "error")
    report: dict[str, Any] = {
        "resourceType": "TestReport",
        "id": _id(f"{script.get('id') or result.name}-{uuid.uuid4().hex[:8]}"),
        "name": result.name,
        "status": "completed" if not result.error else "entered-in-error",
        "testScript": {"reference": f"TestScript/{script['id']}" if script.get("id") else None,
                       "display": result.name},
        "result": "fail" if failed else "pass",
        "score": result.score,
        "tester": "Yidang conformance runner",
        "issued": result.started or None,
        "participant": [{"type": "test-engine", "uri": ENGINE}, {"type": "server", "uri": server}],
    }
    if not report["testScript"]["reference"]:
        del report["testScript"]["reference"]
    if not report["issued"]:
        del report["issued"]
    if result.error:
        report["setup"] = {"action": [{"operation": {"result": "error", "message": result.error}}]}
    elif result.setup:
        report["setup"] = {"action": [_action(a) for a in result.setup]}
    tests = [{"name": t.name, **({"description": t.description} if t.description else {}),
              "action": [_action(a) for a in t.actions]} for t in result.tests if t.actions]
    if tests:
        report["test"] = tests
    teardown = [_action(a) for a in result.teardown if a.kind == "operation"]
    if teardown:
        report["teardown"] = {"action": teardown}
    return report

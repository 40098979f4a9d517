"""Running one TestScript: setup (with ``autocreate`` fixtures), each test, teardown (then
``autodelete``), per http://hl7.org/fhir/R4/testscript.html#execution.

A failed setup skips every test (they would only report its consequences); inside a test, the
first failed or errored action skips the rest of that test, as a person reading the report
expects (R5 names this ``stopTestOnFail`` and defaults it to true). Teardown always runs.

A precondition is an assert carrying the :data:`SKIP_UNLESS` extension (its ``valueString`` says
why): when it does not hold, the assert and everything after it (in setup: every test) is
*skipped* with that reason instead of failing — a script can then say "this server lacks
``$validate``" rather than report a failure for what it never claimed. Tools that do not know the
extension run it as an ordinary assert.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from conformance.runner import asserts, expressions, paths
from conformance.runner.context import ProfileCheck, RunContext, RunError
from conformance.runner.operations import send
from conformance.runner.placeholders import Placeholders
from conformance.runner.results import ActionResult, ScriptResult, TestResult
from conformance.runner.script import LoadedScript, ScriptError, load_fixtures
from conformance.runner.validation import profile_check


@dataclass(frozen=True)
class RunOptions:
    base_url: str
    variables: Mapping[str, str] = field(default_factory=dict)
    """Values for script variables (``--var name=value``); they win over the script's own."""
    destinations: Mapping[int, str] = field(default_factory=dict)
    """Base URL per ``destination`` index of multi-server scripts (default: ``base_url``)."""
    default_format: str = "json"
    """``accept``/``contentType`` when an operation names none."""
    validator: ProfileCheck | None = profile_check


SKIP_UNLESS = "http://yidang.org/fhir/StructureDefinition/testscript-skip-unless"
"""Extension on ``TestScript…assert``: a precondition; valueString is the reason shown when it fails."""

CHECKS = ("response", "responseCode", "contentType", "headerField", "resource", "expression", "path",
          "compareToSourceId", "minimumId", "navigationLinks", "validateProfileId", "requestMethod", "requestURL")


def _label(action: dict[str, Any], kind: str) -> str:
    spec = action[kind]
    if spec.get("label"):
        return str(spec["label"])
    if spec.get("description"):
        return str(spec["description"])
    if kind == "operation":
        return f"{(spec.get('type') or {}).get('code', 'operation')} {spec.get('resource', '')}".strip()
    checked = next((k for k in CHECKS if k in spec), None)
    if checked is None:
        return "assert"
    words = [f"{checked} {spec[checked]}", spec.get("operator", ""), str(spec.get("value", ""))]
    return "assert " + " ".join(w for w in words if w)


async def _operation(ctx: RunContext, spec: dict[str, Any], label: str, where: str) -> ActionResult:
    started = time.perf_counter()
    try:
        exchange = await send(ctx, spec)
    except (RunError, ScriptError, ValueError) as error:
        return ActionResult("operation", label, "error", str(error), None, (time.perf_counter() - started) * 1000,
                            where)
    if exchange.transport_error:
        return ActionResult("operation", label, "error", exchange.transport_error, exchange,
                            exchange.elapsed_ms, where)
    message = f"{exchange.method} {exchange.url} -> {exchange.status}"
    return ActionResult("operation", label, "pass", message, exchange, exchange.elapsed_ms, where)


def precondition(spec: dict[str, Any]) -> str | None:
    """The reason of a :data:`SKIP_UNLESS` precondition, None for an ordinary assert."""
    found = next((e for e in spec.get("extension", []) if e.get("url") == SKIP_UNLESS), None)
    return None if found is None else str(found.get("valueString") or "a precondition does not hold")


def _assert(ctx: RunContext, spec: dict[str, Any], label: str, where: str) -> ActionResult:
    started = time.perf_counter()
    try:
        asserts.check(ctx, spec)
        outcome, message = asserts.outcome_of(spec, False), "ok"
    except asserts.AssertFailed as failure:
        outcome, message = asserts.outcome_of(spec, True), str(failure)
    except (RunError, expressions.ExpressionError, paths.PathError, ValueError) as error:
        outcome, message = ("warning" if spec.get("warningOnly") else "error"), str(error)
    reason = precondition(spec)
    if reason is not None and outcome in ("fail", "error", "warning"):
        outcome, message = "skip", f"skipped: {reason}"
    return ActionResult("assert", label, outcome, message, ctx.last, (time.perf_counter() - started) * 1000, where)


async def _actions(ctx: RunContext, actions: list[dict[str, Any]], where: str, *, stop_on_fail: bool,
                   skip_reason: str | None = None) -> list[ActionResult]:
    results: list[ActionResult] = []
    for index, action in enumerate(actions):
        kind: Literal["operation", "assert"] | None = (
            "operation" if "operation" in action else "assert" if "assert" in action else None)
        place = f"{where}.action[{index}]"
        if kind is None:
            results.append(ActionResult("assert", "empty action", "error", "an action needs an operation or assert",
                                        detail=place))
            continue
        label = _label(action, kind)
        if skip_reason is not None:
            results.append(ActionResult(kind, label, "skip", skip_reason, detail=f"{place}.{kind}"))
            continue
        if kind == "operation":
            result = await _operation(ctx, action[kind], label, f"{place}.operation")
        else:
            result = _assert(ctx, action[kind], label, f"{place}.assert")
        results.append(result)
        if result.outcome == "skip":
            skip_reason = result.message  # a precondition that does not hold
        elif stop_on_fail and result.outcome in ("fail", "error"):
            skip_reason = f"skipped: {label} did not pass"
    return results


async def _fixture_operation(ctx: RunContext, fixture_id: str, code: str, where: str) -> ActionResult:
    spec: dict[str, Any] = {"type": {"code": code}}
    if code == "create":
        spec["sourceId"] = fixture_id
    else:
        spec["targetId"] = fixture_id
    result = await _operation(ctx, spec, f"{'autocreate' if code == 'create' else 'autodelete'} {fixture_id}", where)
    exchange = result.exchange
    if result.outcome == "pass" and exchange is not None and not (200 <= (exchange.status or 0) < 300):
        result.outcome = "error"
        result.message = f"{result.message}: the server did not accept the fixture"
    return result


async def run_script(script: LoadedScript, client: httpx.AsyncClient, options: RunOptions) -> ScriptResult:
    """Run ``script`` against the server at ``options.base_url`` through ``client``."""
    started = time.perf_counter()
    result = ScriptResult(script.resource, str(script.source or script.resource.get("id", "script")),
                          started=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"))
    try:
        fixtures = load_fixtures(script)
    except ScriptError as error:
        result.error = str(error)
        return result
    ctx = RunContext(client=client, base_url=options.base_url, script=script, fixtures=fixtures,
                     user_variables=dict(options.variables), placeholders=Placeholders(),
                     destinations=dict(options.destinations), default_format=options.default_format,
                     validator=options.validator)
    declared = script.resource.get("fixture", [])
    for fixture in declared:
        if fixture.get("autocreate"):
            result.setup.append(await _fixture_operation(ctx, fixture["id"], "create", f"fixture[{fixture['id']}]"))
    setup_failed = any(a.outcome in ("fail", "error") for a in result.setup)
    setup = (script.resource.get("setup") or {}).get("action", [])
    result.setup += await _actions(ctx, setup, "setup", stop_on_fail=True,
                                   skip_reason="skipped: a fixture could not be created" if setup_failed else None)
    setup_failed = any(a.outcome in ("fail", "error") for a in result.setup)
    unmet = next((a.message for a in result.setup if a.outcome == "skip" and a.kind == "assert"), None)
    for index, test in enumerate(script.resource.get("test", [])):
        test_started = time.perf_counter()
        outcome = TestResult(str(test.get("id") or f"test-{index + 1}"), str(test.get("name") or f"test {index + 1}"),
                             str(test.get("description", "")))
        outcome.actions = await _actions(ctx, test.get("action", []), f"test[{index}]", stop_on_fail=True,
                                         skip_reason=unmet or ("skipped: setup did not pass" if setup_failed else None))
        outcome.elapsed_ms = (time.perf_counter() - test_started) * 1000
        result.tests.append(outcome)
    teardown = (script.resource.get("teardown") or {}).get("action", [])
    result.teardown = await _actions(ctx, teardown, "teardown", stop_on_fail=False)
    for fixture in declared:
        if fixture.get("autodelete") and fixture["id"] in ctx.assigned:
            result.teardown.append(await _fixture_operation(ctx, fixture["id"], "delete", f"fixture[{fixture['id']}]"))
    result.elapsed_ms = (time.perf_counter() - started) * 1000
    return result

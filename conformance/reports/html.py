"""A self-contained HTML report: one file, no scripts or external assets, readable offline and
attachable to a ticket. The verdict and counts come first; each script has a table of its tests
(status, time) and, below it, every action with its message and the request/response it sent and
got in a collapsed ``<details>`` (failed tests start expanded)."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson

from conformance.runner.results import ActionResult, Exchange, Outcome, ScriptResult, worst

BODY_LIMIT = 64 * 1024
LABELS: dict[Outcome, str] = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "warning": "WARN", "skip": "SKIP"}

STYLE = """
:root { --pass:#2e7d32; --fail:#c62828; --error:#6a1b9a; --warning:#ef6c00; --skip:#757575; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans CJK SC", sans-serif; margin: 0;
       color: #1d1d1f; background: #f6f7f9; }
header { padding: 20px 32px; background: #fff; border-bottom: 1px solid #ddd; }
h1 { margin: 0 0 4px; font-size: 22px; }
.meta { color: #555; margin: 0; }
.verdict { display: inline-block; padding: 6px 16px; border-radius: 6px; color: #fff; font-weight: 700;
           font-size: 18px; margin: 12px 0 0; }
.counts { display: flex; gap: 12px; flex-wrap: wrap; margin-top: 14px; }
.count { background: #fafafa; border: 1px solid #e0e0e0; border-left: 6px solid #999; border-radius: 6px;
         padding: 6px 14px; min-width: 110px; }
.count b { display: block; font-size: 20px; }
.count.pass { border-left-color: var(--pass); } .count.fail { border-left-color: var(--fail); }
.count.error { border-left-color: var(--error); } .count.warning { border-left-color: var(--warning); }
.count.skip { border-left-color: var(--skip); }
main { padding: 8px 32px 40px; }
section.script { background: #fff; border: 1px solid #ddd; border-radius: 8px; margin: 18px 0; padding: 8px 18px 14px; }
h2 { font-size: 17px; margin: 10px 0; } h2 small { color: #666; font-weight: 400; font-size: 13px; }
.badge { display: inline-block; min-width: 52px; text-align: center; padding: 1px 8px; border-radius: 4px;
         color: #fff; font-size: 12px; font-weight: 700; margin-right: 6px; }
.pass > .badge, .badge.pass, .verdict.pass { background: var(--pass); }
.fail > .badge, .badge.fail, .verdict.fail { background: var(--fail); }
.badge.error, .verdict.error { background: var(--error); } .badge.warning { background: var(--warning); }
.badge.skip { background: var(--skip); }
table.tests { border-collapse: collapse; width: 100%; margin-bottom: 10px; }
table.tests th, table.tests td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eee; }
table.tests td.time, table.tests th.time { text-align: right; white-space: nowrap; }
details.group { border: 1px solid #e4e4e4; border-radius: 6px; margin: 8px 0; background: #fcfcfc; }
details.group > summary { cursor: pointer; padding: 6px 10px; font-weight: 600; }
ol.actions { margin: 0; padding: 4px 14px 10px 36px; }
ol.actions li { margin: 6px 0; }
.message { color: #333; } .where { color: #888; font-size: 12px; }
details.exchange { margin: 4px 0 0; }
details.exchange > summary { cursor: pointer; color: #0b57d0; font-family: ui-monospace, monospace; font-size: 12.5px; }
.panes { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; margin-top: 6px; }
.pane h4 { margin: 4px 0; font-size: 13px; }
pre { background: #272822; color: #f8f8f2; padding: 8px 10px; border-radius: 5px; overflow: auto; max-height: 420px;
      font-size: 12px; white-space: pre-wrap; word-break: break-all; margin: 0 0 6px; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _body(content: bytes) -> str:
    if not content:
        return "(empty)"
    try:
        text = orjson.dumps(orjson.loads(content), option=orjson.OPT_INDENT_2).decode("utf-8")
    except orjson.JSONDecodeError:
        text = content.decode("utf-8", errors="replace")
    if len(text) > BODY_LIMIT:
        text = text[:BODY_LIMIT] + f"\n… ({len(text) - BODY_LIMIT} more characters not shown)"
    return text


def _headers(headers: dict[str, str]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in headers.items()) or "(none)"


def _exchange(exchange: Exchange) -> str:
    status = exchange.status if exchange.status is not None else exchange.transport_error
    return (
        f'<details class="exchange"><summary>{_e(exchange.method)} {_e(exchange.url)} → {_e(status)} '
        f"({exchange.elapsed_ms:.0f} ms)</summary><div class=\"panes\">"
        f'<div class="pane"><h4>Request</h4><pre>{_e(exchange.method)} {_e(exchange.url)}\n'
        f"{_e(_headers(exchange.request_headers))}</pre><pre>{_e(_body(exchange.request_body))}</pre></div>"
        f'<div class="pane"><h4>Response</h4><pre>{_e(status)}\n{_e(_headers(exchange.response_headers))}</pre>'
        f"<pre>{_e(_body(exchange.response_body))}</pre></div></div></details>"
    )


def _action(action: ActionResult) -> str:
    exchange = _exchange(action.exchange) if action.exchange is not None and action.kind == "operation" else ""
    return (f'<li class="action {action.outcome}"><span class="badge {action.outcome}">{LABELS[action.outcome]}'
            f'</span><b>{_e(action.label)}</b> <span class="where">{_e(action.detail)} · '
            f'{action.elapsed_ms:.0f} ms</span><div class="message">{_e(action.message)}</div>{exchange}</li>')


def _group(title: str, actions: list[ActionResult], elapsed_ms: float) -> str:
    if not actions:
        return ""
    outcome = worst([a.outcome for a in actions])
    opened = " open" if outcome in ("fail", "error") else ""
    return (f'<details class="group {outcome}"{opened}><summary><span class="badge {outcome}">{LABELS[outcome]}'
            f"</span>{_e(title)} <small>({elapsed_ms:.0f} ms)</small></summary>"
            f'<ol class="actions">{"".join(_action(a) for a in actions)}</ol></details>')


def _script(index: int, result: ScriptResult) -> str:
    outcome = result.outcome
    rows = "".join(
        f'<tr class="{t.outcome}"><td>{_e(t.name)}</td><td><span class="badge {t.outcome}">{LABELS[t.outcome]}'
        f'</span></td><td class="time">{t.elapsed_ms:.0f} ms</td></tr>' for t in result.tests)
    table = (f'<table class="tests"><thead><tr><th>Test</th><th>Status</th><th class="time">Time</th></tr></thead>'
             f"<tbody>{rows}</tbody></table>") if rows else ""
    error = f'<p class="message"><b>Could not run:</b> {_e(result.error)}</p>' if result.error else ""
    groups = _group("Setup", result.setup, sum(a.elapsed_ms for a in result.setup))
    groups += "".join(_group(f"Test: {t.name}", t.actions, t.elapsed_ms) for t in result.tests)
    groups += _group("Teardown", result.teardown, sum(a.elapsed_ms for a in result.teardown))
    return (f'<section class="script {outcome}" id="script-{index}"><h2><span class="badge {outcome}">'
            f"{LABELS[outcome]}</span>{_e(result.name)} <small>{_e(result.source)} · {result.elapsed_ms:.0f} ms · "
            f"score {result.score:g}%</small></h2>{error}{table}{groups}</section>")


def html_report(results: Sequence[ScriptResult], *, server: str, title: str = "Conformance report") -> str:
    tests: Counter[str] = Counter(t.outcome for r in results for t in r.tests)
    tests.update("error" for r in results if r.error)
    verdict: Outcome = "fail" if any(not r.passed for r in results) else "pass"
    total_ms = sum(r.elapsed_ms for r in results)
    when = min((r.started for r in results if r.started), default=datetime.now(UTC).isoformat(timespec="seconds"))
    counts = "".join(
        f'<div class="count {key}"><b>{tests[key]}</b>{name}</div>'
        for key, name in (("pass", "passed"), ("fail", "failed"), ("error", "errors"), ("warning", "warnings"),
                          ("skip", "skipped")))
    scripts = "".join(_script(i, r) for i, r in enumerate(results, 1))
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head><body>'
        f"<header><h1>{_e(title)}</h1><p class=\"meta\">Server <b>{_e(server)}</b> · started {_e(when)} · "
        f"{len(results)} scripts, {sum(tests.values())} tests · {total_ms / 1000:.2f} s</p>"
        f'<div class="verdict {verdict}" id="verdict">{"PASSED" if verdict == "pass" else "FAILED"}</div>'
        f'<div class="counts" id="summary">{counts}</div></header><main>{scripts}</main></body></html>'
    )

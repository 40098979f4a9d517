"""The QC report of a run: JSON (counts, issues, per-element rates, per source) and a self-contained HTML page.

Rates per data element: completeness = records with a value / records; validity = values without
a problem / values; duplicate rate (unique elements) = values seen earlier in the run / values.
The HTML has no external assets: the chart of issues by element is inline SVG.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from html import escape
from typing import Any

from profiles.datasets.convert import Outcome, Record
from profiles.datasets.qc import ERROR, Issue
from profiles.datasets.spec import DataSet


def _section(dataset: DataSet, records: list[Record], outcomes: list[Outcome]) -> dict[str, Any]:
    total = len(outcomes)
    issues = [i for o in outcomes for i in o.issues]
    flagged = {(i.record, i.element) for i in issues}
    rates: dict[str, Any] = {}
    for element in dataset.elements:
        present = [r for r in records if (r.fields.get(element.id) or "").strip()]
        valid = [r for r in present if (r.number, element.id) not in flagged]
        values = Counter((r.fields.get(element.id) or "").strip() for r in present)
        repeats = sum(c - 1 for c in values.values()) if element.unique else 0
        rates[element.id] = {
            "name": element.name,
            "completeness": round(len(present) / total, 4) if total else 0.0,
            "validity": round(len(valid) / len(present), 4) if present else None,
            **({"duplicates": round(repeats / len(present), 4) if present else 0.0} if element.unique else {}),
        }
    return {
        "records_total": total,
        "records_accepted": sum(o.accepted for o in outcomes),
        "records_rejected": sum(not o.accepted for o in outcomes),
        "records_stored": sum(o.status == "stored" for o in outcomes),
        "records_failed": sum(o.status == "failed" for o in outcomes),
        "issues": [i.to_json() for i in issues],
        "elements": rates,
    }


def _record(outcome: Outcome) -> dict[str, Any]:
    """One record's fate; the reasons (its errors: QC's, or the server's diagnostics) when it was not stored."""
    out: dict[str, Any] = {"record": outcome.record, "status": outcome.status}
    if outcome.status in ("rejected", "failed"):
        out["reasons"] = [f"{i.element or ''} {i.code}: {i.en}".strip() for i in outcome.issues if i.severity == ERROR]
    return out


def build(dataset: DataSet, records: list[Record], outcomes: list[Outcome], *,
          unknown_columns: Sequence[str] = (), file_issues: Sequence[Issue] = (),
          delivered: bool = False) -> dict[str, Any]:
    """The run report, with one section per source institution under ``sources``. ``delivered``: built after
    the records were sent, so ``records_stored``/``records_failed`` and each record's ``status`` are the store's
    answer (before that, or in a dry run, every accepted record is ``checked`` and nothing is stored)."""
    report = {"dataset": dataset.name, "title": dataset.title, "delivered": delivered,
              **_section(dataset, records, outcomes), "unknown_columns": list(unknown_columns),
              "records": [_record(o) for o in outcomes]}
    report["issues"] = [*(i.to_json() for i in file_issues), *report["issues"]]
    by_number = {r.number: r for r in records}
    sources: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        sources.setdefault(outcome.source or "(none)", []).append(outcome)
    report["sources"] = {code: _section(dataset, [by_number[o.record] for o in group], group)
                         for code, group in sources.items()}
    return report


def _chart(issues: list[dict[str, Any]]) -> str:
    counts = Counter(str(i.get("element") or "(file)") for i in issues).most_common(20)
    if not counts:
        return "<p>无问题 / no issues</p>"
    top = max(c for _, c in counts)
    bar_h, width = 22, 600
    rows = []
    for n, (element, count) in enumerate(counts):
        w = max(2, int(400 * count / top))
        y = n * bar_h
        rows.append(f'<text x="0" y="{y + 15}" font-size="12">{escape(element)}</text>'
                    f'<rect x="170" y="{y + 4}" width="{w}" height="{bar_h - 8}" fill="#c0392b"/>'
                    f'<text x="{175 + w}" y="{y + 15}" font-size="12">{count}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{bar_h * len(counts)}" '
            f'role="img" aria-label="issues by element">{"".join(rows)}</svg>')


def html(report: dict[str, Any]) -> str:
    """The report as one HTML page (inline CSS and SVG, no external assets)."""
    rows = "".join(
        f"<tr><td>{i['record']}</td><td>{escape(str(i['element']))}</td><td class='{i['severity']}'>{i['severity']}"
        f"</td><td>{escape(i['code'])}</td><td>{escape(i['message']['zh'])}<br><small>{escape(i['message']['en'])}"
        f"</small></td></tr>" for i in report["issues"][:5000])
    elements = "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(v['name'])}</td><td>{v['completeness']:.1%}</td>"
        f"<td>{'' if v['validity'] is None else format(v['validity'], '.1%')}</td>"
        f"<td>{format(v['duplicates'], '.1%') if 'duplicates' in v else ''}</td></tr>"
        for k, v in report["elements"].items())
    sources = "".join(f"<tr><td>{escape(code)}</td><td>{s['records_total']}</td><td>{s['records_accepted']}</td>"
                      f"<td>{s['records_rejected']}</td><td>{s['records_stored']}</td><td>{s['records_failed']}</td>"
                      f"<td>{len(s['issues'])}</td></tr>"
                      for code, s in report["sources"].items())
    delivered = (f"存储 stored: {report['records_stored']} · 服务器拒收 failed: {report['records_failed']}"
                 if report.get("delivered") else "未发送 not delivered")
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>质控报告 {escape(report['dataset'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:2px 6px}}.error{{color:#c0392b}}.warning{{color:#b9770e}}</style></head><body>
<h1>数据质控报告 / Data-quality report: {escape(report['title'])} ({escape(report['dataset'])})</h1>
<p>记录总数 records: {report['records_total']} · 接收 accepted: {report['records_accepted']} ·
拒收 rejected: {report['records_rejected']} · {delivered} ·
未知列 unknown columns: {escape(', '.join(report['unknown_columns']))}</p>
<h2>按数据元统计问题 / Issues by element</h2>{_chart(report['issues'])}
<h2>按机构 / By source institution</h2><table><tr><th>机构</th><th>总数</th><th>接收</th><th>拒收</th>
<th>存储</th><th>服务器拒收</th><th>问题</th></tr>
{sources}</table>
<h2>数据元质量 / Element quality</h2><table><tr><th>数据元</th><th>名称</th><th>完整率</th><th>有效率</th>
<th>重复率</th></tr>{elements}</table>
<h2>问题明细 / Issues</h2><table><tr><th>记录</th><th>数据元</th><th>级别</th><th>代码</th>
<th>说明</th></tr>{rows}</table>
</body></html>
"""

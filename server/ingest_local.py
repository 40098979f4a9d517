"""``yidang ingest``: send converted local data sets to a server (HTTP or in-process), with progress.

Each person's transaction Bundle is sent as it is, except for ``merge`` entries (the ``person``
data set's Patient): the stored Patient is read first (``GET Patient?criteria``) and, when it
exists, the entry becomes ``PUT Patient/{id}`` with ``ifMatch`` on the version read and the
identifiers of both merged (:func:`profiles.datasets.run.prepare`). The version check
makes the read-modify-write safe: a concurrent change fails that transaction (412) instead of
being overwritten. Re-sending unchanged data writes nothing new: the server keeps the version
when an update changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from profiles.datasets.run import prepare


@dataclass(slots=True)
class Sent:
    transactions: int = 0
    failed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)


async def _lookup(client: httpx.AsyncClient, type_: str, criteria: str) -> dict[str, Any] | None:
    found = await client.get(f"/{type_}", params=criteria + "&_count=2")
    matches = [e["resource"] for e in found.json().get("entry", [])] if found.status_code == 200 else []
    return matches[0] if len(matches) == 1 else None


async def send(client: httpx.AsyncClient, bundles: list[dict[str, Any]], *,
               advance: Callable[[], None] | None = None) -> Sent:
    """Send every Bundle as one transaction; count what the server did."""
    sent = Sent()
    for bundle in bundles:
        prepared = await prepare(bundle, lambda t, c: _lookup(client, t, c))
        response = await client.post("", json=prepared,
                                     headers={"Content-Type": "application/fhir+json"})
        sent.transactions += 1
        if response.status_code != 200:
            sent.failed += 1
            sent.errors.append(response.text[:500])
        else:
            for item in response.json().get("entry", []):
                status = item.get("response", {}).get("status", "")
                if status.startswith("201"):
                    sent.created += 1
                elif status.startswith("200"):
                    sent.updated += 1
        if advance:
            advance()
    return sent


async def run_ingest(path: Any, *, dataset: str, source: str | None, server: str | None, data_dir: Any,
                     report_dir: Any, dry_run: bool) -> tuple[dict[str, Any], Sent]:
    """Convert ``path``, write the QC report (JSON + HTML) to ``report_dir``, send unless ``dry_run``."""
    import orjson
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from profiles.datasets import readers, report, spec
    from profiles.datasets.run import run
    from server.load_runner import target

    data = path.read_bytes()
    result = run(spec.load(dataset), data, kind=readers.sniff(data, path.name), source=source)
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / f"{path.stem}.qc.json").write_bytes(orjson.dumps(result.report, option=orjson.OPT_INDENT_2))
        (report_dir / f"{path.stem}.qc.html").write_text(report.html(result.report), encoding="utf-8")
    sent = Sent()
    if not dry_run:
        bundles = result.conversion.bundles
        async with target(server, data_dir, None) as client:
            with Progress(TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("persons"),
                          TimeElapsedColumn(), console=Console(stderr=True)) as progress:
                task = progress.add_task("ingest", total=len(bundles))
                sent = await send(client, bundles, advance=lambda: progress.advance(task))
    return result.report, sent

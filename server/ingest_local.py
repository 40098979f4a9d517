"""``yidang ingest``: send converted local data sets to a server (HTTP or in-process), with progress.

Persons go several to a transaction (:mod:`profiles.datasets.delivery`). For the ``merge`` entries
(the ``person`` data set's Patient) the stored Patients of a batch are found first, with one
``POST Patient/_search`` for the whole batch when every key is an identifier; a found Patient's
entry becomes ``PUT Patient/{id}`` with ``ifMatch`` on the version read and the identifiers of both
merged (:func:`profiles.datasets.run.prepare`). The version check makes the read-modify-write
safe: a concurrent change fails that transaction (412) instead of being overwritten, and the
persons of a failed batch are retried one by one. Re-sending unchanged data writes nothing new:
the server keeps the version when an update changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

import httpx

from profiles.datasets.delivery import DEFAULT_BATCH_ENTRIES, Delivery, deliver, diagnostics
from terminology.service import Terminology


async def _find(client: httpx.AsyncClient, type_: str, criteria: list[str]) -> dict[str, dict[str, Any] | None]:
    """Each criteria's one stored match: a single OR search when every criteria is one ``identifier``,
    checked against the identifiers of what came back; otherwise (or when anything is ambiguous) one
    search per criteria."""
    found: dict[str, dict[str, Any] | None] = {}
    tokens = [unquote(c.split("=", 1)[1]) for c in criteria if c.startswith("identifier=") and "&" not in c]
    if len(tokens) == len(criteria) and len(criteria) > 1:
        values = ",".join(t.replace("\\", "\\\\").replace(",", "\\,") for t in tokens)  # search escaping
        response = await client.post(f"/{type_}/_search", data={"identifier": values,
                                                                 "_count": str(len(criteria) + 1)})
        if response.status_code == 200:
            body = response.json()
            resources = [e["resource"] for e in body.get("entry", []) if e.get("search", {}).get("mode") != "outcome"]
            paged = "next" in {link.get("relation") for link in body.get("link", [])}
            if len(resources) <= len(criteria) and not paged:
                owners: dict[str, list[dict[str, Any]]] = {t: [] for t in tokens}
                for resource in resources:
                    mine = [t for t in tokens if t in {f"{i.get('system', '')}|{i.get('value', '')}"
                                                       for i in resource.get("identifier", [])}]
                    if not mine:  # matched by a rule this check does not know: ask one by one
                        owners = {}
                        break
                    for token in mine:
                        owners[token].append(resource)
                if owners:
                    for c, token in zip(criteria, tokens, strict=True):
                        found[c] = owners[token][0] if len(owners[token]) == 1 else None
                    return found
    for c in criteria:
        response = await client.get(f"/{type_}", params=c + "&_count=2")
        matches = [e["resource"] for e in response.json().get("entry", [])] if response.status_code == 200 else []
        found[c] = matches[0] if len(matches) == 1 else None
    return found


async def send(client: httpx.AsyncClient, bundles: Iterable[dict[str, Any]], *,
               advance: Callable[[int], None] | None = None, batch_entries: int = DEFAULT_BATCH_ENTRIES) -> Delivery:
    """Send every person's Bundle, several persons per transaction (:func:`deliver`)."""

    async def submit(bundle: dict[str, Any]) -> list[str] | str:
        response = await client.post("", json=bundle, headers={"Content-Type": "application/fhir+json"})
        if response.status_code != 200:  # the server's OperationOutcome, for the report
            try:
                return f"HTTP {response.status_code} " + diagnostics(response.json())
            except ValueError:
                return f"HTTP {response.status_code} {response.text[:500]}"
        return [item.get("response", {}).get("status", "") for item in response.json().get("entry", [])]

    async def search(type_: str, criteria: str) -> list[dict[str, Any]]:
        response = await client.get(f"/{type_}", params=criteria + "&_count=5")
        return [e["resource"] for e in response.json().get("entry", [])
                if e.get("search", {}).get("mode") != "outcome"] if response.status_code == 200 else []

    return await deliver(bundles, find=lambda t, c: _find(client, t, c), submit=submit, search=search,
                         batch_entries=batch_entries, advance=advance)


async def lab_maps(client: httpx.AsyncClient) -> Terminology:
    """The regional terminology with the stored per-institution lab ConceptMaps (labmap.py) added, as the
    server's own terminology service has them."""
    from profiles.datasets import labmap
    from profiles.datasets.convert import regional_terminology

    terminology = regional_terminology()
    url: str | None = "/ConceptMap?_count=500"
    while url:
        response = await client.get(url)
        if response.status_code != 200:
            break
        page = response.json()
        for entry in page.get("entry", []):
            resource = entry.get("resource") or {}
            if str(resource.get("url", "")).startswith(labmap.MAP_URL):
                terminology.add(resource)
        url = next((link["url"] for link in page.get("link", []) if link.get("relation") == "next"), None)
    return terminology


async def run_ingest(path: Any, *, dataset: str, source: str | None, server: str | None, data_dir: Any,
                     report_dir: Any, dry_run: bool,
                     batch_entries: int = DEFAULT_BATCH_ENTRIES) -> tuple[dict[str, Any], Delivery]:
    """Convert ``path``, send unless ``dry_run``, and write the QC report (JSON + HTML) to ``report_dir`` after
    delivery: per record stored, rejected by QC or refused by the server (with its diagnostics), and what the store
    showed (a stored person with the same ID number and another name)."""
    import orjson
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from profiles.datasets import readers, report, spec
    from profiles.datasets.run import finish, run
    from server.load_runner import target

    data = path.read_bytes()
    dataset_spec = spec.load(dataset)
    sent = Delivery()
    if dry_run:
        result = run(dataset_spec, data, kind=readers.sniff(data, path.name), source=source)
    else:
        async with target(server, data_dir, None) as client:
            terminology = await lab_maps(client)  # the platform's local lab code → LOINC maps, as stored
            result = run(dataset_spec, data, kind=readers.sniff(data, path.name), source=source,
                         terminology=terminology)
            with Progress(TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("persons"),
                          TimeElapsedColumn(), console=Console(stderr=True)) as progress:
                task = progress.add_task("ingest", total=result.conversion.persons)
                sent = await send(client, result.conversion.iter_bundles(), batch_entries=batch_entries,
                                  advance=lambda n: progress.advance(task, n))
        finish(result, sent.failures, sent.conflicts)  # the report says what the store did, per record
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / f"{path.stem}.qc.json").write_bytes(orjson.dumps(result.report, option=orjson.OPT_INDENT_2))
        (report_dir / f"{path.stem}.qc.html").write_text(report.html(result.report), encoding="utf-8")
    return result.report, sent

"""``yidang export-local``: stored FHIR data written back as a local data set (数据回流), CSV with element ids.

Fetches the data set's resource types from the server (HTTP or in-process, paging through
``next`` links; ``--since`` filters the row resources by ``_lastUpdated``), turns them into rows with
:func:`profiles.datasets.export.rows` and keeps the rows of one source institution when asked.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx

from profiles.datasets import export, spec


async def _all(client: httpx.AsyncClient, type_: str, params: dict[str, str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    response = await client.get(f"/{type_}", params={**params, "_count": "500"})
    while True:
        response.raise_for_status()
        page = response.json()
        found.extend(e["resource"] for e in page.get("entry", []) if e.get("search", {}).get("mode") != "include")
        following = next((link["url"] for link in page.get("link", []) if link.get("relation") == "next"), None)
        if following is None:
            return found
        response = await client.get(following)


async def fetch_rows(client: httpx.AsyncClient, dataset_name: str, *, source: str | None = None,
                     since: str | None = None) -> list[dict[str, str]]:
    """The data set's rows from the server, for one source institution and changed since a date if given."""
    dataset = spec.load(dataset_name)
    row_type = dataset.resources[dataset.row or ""].type if dataset.row else None
    resources: list[dict[str, Any]] = []
    for type_ in dict.fromkeys(r.type for r in dataset.resources.values()):
        params = {"_lastUpdated": f"ge{since}"} if since and type_ == row_type else {}
        resources.extend(await _all(client, type_, params))
    rows = export.rows(dataset, resources, source)  # institution-specific values of the asking institution
    return [r for r in rows if source is None or r.get("YD.SOURCE") == source]


def to_csv(dataset_name: str, rows: list[dict[str, str]]) -> bytes:
    """UTF-8 CSV (with BOM, so spreadsheet programs read the Chinese text) headed by data-element ids."""
    dataset = spec.load(dataset_name)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[e.id for e in dataset.elements], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


async def run_export(dataset: str, out: Path, *, source: str | None, since: str | None, server: str | None,
                     data_dir: Path | None) -> int:
    from server.load_runner import target

    async with target(server, data_dir, None, create=False) as client:
        rows = await fetch_rows(client, dataset, source=source, since=since)
    out.write_bytes(to_csv(dataset, rows))
    return len(rows)

"""``yidang load``: resources, Bundles and NDJSON files into a server, with a summary.

Files are turned into requests (pure :func:`requests_for`), then sent through any httpx client:
a remote server (``--server URL``) or the app in-process on a store (``--data-dir``,
``--mongodb-uri``). Resources with an id are PUT (so loading twice is idempotent), others POSTed;
transaction and batch Bundles are posted as they are; collections and NDJSON lines are grouped
into batch Bundles of PUT/POST entries.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

BATCH_SIZE = 500
SUFFIXES = (".json", ".json.gz", ".ndjson", ".ndjson.gz")


@dataclass(frozen=True)
class Request:
    source: str
    method: str
    url: str
    body: dict[str, Any]


@dataclass
class Summary:
    created: int = 0
    updated: int = 0
    failed: int = 0
    files: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)
    """Files found in a directory that are JSON but not FHIR (e.g. ``index.json``): noted, not failed."""

    def add(self, status: int, reason: str | None = None) -> None:
        if status == 201:
            self.created += 1
        elif status < 300:
            self.updated += 1
        else:
            self.failed += 1
            self.reasons[reason or f"HTTP {status}"] += 1


def files_in(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES)))
        else:
            out.append(path)
    return out


class NotFhir(ValueError):
    """A JSON file without ``resourceType`` (an index or manifest beside the data, not a resource)."""


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    type_ = resource.get("resourceType", "")
    if resource.get("id"):
        return {"resource": resource, "request": {"method": "PUT", "url": f"{type_}/{resource['id']}"}}
    return {"resource": resource, "request": {"method": "POST", "url": type_}}


def _batches(resources: list[dict[str, Any]], source: str) -> Iterator[Request]:
    for start in range(0, len(resources), BATCH_SIZE):
        chunk = resources[start:start + BATCH_SIZE]
        yield Request(source, "POST", "", {"resourceType": "Bundle", "type": "batch",
                                           "entry": [_entry(r) for r in chunk]})


def requests_for(path: Path) -> Iterator[Request]:
    """The requests that load one file (raises ValueError on unreadable content)."""
    source = str(path)
    data = _read(path)
    if ".ndjson" in path.name:
        lines = [orjson.loads(line) for line in data.splitlines() if line.strip()]
        yield from _batches(lines, source)
        return
    resource = orjson.loads(data)
    if not isinstance(resource, dict) or "resourceType" not in resource:
        raise NotFhir("not a FHIR resource (no resourceType)")
    if resource["resourceType"] == "Bundle" and resource.get("type") in ("transaction", "batch"):
        yield Request(source, "POST", "", resource)
    elif resource["resourceType"] == "Bundle" and resource.get("type") == "collection":
        yield from _batches([e["resource"] for e in resource.get("entry", []) if "resource" in e], source)
    else:
        entry = _entry(resource)
        yield Request(source, entry["request"]["method"], entry["request"]["url"], resource)


def _reason(body: Any) -> str:
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome" and body.get("issue"):
        return str(body["issue"][0].get("diagnostics", "error"))[:200]
    return "error"


async def send(client: httpx.AsyncClient, request: Request, summary: Summary) -> int:
    """Send one request and count its outcome; returns the number of resources it covered."""
    response = await client.request(request.method, "/" + request.url if request.url else "/",
                                    content=orjson.dumps(request.body),
                                    headers={"Content-Type": "application/fhir+json"})
    body = response.json() if response.content else None
    if request.url == "" and response.status_code == 200 and isinstance(body, dict):
        entries = body.get("entry", [])
        for entry in entries:
            resp = entry.get("response", {})
            status = int(str(resp.get("status", "500")).split()[0])
            summary.add(status, _reason(resp.get("outcome")))
        return len(entries)
    if request.url == "":
        count = len(request.body.get("entry", []))
        for _ in range(count):
            summary.add(response.status_code, _reason(body))
        return count
    summary.add(response.status_code, _reason(body))
    return 1

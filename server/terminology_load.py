"""``yidang terminology load``: store a CodeSystem/ValueSet/ConceptMap (or a CSV code table turned
into a CodeSystem + ValueSet) in a server, replacing an earlier version with the same url."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import typer

from server.load_runner import target
from terminology.csv_import import read_csv

KINDS = ("CodeSystem", "ValueSet", "ConceptMap")


def resources_from(file: Path, *, url: str | None, name: str | None, valueset_url: str | None) -> list[dict[str, Any]]:
    if file.suffix.lower() == ".csv":
        if not url or not name:
            raise typer.BadParameter("a CSV code table needs --url and --name")
        if url.startswith("urn:") and not valueset_url:
            raise typer.BadParameter(f"a urn: code system ({url}) needs --valueset-url, the url of its all-codes "
                                     "ValueSet (e.g. http://yidang.org/fhir/ValueSet/NAME)")
        return list(read_csv(file, url=url, name=name, valueset_url=valueset_url))
    resource = orjson.loads(file.read_bytes())
    if resource.get("resourceType") == "Bundle":
        found = [e["resource"] for e in resource.get("entry", []) if e.get("resource", {}).get("resourceType") in KINDS]
    else:
        found = [resource]
    for r in found:
        if r.get("resourceType") not in KINDS or not r.get("url"):
            raise typer.BadParameter(f"{file}: expected CodeSystem, ValueSet or ConceptMap resources with a url")
    return found


async def load_terminology(file: Path, *, url: str | None, name: str | None, valueset_url: str | None,
                           server: str | None, data_dir: Path | None, mongodb_uri: str | None) -> int:
    resources = resources_from(file, url=url, name=name, valueset_url=valueset_url)
    failed = 0
    async with target(server, data_dir, mongodb_uri) as client:
        for resource in resources:
            kind = resource["resourceType"]
            r = await client.put(f"/{kind}?url={quote(resource['url'], safe='')}", content=orjson.dumps(resource),
                                 headers={"Content-Type": "application/fhir+json"})
            verdict = {200: "updated", 201: "created"}.get(r.status_code, f"failed ({r.status_code})")
            typer.echo(f"{kind} {resource['url']}: {verdict}")
            if r.status_code not in (200, 201):
                failed += 1
                typer.echo(r.text[:500], err=True)
    return 1 if failed else 0

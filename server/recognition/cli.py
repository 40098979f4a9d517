"""``yidang recognition import --catalog F | --qualifications F``: the recognition catalogue and the
institutions' qualifications from CSV, through ``$recognition-import`` (the same summary, the same
idempotence), on a running server (``--server``) or the local store in-process.

Exit status: 0 when every row was imported, 1 when some rows were rejected (each named with its
line and reason on stderr), 2 when the file or the request was refused as a whole.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

recognition_app = typer.Typer(help="Mutual recognition (互认): import the catalogue and qualifications.",
                              no_args_is_help=True)

Server = Annotated[str | None, typer.Option(help="A running server's FHIR base URL (else the local store)")]
DataDir = Annotated[Path | None, typer.Option(help="Directory of the embedded store [YIDANG_DATA_DIR]")]
MongoUri = Annotated[str | None, typer.Option(help="MongoDB at this URI [YIDANG_MONGODB_URI]")]
Token = Annotated[str | None, typer.Option(help="Bearer token (role platform) for a secured --server",
                                           envvar="YIDANG_TOKEN")]


async def _send(files: list[tuple[str, Path]], server: str | None, data_dir: Path | None, mongodb_uri: str | None,
                token: str | None) -> list[tuple[int, Any]]:
    from server.load_runner import target

    out: list[tuple[int, Any]] = []
    headers = {"Content-Type": "text/csv", **({"Authorization": f"Bearer {token}"} if token else {})}
    async with target(server, data_dir, mongodb_uri) as client:
        for kind, path in files:
            response = await client.post("/$recognition-import", params={"kind": kind}, content=path.read_bytes(),
                                         headers=headers)
            out.append((response.status_code, response.json()))
    return out


def _summary(body: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[int, str]]]:
    counts = {p["name"]: p.get("valueInteger", p.get("valueCode")) for p in body.get("parameter", [])
              if "part" not in p}
    rejected = [(next(x["valueInteger"] for x in p["part"] if x["name"] == "row"),
                 next(x["valueString"] for x in p["part"] if x["name"] == "reason"))
                for p in body.get("parameter", []) if p.get("name") == "rejection"]
    return counts, rejected


@recognition_app.command("import")
def import_files(
    catalog: Annotated[Path | None, typer.Option(help="CSV: item_system,item_code,item_name,category,"
                                                      "validity_days,scope", exists=True, dir_okay=False)] = None,
    qualifications: Annotated[Path | None, typer.Option(help="CSV: institution,item_system,item_code,valid_from,"
                                                             "valid_to", exists=True, dir_okay=False)] = None,
    server: Server = None, data_dir: DataDir = None, mongodb_uri: MongoUri = None, token: Token = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summaries as JSON")] = False,
) -> None:
    """Import the catalogue and/or the qualifications (the catalogue first: qualifications name its items)."""
    files = [(k, p) for k, p in (("catalog", catalog), ("qualifications", qualifications)) if p is not None]
    if not files:
        raise typer.BadParameter("give --catalog FILE and/or --qualifications FILE")
    try:
        results = asyncio.run(_send(files, server, data_dir, mongodb_uri, token))
    except (OSError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    status = 0
    for (kind, path), (code, body) in zip(files, results, strict=True):
        if code != 200:
            issues = "; ".join(i.get("diagnostics", "") for i in body.get("issue", []))
            typer.echo(f"error: {path}: {issues or code}", err=True)
            status = 2
            continue
        counts, rejected = _summary(body)
        if json_output:
            typer.echo(json.dumps({"kind": kind, "file": str(path), **counts,
                                   "rejections": [{"row": r, "reason": t} for r, t in rejected]}, ensure_ascii=False))
        else:
            typer.echo(f"{kind}: {path}: read {counts['read']}, created {counts['created']}, updated "
                       f"{counts['updated']}, unchanged {counts['unchanged']}, rejected {counts['rejected']}")
        for row, reason in rejected:
            typer.echo(f"  {path}:{row}: {reason}", err=True)
        if rejected and status == 0:
            status = 1
    raise typer.Exit(status)

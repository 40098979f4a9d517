"""``yidang audit verify|prune|export``: the chain checked, the retention job, the SIEM feed."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

audit_app = typer.Typer(help="Audit log: verify the hash chain, prune by retention, export for a SIEM.",
                        no_args_is_help=True)

DataDir = Annotated[Path | None, typer.Option(help="Directory of the embedded store [YIDANG_DATA_DIR]")]
MongoUri = Annotated[str | None, typer.Option(help="MongoDB at this URI [YIDANG_MONGODB_URI]")]
AuditDir = Annotated[Path | None, typer.Option(
    help="Directory of the audit key (and spool) [YIDANG_AUDIT_SPOOL_DIR; default <data-dir>/audit]")]


def _settings(data_dir: Path | None, mongodb_uri: str | None, audit_dir: Path | None) -> Any:
    from server.settings import Settings, resolve_store

    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if mongodb_uri is not None:
        overrides["mongodb_uri"] = mongodb_uri
    if audit_dir is not None:
        overrides["audit_spool_dir"] = audit_dir
    return resolve_store(Settings(**overrides))


async def _open(settings: Any) -> Any:
    if settings.store == "mongo":
        from server.stores.mongo import MongoStore

        store: Any = MongoStore(settings.mongodb_uri, database=settings.mongodb_database)
    else:
        from server.stores.sqlite import SqliteStore

        if not (Path(settings.data_dir) / "yidang.db").exists():
            raise ValueError(f"no embedded store in {settings.data_dir}")
        store = SqliteStore(settings.data_dir)
    await store.open()
    return store


def parse_when(value: str) -> int:
    """A date (``2026-01-31``, midnight UTC) or an instant (``2026-01-31T08:00:00+08:00``) in µs."""
    from server.fhir.instant import from_datetime

    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return from_datetime(datetime(day.year, day.month, day.day, tzinfo=UTC))
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"not a date or instant: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return from_datetime(moment)


@audit_app.command("verify")
def verify_command(data_dir: DataDir = None, mongodb_uri: MongoUri = None, audit_dir: AuditDir = None) -> None:
    """Walk the chain in sequence order and name the first broken link (exit 1 then)."""
    from server.audit import ledger
    from server.audit.keys import load_key
    from server.audit.log import spool_dir

    settings = _settings(data_dir, mongodb_uri, audit_dir)
    key = load_key(spool_dir(settings), create=False)

    async def run() -> ledger.Report:
        store = await _open(settings)
        try:
            return await ledger.verify(store, key)
        finally:
            await store.close()

    report = asyncio.run(run())
    rate = report.count / report.seconds if report.seconds else 0.0
    for note in report.notes:
        typer.echo(note)
    if key is None:
        typer.echo("no audit key found: signatures of checkpoints and anchors were not checked")
    typer.echo(f"{report.count} event(s) checked in {report.seconds:.2f} s ({rate:,.0f} events/s)")
    if not report.ok:
        typer.echo(f"BROKEN: {report.broken}", err=True)
        raise typer.Exit(1)
    head = f" up to sequence {report.head.sequence} ({report.head.hash[:16]}…)" if report.head else ""
    typer.echo(f"chain intact{head}")


@audit_app.command("prune")
def prune_command(
    before: Annotated[str, typer.Option(help="Remove events stored before this date or instant (UTC if no zone)")],
    data_dir: DataDir = None, mongodb_uri: MongoUri = None, audit_dir: AuditDir = None,
) -> None:
    """The retention job: remove old events, anchor the chain where it now starts (signed), audit it."""
    from server.audit.keys import load_key
    from server.audit.log import spool_dir
    from server.audit.retention import prune
    from server.search.index import Indexer
    from server.search.registry import SearchRegistry

    settings = _settings(data_dir, mongodb_uri, audit_dir)
    when = parse_when(before)
    key = load_key(spool_dir(settings))
    assert key is not None

    async def run() -> dict[str, Any]:
        store = await _open(settings)
        try:
            return await prune(store, Indexer(SearchRegistry(), base_url=settings.base_url), key, when,
                               base=settings.base_url)
        finally:
            await store.close()

    typer.echo(asyncio.run(run())["description"])


@audit_app.command("export")
def export_command(
    since: Annotated[str | None, typer.Option(help="Only events stored since this date or instant")] = None,
    format: Annotated[str, typer.Option("--format", help="ndjson or syslog (RFC 5424 lines)")] = "ndjson",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout")] = None,
    data_dir: DataDir = None, mongodb_uri: MongoUri = None,
) -> None:
    """Stored AuditEvents, oldest first, for a SIEM."""
    from server.audit.retention import export

    if format not in ("ndjson", "syslog"):
        raise typer.BadParameter("--format must be ndjson or syslog")
    settings = _settings(data_dir, mongodb_uri, None)
    start = parse_when(since) if since else None

    async def run() -> int:
        store = await _open(settings)
        out = output.open("w", encoding="utf-8") if output else sys.stdout
        count = 0
        try:
            async for line in export(store, since=start, fmt=format):
                out.write(line + "\n")
                count += 1
        finally:
            if output:
                out.close()
            await store.close()
        return count

    count = asyncio.run(run())
    if output:
        typer.echo(f"{count} event(s) written to {output}")

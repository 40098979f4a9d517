"""The ``yidang`` command line (typer): ``serve``, ``load``, ``mongo setup`` and ``conformance run|list|validate``."""

from __future__ import annotations

import logging
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from server.audit.cli import audit_app
from server.auth.cli import clients_app, keys_app, users_app
from server.bulk.cli import mount as mount_bulk
from server.recognition.cli import recognition_app
from server.settings import Settings, resolve_store

HTTP_PROTOCOL = "server.http.protocol:UpgradeSafeHttpToolsProtocol"
"""uvicorn's httptools protocol, except that a request offering ``Upgrade: h2c`` (Java's HttpClient,
``curl --http2``) is handed to h11 instead of losing its body (see :mod:`server.http.protocol`)."""

REJECTIONS_SHOWN = 20
"""``yidang ingest`` lists this many rejected records on the console (the QC report has them all)."""


def one_line(error: BaseException) -> str:
    """An error as one line for people: the message, with the file for OS errors."""
    if isinstance(error, OSError) and error.filename is not None:
        text = f"{error.strerror or error}: {error.filename}"
    else:
        text = str(getattr(error, "message", None) or error) or type(error).__name__
        if not hasattr(error, "message") and not isinstance(error, ValueError):  # not one of ours: name it
            text = f"{type(error).__name__}: {text}"
    return " ".join(text.split())


class FriendlyGroup(TyperGroup):
    """Every command's failure is one ``error: …`` line on stderr and exit status 1, never a traceback
    (``YIDANG_DEBUG=1`` shows it); typer/click usage errors keep their own form and status 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            typer.echo("error: interrupted", err=True)
            raise typer.Exit(130) from None
        except Exception as error:
            if os.environ.get("YIDANG_DEBUG"):
                raise
            typer.echo(f"error: {one_line(error)}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(help="Yidang (一档): FHIR R4 server for regional health-information platforms.",
                  no_args_is_help=True, add_completion=False, cls=FriendlyGroup)


class AuthMode(StrEnum):
    """``serve --auth``: SMART on FHIR authorization, or open on purpose."""

    smart = "smart"
    off = "off"


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="YIDANG_HOST", help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="YIDANG_PORT", help="TCP port")] = 8080,
    data_dir: Annotated[Path | None, typer.Option(help="Directory of the embedded store [YIDANG_DATA_DIR]")] = None,
    mongodb_uri: Annotated[str | None, typer.Option(help="Use MongoDB at this URI [YIDANG_MONGODB_URI]")] = None,
    base_url: Annotated[str | None, typer.Option(help="Public base URL [YIDANG_BASE_URL]")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (embedded store: all share the directory)")] = 1,
    log_level: Annotated[str, typer.Option(help="Log level")] = "info",
    auth: Annotated[AuthMode | None, typer.Option(
        envvar="YIDANG_AUTH", case_sensitive=False, show_default=False,
        help="smart: every FHIR request needs a bearer token; off: open on purpose. Unset: open on loopback "
             "only (any other --host is refused)")] = None,
    ssl_certfile: Annotated[Path | None, typer.Option(
        envvar="YIDANG_SSL_CERTFILE", exists=True, dir_okay=False, help="Serve HTTPS with this PEM certificate "
        "(chain)")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(
        envvar="YIDANG_SSL_KEYFILE", exists=True, dir_okay=False, help="The PEM private key of --ssl-certfile")] = None,
) -> None:
    """Run the FHIR server (embedded store by default, MongoDB with --mongodb-uri)."""
    import uvicorn

    from server.http.modes import decide

    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise typer.BadParameter("give both --ssl-certfile and --ssl-keyfile", param_hint="--ssl-certfile")
    given: dict[str, Any] = {"data_dir": data_dir, "mongodb_uri": mongodb_uri, "base_url": base_url,
                           "auth": auth.value if auth else None}
    overrides = {k: v for k, v in given.items() if v is not None}
    settings = resolve_store(Settings(**overrides))
    scheme = "https" if ssl_certfile else "http"
    shown = f"[{host}]" if ":" in host else host
    url = settings.base_url.rstrip("/") or f"{scheme}://{shown}:{port}"
    mode = decide(host, settings.auth, url=url)
    if mode.refusal:
        typer.echo(f"error: {mode.refusal}", err=True)
        raise typer.Exit(2)
    for key, value in overrides.items():  # worker processes read the environment
        os.environ[f"YIDANG_{key.upper()}"] = str(value)
    where = settings.data_dir.resolve() if settings.store == "sqlite" else settings.mongodb_uri
    typer.echo(f"Yidang FHIR R4 server on {scheme}://{shown}:{port}/  store: {settings.store} ({where})")
    if mode.warning:
        typer.echo(mode.warning, err=True)
    if mode.note:
        typer.echo(mode.note)
    logging.basicConfig(level=log_level.upper(), format="%(message)s")
    tls: dict[str, Any] = {"ssl_certfile": str(ssl_certfile), "ssl_keyfile": str(ssl_keyfile)} if ssl_certfile else {}
    uvicorn.run("server.asgi:app", host=host, port=port, workers=workers, log_level=log_level,
                access_log=False, lifespan="on", http=HTTP_PROTOCOL, **tls)


@app.command()
def load(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories (.json, .json.gz, .ndjson[.gz])")],
    server: Annotated[str | None, typer.Option(help="Load into a running server at this base URL")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Load straight into the embedded store here")] = None,
    mongodb_uri: Annotated[str | None, typer.Option(help="Load straight into MongoDB at this URI")] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight")] = 4,
) -> None:
    """Load resources, Bundles (transaction/batch/collection) and NDJSON, with a progress bar."""
    import asyncio

    from server.load_runner import run_load

    summary = asyncio.run(run_load(paths, server=server, data_dir=data_dir, mongodb_uri=mongodb_uri,
                                   concurrency=concurrency))
    raise typer.Exit(1 if summary.failed else 0)


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="Local data-set file: CSV (UTF-8/GB18030), JSON array or XML")],
    dataset: Annotated[str, typer.Option(help="Data set: person, encounter, diagnosis, lab-report, exam-report, "
                                             "vital-signs, hypertension-followup, diabetes-followup")],
    source: Annotated[str | None, typer.Option(help="Source institution code (when no column gives it)")] = None,
    server: Annotated[str | None, typer.Option(help="Send to a running server at this base URL")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Write straight into the embedded store here")] = None,
    report: Annotated[Path | None, typer.Option(help="Directory for the QC report (JSON + HTML)")] = None,
    dry_run: Annotated[bool, typer.Option(help="Check and convert only; store nothing")] = False,
    batch: Annotated[int, typer.Option(min=1, help="Entries per transaction (several persons each; a failed "
                                       "batch is retried person by person)")] = 400,
) -> None:
    """Convert a local data set to FHIR with quality control and store it (each person atomically)."""
    import asyncio

    from profiles.datasets import spec
    from server.ingest_local import run_ingest

    if dataset not in spec.names():
        raise typer.BadParameter(f"unknown data set {dataset!r}; known: {', '.join(spec.names())}",
                                 param_hint="--dataset")
    qc, sent = asyncio.run(run_ingest(file, dataset=dataset, source=source, server=server, data_dir=data_dir,
                                      report_dir=report, dry_run=dry_run, batch_entries=batch))
    typer.echo(f"records {qc['records_total']}: accepted {qc['records_accepted']}, rejected "
               f"{qc['records_rejected']}, stored {qc.get('records_stored', 0)}, failed {qc.get('records_failed', 0)}; "
               f"persons {sent.persons} in {sent.transactions} transactions "
               f"(persons failed {sent.failed})")
    lines = rejections(qc)
    if lines:
        more = f" (the first {REJECTIONS_SHOWN}; --report DIR has them all)" if len(lines) > REJECTIONS_SHOWN else ""
        typer.echo(f"rejected records{more}:")
        for line in lines[:REJECTIONS_SHOWN]:
            typer.echo(f"  {line}")
    for error in sent.errors[:10]:
        typer.echo(f"failed: {error}", err=True)
    raise typer.Exit(1 if sent.failed else 0)


def rejections(qc: dict[str, Any]) -> list[str]:
    """One line per record with errors (the records rejected, and problems with the file itself as
    record 0): its number and each error's data element, code and English message."""
    by_record: dict[int, list[str]] = {}
    for issue in qc.get("issues", []):
        if issue.get("severity") not in ("error", "fatal"):
            continue
        message = issue.get("message") or {}
        text = message.get("en") or message.get("zh") or "" if isinstance(message, dict) else str(message)
        where = f"{issue['element']} " if issue.get("element") else ""
        by_record.setdefault(int(issue.get("record") or 0), []).append(f"{where}{issue.get('code')}: {text}")
    return [f"{'file' if number == 0 else f'record {number}'}: {'; '.join(found)}"
            for number, found in sorted(by_record.items())]


@app.command("export-local")
def export_local(
    dataset: Annotated[str, typer.Option(help="Data set: person, encounter, diagnosis, lab-report")],
    out: Annotated[Path, typer.Option(help="CSV file to write (UTF-8, data-element ids as headers)")],
    source: Annotated[str | None, typer.Option(help="Only records of this source institution code")] = None,
    since: Annotated[str | None, typer.Option(help="Only records changed since this date (YYYY-MM-DD)")] = None,
    server: Annotated[str | None, typer.Option(help="Read from a running server at this base URL")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Read straight from the embedded store here")] = None,
) -> None:
    """Write stored FHIR data back as a local data set (数据回流)."""
    import asyncio

    from profiles.datasets import spec
    from server.export_local import run_export

    if dataset not in spec.names() or spec.load(dataset).row is None:
        raise typer.BadParameter(f"data set {dataset!r} cannot be exported", param_hint="--dataset")
    count = asyncio.run(run_export(dataset, out, source=source, since=since, server=server, data_dir=data_dir))
    typer.echo(f"{count} records written to {out}")


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Resource files or folders (JSON or FHIR XML)")],
    profile: Annotated[list[str] | None, typer.Option(help="Profile url every resource must conform to")] = None,
    ig: Annotated[list[Path] | None, typer.Option(help="Folder of an implementation guide's resources")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable report")] = False,
) -> None:
    """Validate resources against the R4 core definitions and profiles; exit 1 when any has errors."""
    from profiles.regional import regional_registry
    from profiles.report import build_validator, to_json, to_text, validate_files

    # the regional profiles ship with the server, so they are known here too; --ig adds more
    validator = build_validator(ig or [], registry=regional_registry())
    results = validate_files(files, profiles=profile or [], validator=validator)
    if json_output:
        typer.echo(to_json(results).decode())
    else:
        typer.echo(to_text(results))
    raise typer.Exit(1 if any(r.errors for r in results) else 0)


terminology_app = typer.Typer(help="Terminology: load code systems, value sets and concept maps.")
app.add_typer(terminology_app, name="terminology")


@terminology_app.command("load")
def terminology_load(
    file: Annotated[Path, typer.Argument(help="A CodeSystem/ValueSet/ConceptMap JSON, or a CSV code table")],
    url: Annotated[str | None, typer.Option(help="CSV: code system url (e.g. urn:oid:…)")] = None,
    name: Annotated[str | None, typer.Option(help="CSV: code system name")] = None,
    valueset_url: Annotated[str | None, typer.Option(help="CSV: url of the all-codes ValueSet")] = None,
    server: Annotated[str | None, typer.Option(help="Load into a running server at this base URL")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Load straight into the embedded store here")] = None,
    mongodb_uri: Annotated[str | None, typer.Option(help="Load straight into MongoDB at this URI")] = None,
) -> None:
    """Store terminology so the server's terminology service and validator use it."""
    import asyncio

    from server.terminology_load import load_terminology

    code = asyncio.run(load_terminology(file, url=url, name=name, valueset_url=valueset_url, server=server,
                                        data_dir=data_dir, mongodb_uri=mongodb_uri))
    raise typer.Exit(code)


app.add_typer(clients_app, name="clients")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")

mongo_app = typer.Typer(help="MongoDB deployment: collections, indexes, sharding.", no_args_is_help=True)
app.add_typer(mongo_app, name="mongo")


@mongo_app.command("setup")
def mongo_setup(
    mongodb_uri: Annotated[str | None, typer.Option(envvar="YIDANG_MONGODB_URI",
                                                    help="MongoDB (a mongos with --sharded)")] = None,
    sharded: Annotated[bool, typer.Option(help="Shard resources and history by resident (through a mongos)")] = False,
    zones: Annotated[Path | None, typer.Option(help="JSON zone -> {shards, districts}: residents by district "
                                                   "(GB/T 2260 code) on their own shards; needs --sharded")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the commands only; connect to nothing")] = False,
) -> None:
    """Create the collections, indexes, sharding and zones (idempotent), printing each command."""
    import asyncio

    from pymongo import AsyncMongoClient
    from pymongo.errors import PyMongoError

    from server.stores.mongo import setup
    from server.stores.mongo.schema import DEFAULT_DATABASE
    from server.stores.mongo.sharding import ZoneError, parse_zones

    if zones is not None and not sharded:
        raise typer.BadParameter("zones need --sharded", param_hint="--zones")
    try:
        found = parse_zones(zones.read_text(encoding="utf-8")) if zones is not None else []
    except (OSError, ZoneError) as error:
        raise typer.BadParameter(str(error), param_hint="--zones") from None
    if not dry_run and not mongodb_uri:
        raise typer.BadParameter("give --mongodb-uri (or YIDANG_MONGODB_URI), or --dry-run", param_hint="--mongodb-uri")

    async def apply(uri: str) -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, appname="yidang-setup")
        try:
            db = client.get_default_database(DEFAULT_DATABASE)
            await setup.run(db, setup.plan(db.name, sharded=sharded, zones=found), typer.echo)
        finally:
            await client.close()

    if dry_run:
        database = DEFAULT_DATABASE
        if mongodb_uri:
            from pymongo.uri_parser import parse_uri

            database = parse_uri(mongodb_uri).get("database") or DEFAULT_DATABASE
        for step in setup.plan(database, sharded=sharded, zones=found):
            typer.echo(step.show())
        return
    assert mongodb_uri is not None
    try:
        asyncio.run(apply(mongodb_uri))
    except PyMongoError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


conformance = typer.Typer(help="Run TestScript conformance suites against a FHIR server.", no_args_is_help=True)
app.add_typer(conformance, name="conformance")


@conformance.command("run")
def conformance_run(
    server: Annotated[str, typer.Option(help="Base URL of the FHIR server under test")],
    paths: Annotated[list[Path] | None, typer.Argument(help="TestScript files or folders (JSON or FHIR XML)")] = None,
    suite: Annotated[list[str] | None, typer.Option(help="A shipped suite (`conformance list`); repeatable")] = None,
    report_dir: Annotated[Path | None, typer.Option(help="Write TestReports, junit.xml, report.html here")] = None,
    var: Annotated[list[str] | None, typer.Option(help="Script variable NAME=VALUE; repeatable")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each response")] = 30.0,
    types: Annotated[str | None, typer.Option(help="capability suite: only these types (Patient,Observation)")] = None,
) -> None:
    """Run TestScripts against --server; exit status 1 if any script fails."""
    import asyncio

    from conformance import session
    from conformance.runner import ScriptError

    try:
        variables = session.parse_variables(var or [])
        scripts = session.collect(paths or [], suite or [])
        generate = session.generated(suite or [])
    except (ValueError, KeyError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if not scripts and not generate:
        typer.echo("error: no TestScripts to run (give --suite NAME or paths)", err=True)
        raise typer.Exit(2)
    only = [t.strip() for t in types.split(",") if t.strip()] if types else None
    if only is not None and "capability" not in generate:
        typer.echo("error: --types applies to the capability suite (add --suite capability)", err=True)
        raise typer.Exit(2)
    try:
        results = asyncio.run(session.run_against(server, scripts, variables=variables, timeout=timeout,
                                                  generate=generate, types=only))
    except ScriptError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(session.summary(results))
    if report_dir is not None:
        written = session.write_reports(results, report_dir, server=server)
        typer.echo(f"reports: {report_dir} ({len(written)} files; open report.html)")
    raise typer.Exit(0 if all(r.passed for r in results) else 1)


@conformance.command("validate")
def conformance_validate(
    server: Annotated[str, typer.Option(help="Base URL of the FHIR server whose data is checked")],
    profile: Annotated[list[str], typer.Option(help="Profile canonical URL; repeatable")],
    type_: Annotated[str | None, typer.Option("--type", help="Resource type to fetch (default: the profile's)")] = None,
    count: Annotated[int, typer.Option(help="Resources to fetch per type (follows next links)", min=1)] = 100,
    ig: Annotated[list[Path] | None, typer.Option(help="Folder of an implementation guide's resources")] = None,
    top: Annotated[int, typer.Option(help="Issues to list per profile", min=0)] = 10,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable report")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each response")] = 30.0,
) -> None:
    """Fetch resources from --server and report how many conform to each --profile; exit 1 if any does not."""
    import asyncio

    from conformance import profile_conformance as pc

    try:
        reports = asyncio.run(pc.run(server, profile, type_=type_, count=count, ig_dirs=ig or [], timeout=timeout))
    except pc.ConformanceError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if json_output:
        typer.echo(pc.to_json(reports, server=server, top=top).decode())
    else:
        typer.echo(pc.to_text(reports, server=server, top=top))
    raise typer.Exit(0 if all(r.conforming == len(r.checked) for r in reports) else 1)


@conformance.command("list")
def conformance_list() -> None:
    """Show the suites Yidang ships."""
    from conformance.suites import suites

    for found in suites():
        count = "generated" if found.generated else f"{len(found.scripts()):4} scripts"
        typer.echo(f"{found.name:12} {count:>12}  {found.description}")


app.add_typer(audit_app, name="audit")
app.add_typer(recognition_app, name="recognition")
mount_bulk(app)  # yidang export / import (issue 16 §4)


def main() -> None:
    app()

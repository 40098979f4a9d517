"""``yidang export`` and ``yidang import`` (issue 16 §4): Bulk Data against a server or straight into a store.

Against a server (``--server URL``) the commands are a Bulk Data client (IG 2.0): ``export`` kicks off
``$export`` with ``Prefer: respond-async``, polls the status URL honouring ``Retry-After``, streams
each output file to ``--out`` and DELETEs the status URL at the end (or on Ctrl-C, which cancels the
job); ``import`` uploads each NDJSON file to ``$import``, polls, and reads the error file. A token is
``--token``, or fetched with ``--client-id``/``--key`` (SMART Backend Services, :func:`fetch_token`)
and fetched again when it expires.

Straight into a store (``--data-dir`` / ``--mongodb-uri``) the app is made in-process as the other
commands do (:func:`server.load_runner.target`) and the same code runs: the ``$export`` kick-off and
status through the app (so the same checks and messages), the job on the same runner, its files
moved (not copied) into ``--out``; ``import`` upserts every line through the write path the
``$import`` job uses (:func:`server.bulk.jobs.imports.upsert`: validated, ids kept).

Output files are named ``Type.ndjson``, ``Type-2.ndjson`` … (``.gz`` with ``--gzip``). Both commands
end with a summary per type (resources, files, bytes, rate); ``import`` lists failed lines by file
and line number and exits 1 if any failed.
"""

from __future__ import annotations

import asyncio
import gzip as gz
import io
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from server.interactions.services import Services

LOCAL_BASE = "http://yidang.local"
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
NDJSON = "application/fhir+ndjson"
WORK_DIR = ".yidang-export"
"""In-process export: the job's directory inside ``--out`` (same file system: its files are renamed)."""
ERRORS_SHOWN = 20
LOCAL_POLL_S = 0.2
MAX_RETRY_AFTER_S = 30.0
PROGRESS_NUMBER = re.compile(r"\d+")
ERROR_LINE = re.compile(r"line (\d+): (.*)$", re.S)
EXPORT_SCOPE = "system/*.rs"
IMPORT_SCOPE = "system/*.cruds"


class BulkError(ValueError):
    """A refusal or failure to tell the user in one line (the CLI prints ``error: …``, exit 1)."""


# --- summaries ---------------------------------------------------------------------------------


@dataclass
class TypeStats:
    resources: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    """Time spent on this type, when measured (0: not measured separately)."""


@dataclass
class Outcome:
    """What a command did: per type, failed lines (import), elapsed seconds."""

    types: dict[str, TypeStats] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def of(self, type_: str) -> TypeStats:
        return self.types.setdefault(type_, TypeStats())

    @property
    def resources(self) -> int:
        return sum(s.resources for s in self.types.values())

    @property
    def rate(self) -> float:
        return self.resources / self.elapsed if self.elapsed > 0 else 0.0


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def summary_table(title: str, outcome: Outcome) -> Table:
    table = Table(title=title)
    table.add_column("type")
    for column in ("resources", "files", "bytes", "rate/s"):
        table.add_column(column, justify="right")
    for name in sorted(outcome.types):
        s = outcome.types[name]
        rate = f"{s.resources / s.seconds:,.0f}" if s.seconds > 0 else "—"
        table.add_row(name, f"{s.resources:,}", str(s.files), human_bytes(s.bytes), rate)
    table.add_row("[bold]total", f"[bold]{outcome.resources:,}", str(sum(s.files for s in outcome.types.values())),
                  human_bytes(sum(s.bytes for s in outcome.types.values())), f"[bold]{outcome.rate:,.0f}")
    table.caption = f"{outcome.elapsed:.1f} s"
    return table


def report(console: Console, title: str, outcome: Outcome) -> None:
    console.print(summary_table(title, outcome))
    if outcome.errors:
        more = f" (the first {ERRORS_SHOWN})" if len(outcome.errors) > ERRORS_SHOWN else ""
        console.print(f"[red]{len(outcome.errors)} line(s) failed{more}:[/red]")
        for line in outcome.errors[:ERRORS_SHOWN]:
            console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


# --- where the commands talk -------------------------------------------------------------------


@dataclass
class Credentials:
    """A bearer token, given or fetched with a client assertion (and fetched again on a 401)."""

    server: str
    token: str | None = None
    client_id: str | None = None
    key: Path | None = None
    scope: str = EXPORT_SCOPE

    async def fetch(self) -> None:
        if self.client_id is None or self.key is None:
            return
        from server.auth.client_side import fetch_token

        body = await asyncio.to_thread(fetch_token, self.server, self.client_id, self.key, self.scope)
        self.token = str(body["access_token"])

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


@dataclass
class Endpoint:
    """An HTTP client on a server or on the app in-process (then ``svc`` is its Services)."""

    client: httpx.AsyncClient
    credentials: Credentials | None = None
    svc: Services | None = None

    @property
    def local(self) -> bool:
        return self.svc is not None

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**(self.credentials.headers() if self.credentials else {}), **(extra or {})}

    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                      **kw: Any) -> httpx.Response:
        response = await self.client.request(method, url, headers=self.headers(headers), **kw)
        if response.status_code == 401 and self.credentials is not None and self.credentials.client_id:
            await self.credentials.fetch()  # the token expired during a long job
            response = await self.client.request(method, url, headers=self.headers(headers), **kw)
        return response


@dataclass(frozen=True)
class Target:
    server: str | None = None
    token: str | None = None
    client_id: str | None = None
    key: Path | None = None
    scope: str | None = None
    data_dir: Path | None = None
    mongodb_uri: str | None = None


def check_target(target: Target) -> None:
    """Usage errors (exit 2): one place to send to, credentials only with a server, both halves of a key."""
    if target.server and (target.data_dir or target.mongodb_uri):
        raise typer.BadParameter("give --server or a store (--data-dir / --mongodb-uri), not both",
                                 param_hint="--server")
    if not target.server and (target.token or target.client_id or target.key):
        raise typer.BadParameter("a token or client is for a --server", param_hint="--token/--client-id")
    if (target.client_id is None) != (target.key is None):
        raise typer.BadParameter("give both --client-id and --key", param_hint="--client-id")
    if target.token and target.client_id:
        raise typer.BadParameter("give --token or --client-id/--key, not both", param_hint="--token")


@asynccontextmanager
async def endpoint(target: Target, console: Console, *, scope: str, create: bool,
                   bulk_dir: Path | None = None, gzip: bool = False) -> AsyncIterator[Endpoint]:
    """A server, or the app in-process over the store (its jobs stopped and the store closed at the end)."""
    if target.server:
        base = target.server.rstrip("/")
        credentials = Credentials(base, target.token, target.client_id, target.key, target.scope or scope)
        await credentials.fetch()
        async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(300, connect=30)) as client:
            yield Endpoint(client, credentials)
        return
    from server.app import create_app, make_store
    from server.interactions import search_parameters
    from server.interactions.conformance import load_stored
    from server.load_runner import describe_store
    from server.settings import Settings, resolve_store

    given: dict[str, Any] = {"log_requests": False, "data_dir": target.data_dir, "mongodb_uri": target.mongodb_uri,
                             "bulk_dir": bulk_dir, "bulk_gzip": gzip}
    settings = resolve_store(Settings(**{k: v for k, v in given.items() if v is not None}))
    console.print(describe_store(settings, create=create), markup=False, highlight=False, soft_wrap=True)
    store = make_store(settings)
    await store.open()
    try:
        app = create_app(settings, store=store)
        svc: Services = app.state.services
        await load_stored(svc)  # what the lifespan does before jobs start: stored profiles, search parameters
        await search_parameters.load(svc)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=LOCAL_BASE,
                                         timeout=None) as client:
                yield Endpoint(client, svc=svc)
        finally:
            if svc.jobs is not None:
                await svc.jobs.stop()
    finally:
        await store.close()


def message(response: httpx.Response) -> str:
    """The OperationOutcome's text (or the body's start) of a refusal, on one line."""
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text[:300].split()) or response.reason_phrase
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        texts = [i.get("diagnostics") or i.get("details", {}).get("text") or i.get("code", "")
                 for i in body.get("issue", []) if isinstance(i, dict)]
        return "; ".join(t for t in texts if t) or "refused"
    if isinstance(body, dict) and "error" in body:
        return f"{body.get('error')}: {body.get('error_description', '')}".strip(": ")
    return " ".join(response.text[:300].split())


def retry_after(response: httpx.Response) -> float:
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(response.headers.get("retry-after", "1"))))
    except ValueError:  # an HTTP date: poll again soon
        return 1.0


async def poll(ep: Endpoint, status_url: str, on_progress: Any) -> dict[str, Any]:
    """Until the manifest (200); 202 answers report ``X-Progress`` (its first number) to ``on_progress``."""
    while True:
        response = await ep.request("GET", status_url, headers={"Accept": "application/fhir+json"})
        if response.status_code == 200:
            manifest: dict[str, Any] = response.json()
            return manifest
        if response.status_code != 202:
            raise BulkError(f"the bulk job failed (HTTP {response.status_code}): {message(response)}")
        found = PROGRESS_NUMBER.search(response.headers.get("x-progress", ""))
        if found:
            on_progress(int(found.group()))
        await asyncio.sleep(min(LOCAL_POLL_S, retry_after(response)) if ep.local else retry_after(response))


async def forget(ep: Endpoint, status_url: str) -> None:
    """DELETE the status URL (the job's files go; a running job is cancelled); failures are ignored."""
    with suppress(httpx.HTTPError):
        await ep.request("DELETE", status_url)


@asynccontextmanager
async def cancelling(ep: Endpoint, status_url: str, console: Console) -> AsyncIterator[None]:
    """On Ctrl-C (or any failure) while the job runs, cancel it on the server before giving up."""
    try:
        yield
    except BaseException:
        console.print("cancelling the bulk job …", style="yellow")
        await asyncio.shield(forget(ep, status_url))
        raise


def progress_bar(console: Console, *, transfer: bool = False) -> Progress:
    if transfer:
        return Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), TimeElapsedColumn(), console=console)
    return Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("resources"), TimeElapsedColumn(), console=console)


# --- export ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRequest:
    out: Path
    types: tuple[str, ...] = ()
    since: str | None = None
    type_filters: tuple[str, ...] = ()
    group: str | None = None
    patient_level: bool = False
    gzip: bool = False

    def path(self) -> str:
        if self.group:
            return f"/Group/{self.group}/$export"
        return "/Patient/$export" if self.patient_level else "/$export"

    def params(self) -> list[tuple[str, str]]:
        params = [("_outputFormat", NDJSON)]
        if self.types:
            params.append(("_type", ",".join(self.types)))
        if self.since:
            params.append(("_since", self.since))
        params += [("_typeFilter", f) for f in self.type_filters]
        return params


def local_names(manifest_items: list[dict[str, Any]], suffix: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Each output item with its file name in ``--out``: ``Type.ndjson``, then ``Type-2.ndjson`` …"""
    seen: dict[str, int] = {}
    for item in manifest_items:
        type_ = str(item.get("type") or "OperationOutcome")
        seen[type_] = seen.get(type_, 0) + 1
        n = seen[type_]
        yield item, (f"{type_}.ndjson" if n == 1 else f"{type_}-{n}.ndjson") + suffix


def check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise BulkError(f"--out {out} is a file, not a directory")
    if out.is_dir() and any(p.name.endswith((".ndjson", ".ndjson.gz")) for p in out.iterdir()):
        raise BulkError(f"--out {out} already holds NDJSON files; give an empty or new directory")
    out.mkdir(parents=True, exist_ok=True)


async def download(ep: Endpoint, url: str, path: Path, gzip: bool, progress: Progress, bar: TaskID) -> int:
    """Stream one file to ``path`` (gzip when ``gzip``: as the server sends it, else compressed here);
    returns the bytes written."""
    headers = {"Accept": NDJSON, "Accept-Encoding": "gzip" if gzip else "identity"}
    for attempt in (1, 2):
        async with ep.client.stream("GET", url, headers=ep.headers(headers)) as response:
            if response.status_code == 401 and attempt == 1 and ep.credentials and ep.credentials.client_id:
                await ep.credentials.fetch()
                continue
            if response.status_code != 200:
                await response.aread()
                raise BulkError(f"downloading {url} failed (HTTP {response.status_code}): {message(response)}")
            encoded = response.headers.get("content-encoding", "").lower() == "gzip"
            with gz.open(path, "wb") if (gzip and not encoded) else path.open("wb") as sink:
                chunks = response.aiter_raw() if (gzip and encoded) else response.aiter_bytes()
                async for chunk in chunks:
                    sink.write(chunk)
                    progress.advance(bar, len(chunk))
            return path.stat().st_size
    raise BulkError(f"downloading {url} was refused (HTTP 401)")


async def run_export(req: ExportRequest, target: Target, console: Console) -> Outcome:
    check_out(req.out)
    work = req.out / WORK_DIR
    outcome = Outcome()
    try:
        async with endpoint(target, console, scope=EXPORT_SCOPE, create=False, bulk_dir=work, gzip=req.gzip) as ep:
            started = time.perf_counter()
            response = await ep.request("GET", req.path(), params=req.params(), headers=ASYNC)
            if response.status_code != 202:
                raise BulkError(f"$export refused (HTTP {response.status_code}): {message(response)}")
            status_url = response.headers["content-location"]
            async with cancelling(ep, status_url, console):
                with progress_bar(console) as progress:
                    bar = progress.add_task("exporting", total=None)
                    manifest = await poll(ep, status_url, lambda n: progress.update(bar, completed=n))
                    total = sum(int(o.get("count", 0)) for o in manifest.get("output", []))
                    progress.update(bar, completed=total, total=total)
                if ep.local:
                    fetch_local(ep, status_url, manifest, req, outcome)
                else:
                    await fetch_remote(ep, manifest, req, outcome, console)
            await forget(ep, status_url)
            outcome.elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return outcome


def fetch_local(ep: Endpoint, status_url: str, manifest: dict[str, Any], req: ExportRequest,
                outcome: Outcome) -> None:
    """In-process: the job's files renamed into ``--out``."""
    from server.bulk import files

    assert ep.svc is not None
    directory = files.job_dir(ep.svc.settings, status_url.rstrip("/").rsplit("/", 1)[1])
    suffix = ".gz" if req.gzip else ""
    for item, name in local_names(manifest.get("output", []), suffix):
        source = files.on_disk(directory, item["url"].rsplit("/", 1)[1], req.gzip)
        os.replace(source, req.out / name)
        stats = outcome.of(str(item["type"]))
        stats.resources += int(item.get("count", 0))
        stats.files += 1
        stats.bytes += (req.out / name).stat().st_size
    for item, name in local_names(manifest.get("error", []), ""):
        os.replace(directory / item["url"].rsplit("/", 1)[1], req.out / name)


async def fetch_remote(ep: Endpoint, manifest: dict[str, Any], req: ExportRequest, outcome: Outcome,
                       console: Console) -> None:
    """From a server: each output (and error) file streamed to ``--out``."""
    suffix = ".gz" if req.gzip else ""
    with progress_bar(console, transfer=True) as progress:
        items = list(local_names(manifest.get("output", []), suffix))
        bar = progress.add_task(f"downloading {len(items)} files", total=None)
        for item, name in items:
            began = time.perf_counter()
            size = await download(ep, str(item["url"]), req.out / name, req.gzip, progress, bar)
            stats = outcome.of(str(item["type"]))
            stats.resources += int(item.get("count", 0))
            stats.files += 1
            stats.bytes += size
            stats.seconds += time.perf_counter() - began
        for item, name in local_names(manifest.get("error", []), ""):
            await download(ep, str(item["url"]), req.out / name, False, progress, bar)
    for stats in outcome.types.values():
        stats.seconds = 0.0  # download time is not the export's rate: only the total rate is shown


# --- import ------------------------------------------------------------------------------------


def ndjson_files(paths: list[Path]) -> list[Path]:
    """Files given, and the ``*.ndjson`` / ``*.ndjson.gz`` of directories (not the OperationOutcome
    error files an export writes beside them)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith((".ndjson", ".ndjson.gz"))
                            and not p.name.startswith("OperationOutcome"))
        elif path.is_file():
            found.append(path)
        else:
            raise BulkError(f"no such file or directory: {path}")
    if not found:
        raise BulkError(f"no NDJSON files (*.ndjson, *.ndjson.gz) in {', '.join(map(str, paths))}")
    return found


def is_gzip(path: Path) -> bool:
    with path.open("rb") as source:
        return source.read(2) == b"\x1f\x8b"


def numbered_lines(raw: io.BufferedIOBase, gzipped: bool) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, stripped line) of an NDJSON file, gzip or plain."""
    source: io.BufferedIOBase = gz.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
    for number, line in enumerate(source, start=1):
        yield number, line.strip()


async def import_local(ep: Endpoint, path: Path, outcome: Outcome, progress: Progress, bar: TaskID) -> None:
    """Every line upserted as the ``$import`` job does (runs of lines to one store session, a failed
    run line by line); a bad line is recorded and the rest goes on."""
    from server.bulk.jobs.imports import SAVE_EVERY, upsert_many

    assert ep.svc is not None
    seen: set[str] = set()
    sizes: dict[int, int] = {}

    async def flush(batch: list[tuple[int, bytes]]) -> None:
        began = time.perf_counter()
        results = await upsert_many(ep.svc, None, batch)  # type: ignore[arg-type]
        share = (time.perf_counter() - began) / max(1, len(results))
        for number, type_, message in results:
            if type_ is None:
                outcome.errors.append(f"{path.name} line {number}: {' '.join((message or 'refused').split())}")
                continue
            stats = outcome.of(type_)
            stats.resources += 1
            stats.bytes += sizes.get(number, 0) + 1
            stats.seconds += share
            if type_ not in seen:
                seen.add(type_)
                stats.files += 1

    with path.open("rb") as raw:
        batch: list[tuple[int, bytes]] = []
        for number, line in numbered_lines(raw, is_gzip(path)):
            if not line:
                continue
            batch.append((number, line))
            sizes[number] = len(line)
            if len(batch) >= SAVE_EVERY:
                await flush(batch)
                batch, sizes = [], {}
                progress.update(bar, completed=raw.tell())
        if batch:
            await flush(batch)
        progress.update(bar, completed=raw.tell())


async def upload_body(path: Path, progress: Progress, bar: TaskID) -> AsyncIterator[bytes]:
    """The file's NDJSON (decompressed when gzip), in chunks, advancing the bar by what was read."""
    with path.open("rb") as raw:
        source: io.BufferedIOBase = gz.GzipFile(fileobj=raw, mode="rb") if is_gzip(path) else raw
        while chunk := source.read(256 * 1024):
            yield chunk
            progress.update(bar, completed=raw.tell())


async def import_remote(ep: Endpoint, path: Path, outcome: Outcome, progress: Progress, bar: TaskID,
                        console: Console) -> None:
    """Upload to ``$import``, poll, read the counts and the error file, DELETE the status URL."""
    began = time.perf_counter()
    headers = {**ASYNC, "Content-Type": NDJSON}
    response = await ep.request("POST", "/$import", content=upload_body(path, progress, bar), headers=headers)
    if response.status_code == 401 and ep.credentials and ep.credentials.client_id:
        response = await ep.request("POST", "/$import", content=upload_body(path, progress, bar), headers=headers)
    if response.status_code != 202:
        raise BulkError(f"$import of {path.name} refused (HTTP {response.status_code}): {message(response)}")
    status_url = response.headers["content-location"]
    async with cancelling(ep, status_url, console):
        manifest = await poll(ep, status_url, lambda n: None)
        for item in manifest.get("error", []):
            async with ep.client.stream("GET", item["url"], headers=ep.headers({"Accept": NDJSON})) as errors:
                if errors.status_code != 200:
                    outcome.errors.append(f"{path.name}: the error file could not be read (HTTP {errors.status_code})")
                    continue
                async for line in errors.aiter_lines():
                    if line.strip():
                        outcome.errors.append(f"{path.name} {error_text(line)}")
    await forget(ep, status_url)
    counts = {str(o["type"]): int(o.get("count", 0)) for o in manifest.get("output", [])}
    total = sum(counts.values()) or 1
    seconds, size = time.perf_counter() - began, path.stat().st_size
    for type_, count in counts.items():  # bytes and time shared by the types of the file, by count
        stats = outcome.of(type_)
        stats.resources += count
        stats.files += 1
        stats.bytes += size * count // total
        stats.seconds += seconds * count / total


def error_text(line: str) -> str:
    """``line N: message`` from an error file's OperationOutcome line."""
    try:
        issue = orjson.loads(line)["issue"][0]
        text = str(issue.get("diagnostics", ""))
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return " ".join(line.split())
    found = ERROR_LINE.search(text)
    return f"line {found.group(1)}: {' '.join(found.group(2).split())}" if found else " ".join(text.split())


async def run_import(paths: list[Path], target: Target, console: Console) -> Outcome:
    found = ndjson_files(paths)
    outcome = Outcome()
    async with endpoint(target, console, scope=IMPORT_SCOPE, create=True) as ep:
        started = time.perf_counter()
        with progress_bar(console, transfer=True) as progress:
            for path in found:
                bar = progress.add_task(path.name, total=path.stat().st_size)
                if ep.local:
                    await import_local(ep, path, outcome, progress, bar)
                else:
                    await import_remote(ep, path, outcome, progress, bar, console)
                progress.update(bar, completed=path.stat().st_size)
        outcome.elapsed = time.perf_counter() - started
    return outcome


# --- the commands ------------------------------------------------------------------------------

Server = Annotated[str | None, typer.Option(help="Base URL of a FHIR server (Bulk Data client)")]
Token = Annotated[str | None, typer.Option(envvar="YIDANG_TOKEN", help="Bearer token for --server [YIDANG_TOKEN]")]
ClientId = Annotated[str | None, typer.Option(help="Backend-services client id: fetch a token with --key")]
Key = Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="The client's private key (PEM)")]
Scope = Annotated[str | None, typer.Option(help=f"Scopes to ask for with --client-id (export: {EXPORT_SCOPE}, "
                                                f"import: {IMPORT_SCOPE})")]
DataDir = Annotated[Path | None, typer.Option(help="Straight from/into the embedded store here")]
MongoUri = Annotated[str | None, typer.Option(help="Straight from/into MongoDB at this URI")]


def export_command(
    out: Annotated[Path, typer.Option(help="Directory for the NDJSON files (Type.ndjson, Type-2.ndjson …)")],
    type_: Annotated[list[str] | None, typer.Option("--type", help="Resource types (comma-separated or "
                                                                   "repeated); default: all")] = None,
    since: Annotated[str | None, typer.Option(help="Only resources changed after this instant "
                                                   "(2024-01-01T00:00:00Z)")] = None,
    type_filter: Annotated[list[str] | None, typer.Option(help="Type?search-parameters (repeatable)")] = None,
    group: Annotated[str | None, typer.Option(help="Export the compartments of this Group's members")] = None,
    patient_level: Annotated[bool, typer.Option("--patient-level", help="Patient-level export (the Patient "
                                                                        "compartments)")] = False,
    gzip: Annotated[bool, typer.Option("--gzip", help="Write Type.ndjson.gz")] = False,
    server: Server = None, token: Token = None, client_id: ClientId = None, key: Key = None, scope: Scope = None,
    data_dir: DataDir = None, mongodb_uri: MongoUri = None,
) -> None:
    """Bulk Data export ($export) from a server or straight from a store into NDJSON files, with a summary."""
    if group and patient_level:
        raise typer.BadParameter("give --group or --patient-level, not both", param_hint="--group")
    target = Target(server, token, client_id, key, scope, data_dir, mongodb_uri)
    check_target(target)
    types = tuple(t.strip() for value in type_ or [] for t in value.split(",") if t.strip())
    req = ExportRequest(out, types, since, tuple(type_filter or ()), group, patient_level, gzip)
    console = Console(stderr=True)
    outcome = asyncio.run(run_export(req, target, console))
    report(console, "yidang export", outcome)
    typer.echo(f"{outcome.resources} resources exported to {out}")


def import_command(
    paths: Annotated[list[Path], typer.Argument(help="NDJSON files (.ndjson, .ndjson.gz) or directories of them")],
    server: Server = None, token: Token = None, client_id: ClientId = None, key: Key = None, scope: Scope = None,
    data_dir: DataDir = None, mongodb_uri: MongoUri = None,
) -> None:
    """Bulk Data import ($import) of NDJSON into a server or straight into a store: every line an update that
    keeps its id, validated; failed lines are listed by file and line (exit 1 if any)."""
    target = Target(server, token, client_id, key, scope, data_dir, mongodb_uri)
    check_target(target)
    console = Console(stderr=True)
    outcome = asyncio.run(run_import(paths, target, console))
    report(console, "yidang import", outcome)
    typer.echo(f"{outcome.resources} resources imported, {len(outcome.errors)} lines failed")
    raise typer.Exit(1 if outcome.errors else 0)


def mount(app: typer.Typer) -> None:
    """Add ``export`` and ``import`` to the ``yidang`` command line."""
    app.command("export")(export_command)
    app.command("import")(import_command)

"""Running ``yidang load``: pick the target, show progress with rich, print the summary."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from server.load import NotFhir, Summary, files_in, requests_for, send
from server.settings import Settings, resolve_store


class NoStore(ValueError):
    """A command that only reads was pointed at a folder without a store (it would create an empty one)."""


def _hide_password(uri: str) -> str:
    scheme, sep, rest = uri.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return uri
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def describe_store(settings: Settings, *, create: bool) -> str:
    """One line naming the store a command uses; raises :class:`NoStore` when reading a store that is not there.

    Commands default to ``./data``: run from another folder they would silently open a new, empty
    store, so the line says which store (and whether it is new), and read-only commands refuse."""
    if settings.store == "mongo":
        return f"store: mongo ({_hide_password(settings.mongodb_uri or '')})"
    db = (settings.data_dir / "yidang.db").resolve()
    if db.exists():
        return f"store: sqlite ({db})"
    if not create:
        raise NoStore(f"no store at {db}; give --data-dir DIR of an existing store (or set YIDANG_DATA_DIR), "
                      "or --server URL")
    return f"store: sqlite ({db}, new)"


@asynccontextmanager
async def target(
    server: str | None, data_dir: Path | None, mongodb_uri: str | None, *, create: bool = True,
    console: Console | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client on ``server``, or on the app in-process over the local store; ``create=False`` for
    commands that only read (they refuse a store that does not exist). Says which store on stderr."""
    if server:
        # a server with authorization on: the bearer token in YIDANG_TOKEN (e.g. from `yidang clients token`)
        token = os.environ.get("YIDANG_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(base_url=server.rstrip("/"), timeout=300, headers=headers) as client:
            yield client
        return
    from server.app import create_app, make_store

    overrides: dict[str, object] = {"log_requests": False}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if mongodb_uri:
        overrides["mongodb_uri"] = mongodb_uri
    settings = resolve_store(Settings(**overrides))  # type: ignore[arg-type]
    (console or Console(stderr=True)).print(describe_store(settings, create=create), markup=False,
                                            highlight=False, soft_wrap=True)
    store = make_store(settings)
    await store.open()
    try:
        app = create_app(settings, store=store)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://yidang.local",
                                     timeout=300) as client:
            yield client
    finally:
        await store.close()


async def run_load(paths: list[Path], *, server: str | None, data_dir: Path | None, mongodb_uri: str | None,
                   concurrency: int = 4, console: Console | None = None) -> Summary:
    console = console or Console(stderr=True)
    files = files_in(paths)
    summary = Summary()
    semaphore = asyncio.Semaphore(max(1, concurrency))
    explicit = {p for p in paths if not p.is_dir()}
    async with target(server, data_dir, mongodb_uri, console=console) as client:
        with Progress(TextColumn("[bold]loading"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                      TimeElapsedColumn(), console=console, transient=False) as progress:
            task = progress.add_task("load", total=len(files))

            async def one(path: Path) -> None:
                async with semaphore:
                    try:
                        for request in requests_for(path):
                            await send(client, request, summary)
                    except NotFhir as exc:
                        if path in explicit:
                            summary.add(400, f"{path.name}: {exc}")
                        else:
                            summary.skipped.append(str(path))
                    except (ValueError, OSError) as exc:
                        summary.add(400, f"{path.name}: {exc}")
                    summary.files += 1
                    progress.advance(task)

            await asyncio.gather(*(one(p) for p in files))
    table = Table(title="yidang load")
    for column in ("files", "created", "updated", "failed"):
        table.add_column(column, justify="right")
    table.add_row(str(summary.files), str(summary.created), str(summary.updated), str(summary.failed))
    console.print(table)
    for reason, count in summary.reasons.most_common(10):
        console.print(f"  [red]{count}×[/red] {reason}")
    if summary.skipped:
        shown = ", ".join(summary.skipped[:10]) + (", …" if len(summary.skipped) > 10 else "")
        console.print(f"skipped {len(summary.skipped)} JSON file(s) that are not FHIR resources (no resourceType): "
                      f"{shown}", markup=False, highlight=False, soft_wrap=True)
    return summary

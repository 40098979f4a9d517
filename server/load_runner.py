"""Running ``yidang load``: pick the target, show progress with rich, print the summary."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from server.load import Summary, files_in, requests_for, send
from server.settings import Settings, resolve_store


@asynccontextmanager
async def target(
    server: str | None, data_dir: Path | None, mongodb_uri: str | None
) -> AsyncIterator[httpx.AsyncClient]:
    if server:
        async with httpx.AsyncClient(base_url=server.rstrip("/"), timeout=300) as client:
            yield client
        return
    from server.app import create_app, make_store

    overrides: dict[str, object] = {"log_requests": False}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if mongodb_uri:
        overrides["mongodb_uri"] = mongodb_uri
    settings = resolve_store(Settings(**overrides))  # type: ignore[arg-type]
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
    async with target(server, data_dir, mongodb_uri) as client:
        with Progress(TextColumn("[bold]loading"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                      TimeElapsedColumn(), console=console, transient=False) as progress:
            task = progress.add_task("load", total=len(files))

            async def one(path: Path) -> None:
                async with semaphore:
                    try:
                        for request in requests_for(path):
                            await send(client, request, summary)
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
    return summary

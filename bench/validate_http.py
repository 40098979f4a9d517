"""``$validate`` through HTTP against the HL7 reference validator's verdicts (shared fhir-test-cases).

    python bench/validate_http.py                      # in-process: the real app over httpx's ASGI transport
    python bench/validate_http.py --serve              # a real server: uvicorn in a subprocess, temporary SQLite
    python bench/validate_http.py --url http://127.0.0.1:8080/fhir   # a server already running (a scratch one)

Runs the in-scope cases of ``shared/samples/validator-cases`` the way
``tests/http/test_validator_fidelity.py`` does — supporting StructureDefinitions, ValueSets … written
through the REST API, the resource posted to ``Type/$validate`` (``?profile=`` when the case has
one), error/fatal issues counted — and prints the same table: agreement per module, then over the
cases that can run and over all in-scope cases (supporting definitions that are not valid R4 are
refused by the API and counted as disagreeing), and which path was measured.

In-process, every case gets a fresh SQLite store, as in the test. Against a real server
(``--serve`` or ``--url``) all cases share one server: each case's supporting resources are
deleted once it has run (a deleted definition is withdrawn), so point ``--url`` at a scratch
server — the cases PUT resources with fixed ids (``StructureDefinition/...``) and remove them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import server_process
from tests.http.test_validator_fidelity import MANIFEST, ClientFactory, measure, report


def in_process() -> ClientFactory:
    """A fresh in-process server (the real FastAPI app, a new SQLite store) per case."""
    from server.stores.sqlite import SqliteStore
    from tests.conftest import make_client

    @asynccontextmanager
    async def fresh() -> AsyncIterator[httpx.AsyncClient]:
        with tempfile.TemporaryDirectory(prefix="yidang-validate-") as tmp:
            store = SqliteStore(Path(tmp))
            await store.open()
            try:
                async with make_client(store) as client:
                    yield client
            finally:
                await store.close()

    return fresh


def over_tcp(base: str) -> ClientFactory:
    """A client of the server at ``base`` (one server for every case)."""

    @asynccontextmanager
    async def shared() -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(base_url=base.rstrip("/"), timeout=120) as client:
            yield client

    return shared


async def run(factory: ClientFactory, path: str, *, clean: bool) -> None:
    started = time.perf_counter()
    measured = await measure(factory, clean=clean)
    seconds = time.perf_counter() - started
    print(f"$validate through HTTP — {path}")
    print(report(measured))
    print(f"{len(measured.runs)} case runs listed (JSON ones sent twice: in the body and wrapped in Parameters) "
          f"in {seconds:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="base URL of a running (scratch) server, e.g. http://127.0.0.1:8080/fhir")
    where.add_argument("--serve", action="store_true",
                       help="start uvicorn server.asgi:app in a subprocess on a temporary SQLite store")
    args = parser.parse_args()
    if not MANIFEST.exists():
        sys.exit(f"the validator cases are not available ({MANIFEST})")
    if args.url:
        asyncio.run(run(over_tcp(args.url), f"real server at {args.url} (shared by all cases)", clean=True))
    elif args.serve:
        with (tempfile.TemporaryDirectory(prefix="yidang-validate-") as tmp,
              server_process({"YIDANG_DATA_DIR": tmp}) as (host, port)):
            base = f"http://{host}:{port}"
            asyncio.run(run(over_tcp(base), f"real server (uvicorn subprocess, SQLite) at {base}", clean=True))
    else:
        asyncio.run(run(in_process(), "in-process (ASGI transport, a fresh SQLite store per case)", clean=False))


if __name__ == "__main__":
    main()

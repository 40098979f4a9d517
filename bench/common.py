"""Shared benchmark plumbing: stores to measure, the Synthea corpus, a server subprocess."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("YIDANG_SHARED", ROOT.parent / "shared"))
SYNTHEA = SHARED / "samples" / "synthea"

sys.path.insert(0, str(ROOT))


def synthea_bundles() -> list[bytes]:
    index = json.loads((SYNTHEA / "index.json").read_text())
    return [gzip.decompress((SYNTHEA / item["file"]).read_bytes()) for item in index]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mongo_for_bench() -> Iterator[str]:
    """A MongoDB URI: ``YIDANG_BENCH_MONGODB_URI``, else the test helper's server (nx-27017/mongod)."""
    uri = os.environ.get("YIDANG_BENCH_MONGODB_URI")
    if uri:
        yield uri
        return
    from tests.mongo_server import mongo_uri

    with mongo_uri("yidang_bench") as found:
        yield found


def mongo_server(uri: str) -> str:
    """Which server a MongoDB figure was measured on, from ``buildInfo``: ``MongoDB 7.0.14 at host``,
    or ``nx-27017 (reports MongoDB 7.0.0) at host`` with a warning, so that no figure measured on the
    test server (a wire-protocol front over SQLite) is ever presented as MongoDB's."""
    from pymongo import MongoClient

    from server.stores.mongo.capabilities import server_name

    host = uri.split("@")[-1].split("/")[2] if "//" in uri else uri
    try:
        client: MongoClient[dict[str, object]]
        with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
            name = server_name(client.admin.command("buildInfo"))
    except Exception as exc:  # a benchmark still runs; it says it does not know where
        return f"unknown server at {host} ({type(exc).__name__})"
    warning = "" if name.startswith("MongoDB ") else " — NOT MongoDB: these figures say nothing of MongoDB's speed"
    return f"{name} at {host}{warning}"


@contextlib.contextmanager
def server_process(env: dict[str, str], *, workers: int = 1) -> Iterator[tuple[str, int]]:
    """``yidang serve`` in a subprocess; yields (host, port) once /readyz answers."""
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="yidang-bench-")) / "server.log"
    out = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "server.asgi:app", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--log-level", "warning", "--no-access-log",
         "--http", "server.http.protocol:UpgradeSafeHttpToolsProtocol"],  # as `yidang serve` runs
        cwd=ROOT, env={**os.environ, **env, "YIDANG_LOG_REQUESTS": "false"}, stdout=out, stderr=out,
    )
    try:
        import urllib.request

        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(log.read_text()) from None
                time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        out.close()


def server_cpu() -> float:
    """CPU seconds (user + system) used so far by this process's child processes and theirs (the server)."""
    tick = os.sysconf("SC_CLK_TCK")

    def children(pid: str) -> list[str]:
        found = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                found += (task / "children").read_text().split()
        return found

    total = 0.0
    todo = children("self")
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            todo += children(pid)
    return total

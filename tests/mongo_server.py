"""A MongoDB URI for the tests: an external server, a throw-away ``mongod``, or nx-27017.

Resolution order (the first that starts wins):

1. ``YIDANG_TEST_MONGODB_URI`` — an already running deployment (CI with a real replica set);
2. ``mongod`` on PATH — a standalone server on a free port in a temporary directory (standalone
   mongod has no multi-document transactions, so the store's journal path is exercised);
3. ``nx-27017`` (a MongoDB wire-protocol server on SQLite, a test dependency) on a free port with a
   temporary data directory (one SQLite file per database, so databases are isolated). It has
   sessions, but its transactions are not isolated, so the store uses its journal there too; see
   /work/shared/MONGO.md for the query shapes it gets wrong, which the store never emits.

If none can be started this raises :class:`MongoServerUnavailable`: CI must fail, not skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ENV_URI = "YIDANG_TEST_MONGODB_URI"
STARTUP_TIMEOUT = 30.0
"""Seconds to wait for a spawned server to accept connections (mongod needs a few on a cold disk)."""


class MongoServerUnavailable(RuntimeError):
    """Raised when no MongoDB-compatible server can be found or started for the tests."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_accepting(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MongoServerUnavailable(f"server exited with {proc.returncode}: {_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise MongoServerUnavailable(f"server did not accept connections on {port}: {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def _nx_command() -> list[str] | None:
    beside_python = Path(sys.executable).with_name("nx-27017")
    if beside_python.exists():
        return [str(beside_python)]
    found = shutil.which("nx-27017")
    return [found] if found else None


@contextmanager
def _spawn(name: str, argv: list[str], port: int, workdir: Path) -> Iterator[None]:
    log = workdir / f"{name}.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        _wait_accepting(proc, port, log)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _servers(workdir: Path) -> list[tuple[str, Callable[[int], list[str]]]]:
    """The servers that can be spawned here, best first: name and argv for a port."""
    found: list[tuple[str, Callable[[int], list[str]]]] = []
    mongod = shutil.which("mongod")
    if mongod:
        data = workdir / "mongod-data"

        def mongod_argv(port: int) -> list[str]:
            data.mkdir(exist_ok=True)
            return [mongod, "--dbpath", str(data), "--port", str(port), "--bind_ip", "127.0.0.1"]

        found.append(("mongod", mongod_argv))
    nx = _nx_command()
    if nx:
        # --data-dir: one SQLite file per database (with --db every database shares one file and
        # dropDatabase drops them all); own pid/log files (the defaults refuse a second server).
        def nx_argv(port: int) -> list[str]:
            return [
                *nx,
                *("--data-dir", str(workdir / "nx-data"), "--host", "127.0.0.1", "-p", str(port)),
                *("--pid-file", str(workdir / "nx.pid"), "--log-file", str(workdir / "nx.log")),
            ]

        found.append(("nx-27017", nx_argv))
    return found


@contextmanager
def mongo_uri(database: str = "yidang_test") -> Iterator[str]:
    """Yield a ``mongodb://`` URI naming ``database``; stop any server started for it afterwards."""
    external = os.environ.get(ENV_URI)
    if external:
        yield external
        return
    with tempfile.TemporaryDirectory(prefix="yidang-mongo-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        failures: list[str] = []
        for name, argv in _servers(workdir):
            port = _free_port()
            try:
                stack.enter_context(_spawn(name, argv(port), port, workdir))
            except MongoServerUnavailable as exc:
                failures.append(f"{name}: {exc}")
                continue
            yield f"mongodb://127.0.0.1:{port}/{database}?directConnection=true"
            return
        detail = "; ".join(failures) or "neither mongod nor nx-27017 is installed"
        raise MongoServerUnavailable(f"no MongoDB server for the tests ({detail}); set {ENV_URI} or install one")

"""``yidang serve`` as a real process on a free port, for tests that need the wire: third-party
clients, HTTP parser behaviour, concurrency across worker processes, kill -9.

:func:`served` starts the server exactly as an operator does (the console script of this venv),
waits for ``/readyz``, yields a :class:`Served` and stops the process (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

YIDANG = Path(sys.executable).with_name("yidang")
READY_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """kill -9: no shutdown handler runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


def wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return
        except OSError:
            if process.poll() is not None:
                tail = log.read_text()[-3000:]
                raise RuntimeError(f"yidang serve exited with {process.returncode}: {tail}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"yidang serve did not become ready: {log.read_text()[-3000:]}") from None
            time.sleep(0.1)


@contextmanager
def served(workdir: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None,
           store_args: Sequence[str] | None = None) -> Iterator[Served]:
    """Start ``yidang serve`` in ``workdir``; ``store_args`` default to an embedded store there."""
    port = port or free_port()
    log = workdir / f"serve-{port}.log"
    store = list(store_args) if store_args is not None else ["--data-dir", str(workdir / "store")]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(YIDANG), "serve", "--port", str(port), *store, *args],
            stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env={**os.environ, **(env or {})},
        )
    try:
        wait_ready(process, port, log)
        yield Served(process, port, log)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=20)

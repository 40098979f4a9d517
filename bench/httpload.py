"""A small keep-alive HTTP/1.1 load generator on raw asyncio streams.

httpx costs more CPU per request than the server under test, and the machine has two cores; this
client parses just enough HTTP (status line, Content-Length) to keep one core for the server.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def _read_response(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def run(host: str, port: int, paths: Sequence[str], *, clients: int = 32, seconds: float = 10.0,
              warmup: float = 1.0, headers: dict[str, str] | None = None) -> LoadResult:
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    latencies: list[float] = []
    counts = {"ok": 0, "err": 0}
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        rnd = random.Random()
        try:
            while True:
                now = time.perf_counter()
                if now >= stop_at:
                    return
                path = paths[rnd.randrange(len(paths))]
                request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/fhir+json\r\n{extra}\r\n"
                writer.write(request.encode())
                await writer.drain()
                status = await _read_response(reader)
                done = time.perf_counter()
                if done >= measure_from:
                    latencies.append(done - now)
                    counts["ok" if status == 200 else "err"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return LoadResult(counts["ok"], counts["err"], seconds, latencies)

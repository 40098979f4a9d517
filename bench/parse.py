"""Request-body parsing on the Synthea corpus: ``orjson.loads`` alone against
:func:`server.fhir.json.loads` (size limits checked on the byte skeleton, decimals kept as written)
and :func:`server.fhir.json.load_stored` on compact stored resources. CPU time, best of 5 rounds.

    .venv/bin/python -m bench.parse
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.common import synthea_bundles
from server.fhir import json as fhir_json


def best(fn: Callable[[bytes], Any], bodies: list[bytes], rounds: int = 5) -> float:
    """Seconds of CPU per body, the best round (the machine is shared; the minimum is the cost)."""
    times = []
    for _ in range(rounds):
        start = time.process_time()
        for body in bodies:
            fn(body)
        times.append((time.process_time() - start) / len(bodies))
    return min(times)


def main() -> None:
    bundles = synthea_bundles()
    size = sum(map(len, bundles)) / len(bundles) / 1e6
    print(f"{len(bundles)} Synthea bundles, {size:.2f} MB on average (pretty-printed)")
    parsers: list[tuple[str, Callable[[bytes], Any]]] = [("orjson.loads", orjson.loads),
                                                         ("server.fhir.json.loads", fhir_json.loads)]
    for name, fn in parsers:
        print(f"  {name:24s} {best(fn, bundles) * 1e3:7.2f} ms per bundle")
    stored = [orjson.dumps(e["resource"]) for b in bundles for e in orjson.loads(b).get("entry", [])]
    print(f"{len(stored)} resources as stored (compact)")
    readers: list[tuple[str, Callable[[bytes], Any]]] = [("orjson.loads", orjson.loads),
                                                         ("server.fhir.json.load_stored", fhir_json.load_stored)]
    for name, fn in readers:
        print(f"  {name:28s} {best(fn, stored) * 1e6:7.1f} µs per resource")


if __name__ == "__main__":
    main()

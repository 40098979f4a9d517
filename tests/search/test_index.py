"""The indexer on real data: every shared sample indexes into well-formed entries; the cost per
resource is printed (the ingest budget assumes ~100 µs)."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import pytest

from server.search.index import Indexer
from server.search.model import TABLES, Entry
from server.search.types.date import MAX_US, MIN_US
from tests.paths import SAMPLES


def synthea(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in sorted((SAMPLES / "synthea").glob("*.json.gz"))[:n]:
        out += [e["resource"] for e in json.loads(gzip.decompress(p.read_bytes()))["entry"]]
    return out


def well_formed(entry: Entry) -> bool:
    values = entry.values
    if len(values) != len(TABLES[entry.table]):
        return False
    if entry.table == "date":
        return all(isinstance(v, int) and MIN_US <= v <= MAX_US for v in values) and values[0] <= values[1]
    if entry.table in ("number", "quantity"):
        return all(isinstance(v, float) for v in values[:2]) and values[0] <= values[1]
    if entry.table == "string":
        return all(isinstance(v, str) and v for v in values)
    if entry.table == "reference":
        return values[2] is not None or values[1] is not None
    return True


def test_synthea_observation_entries(indexer: Indexer) -> None:
    obs = next(r for r in synthea(1) if r["resourceType"] == "Observation" and "valueQuantity" in r)
    entries = indexer.entries(obs)
    assert len(entries) == len(set(entries))
    params = {e.param for e in entries}
    assert {"code", "date", "status", "subject", "value-quantity", "code-value-quantity", "_tag"} <= params
    assert all(e.param not in ("_id", "_lastUpdated") for e in entries)


@pytest.mark.slow
def test_every_sample_indexes_well_formed(indexer: Indexer) -> None:
    resources = [json.loads(p.read_text()) for p in sorted((SAMPLES / "r4-examples").glob("*.json"))]
    resources += synthea(3)
    bad = [(r["resourceType"], r.get("id"), e) for r in resources for e in indexer.entries(r) if not well_formed(e)]
    assert bad == []


@pytest.mark.slow
@pytest.mark.parametrize("type_", ["Observation", "Patient", "Claim"])
def test_index_speed(indexer: Indexer, type_: str) -> None:
    """Prints the cost per resource for the README (``-s``); no timed assertion, since a loaded
    machine would make it flaky (the benchmarks in bench/ give the figures)."""
    resources = [r for r in synthea(3) if r["resourceType"] == type_]
    assert resources
    for r in resources:  # warm the compiled plans and caches
        assert indexer.entries(r)
    rounds = max(1, 600 // len(resources))
    start = time.perf_counter()
    for _ in range(rounds):
        for r in resources:
            indexer.entries(r)
    per = (time.perf_counter() - start) / (rounds * len(resources)) * 1e6
    print(f"\nindex {type_}: {per:.0f} µs per resource ({len(resources)} resources x {rounds})")

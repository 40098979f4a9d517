"""The embedded store's write-ahead log stays bounded under a steady stream of in-process writes.

``yidang ingest``/``yidang load --data-dir`` write transaction after transaction without ever
suspending on I/O; the WAL checkpoint runs beside them as a background task. Before the fix that task
never ran during such a stream and the WAL grew to the size of everything written (24 GB for
500,000 lab rows). The thresholds are lowered here so a few megabytes of writes show the bound.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from server.load_runner import target
from server.stores.sqlite import store as sqlite_store


def _bundle(n: int) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:00000000-0000-0000-0000-{n:06d}{i:06d}",
         "resource": {"resourceType": "Observation", "status": "final",
                      "code": {"text": "血红蛋白 " + "x" * 400}, "valueQuantity": {"value": i, "unit": "g/L"}},
         "request": {"method": "POST", "url": "Observation"}} for i in range(25)]}


@pytest.mark.slow
async def test_the_wal_is_truncated_while_writes_keep_coming(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_INTERVAL", 0.01)
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_WAL_BYTES", 64 * 1024)
    monkeypatch.setattr(sqlite_store, "WAL_RESTART_BYTES", 512 * 1024)
    wal = tmp_path / "yidang.db-wal"
    largest = 0
    async with target(None, tmp_path, None) as client:
        for n in range(150):
            r = await client.post("", json=_bundle(n), headers={"Content-Type": "application/fhir+json"})
            assert r.status_code == 200, r.text
            largest = max(largest, wal.stat().st_size)
        total = (await client.get("/Observation", params={"_summary": "count"})).json()["total"]
    assert total == 150 * 25
    assert largest < 8 * 1024 * 1024, f"the WAL reached {largest / 2**20:.1f} MiB"

"""A real ``yidang serve`` killed (kill -9) in the middle of an export and started again: the job
resumes from its saved cursor and the manifest is true — every resource once, counts equal the search."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from tests.served import served

pytestmark = pytest.mark.slow
N = 12_000
ENV = {"YIDANG_BULK_PAGE_SIZE": "3", "YIDANG_JOB_LEASE_SECONDS": "3"}  # small pages: the export runs for seconds
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def test_killed_mid_export_resumes_with_a_true_manifest(tmp_path: Path) -> None:
    with served(tmp_path, "--auth", "off", env=ENV) as server, httpx.Client(base_url=server.base, timeout=60) as c:
        for start in range(0, N, 1000):
            bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
                {"resource": {"resourceType": "Patient", "id": f"p{i}", "gender": "female"},
                 "request": {"method": "PUT", "url": f"Patient/p{i}"}} for i in range(start, start + 1000)]}
            assert c.post("/", json=bundle).status_code == 200
        kick = c.get("/Patient/$export", params={"_type": "Patient"}, headers=ASYNC)
        assert kick.status_code == 202, kick.text
        status_url = urlsplit(kick.headers["Content-Location"]).path
        while True:
            polled = c.get(status_url)
            assert polled.status_code == 202, "the export finished before it could be killed: make it slower"
            if int(polled.headers["X-Progress"].split()[0]) > 0:
                break
            time.sleep(0.01)
        server.kill()
        at_kill = int(polled.headers["X-Progress"].split()[0])
    with served(tmp_path, "--auth", "off", env=ENV, port=server.port) as again, \
            httpx.Client(base_url=again.base, timeout=60) as c:
        deadline = time.monotonic() + 120
        while (polled := c.get(status_url)).status_code == 202:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert polled.status_code == 200, polled.text
        manifest = polled.json()
        total = c.get("/Patient", params={"_summary": "count"}).json()["total"]
        assert total == N
        ids: list[str] = []
        for item in manifest["output"]:
            lines = c.get(item["url"]).content.splitlines()
            assert len(lines) == item["count"]
            ids += [orjson.loads(line)["id"] for line in lines]
        assert len(ids) == len(set(ids)) == N == sum(o["count"] for o in manifest["output"])
        assert 0 < at_kill < N

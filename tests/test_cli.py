"""The ``yidang`` command line: ``serve`` starts and says where, ``load`` loads and summarises."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
from typer.testing import CliRunner

from server.cli import app

ROOT = Path(__file__).resolve().parents[1]
YIDANG = Path(sys.executable).with_name("yidang")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_prints_url_and_store_and_answers(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [str(YIDANG), "serve", "--port", str(port), "--data-dir", str(tmp_path / "data"), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path, env={**os.environ},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        assert f"http://127.0.0.1:{port}/" in first
        assert "store: sqlite" in first
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    assert json.loads(r.read())["store"] == "sqlite"
                    break
            except OSError:
                assert time.time() < deadline, "server did not become ready"
                time.sleep(0.2)
        body = orjson.dumps({"resourceType": "Patient", "gender": "male"})
        request = urllib.request.Request(f"http://127.0.0.1:{port}/Patient", data=body, method="POST",
                                         headers={"Content-Type": "application/fhir+json"})
        with urllib.request.urlopen(request, timeout=5) as r:
            assert r.status == 201
        assert (tmp_path / "data" / "yidang.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_load_files_directories_and_ndjson(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    (src / "patient.json").write_bytes(orjson.dumps({"resourceType": "Patient", "id": "p1", "gender": "female"}))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Organization", "name": "社区卫生服务中心"},
         "request": {"method": "POST", "url": "Organization"}}]}
    (src / "nested" / "tx.json.gz").write_bytes(gzip.compress(orjson.dumps(bundle)))
    lines = [orjson.dumps({"resourceType": "Patient", "id": f"n{i}"}) for i in range(3)]
    lines.append(orjson.dumps({"resourceType": "Patient", "id": "bad", "active": "yes"}))
    (src / "more.ndjson").write_bytes(b"\n".join(lines))
    collection = {"resourceType": "Bundle", "type": "collection",
                  "entry": [{"resource": {"resourceType": "Practitioner", "id": "dr1"}}]}
    (src / "collection.json").write_bytes(orjson.dumps(collection))
    (src / "broken.json").write_bytes(b"{nope")
    data = tmp_path / "data"
    result = CliRunner().invoke(app, ["load", str(src), "--data-dir", str(data)])
    assert result.exit_code == 1, result.output  # the invalid NDJSON line and the broken file fail
    assert "created" in result.output
    row = next(line for line in result.output.splitlines() if line.count("│") >= 4 and any(c.isdigit() for c in line))
    files, created, updated, failed = (int(c.strip()) for c in row.strip("│ ").split("│"))
    assert (files, created, updated, failed) == (5, 6, 0, 2)
    again = CliRunner().invoke(app, ["load", str(src / "patient.json"), "--data-dir", str(data)])
    assert again.exit_code == 0, again.output

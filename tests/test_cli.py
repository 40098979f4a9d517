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


def test_validate_reports_and_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_bytes(orjson.dumps({"resourceType": "Patient", "gender": "male",
                                   "text": {"status": "generated",
                                            "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'}}))
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps({"resourceType": "Patient", "gender": "robot", "birthDate": "1990-02-30"}))
    ok = CliRunner().invoke(app, ["validate", str(good)])
    assert ok.exit_code == 0, ok.output
    assert "0 with errors" in ok.output
    failed = CliRunner().invoke(app, ["validate", str(good), str(bad)])
    assert failed.exit_code == 1
    assert "Patient.birthDate" in failed.output and "Patient.gender" in failed.output
    as_json = CliRunner().invoke(app, ["validate", str(bad), "--json"])
    report = json.loads(as_json.output)
    assert report[0]["errors"] >= 2
    ig = tmp_path / "ig"
    ig.mkdir()
    (ig / "sd.json").write_bytes(orjson.dumps({
        "resourceType": "StructureDefinition", "url": "http://example.org/sd/named", "name": "Named",
        "status": "active", "fhirVersion": "4.0.1", "kind": "resource", "abstract": False, "type": "Patient",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
        "differential": {"element": [{"id": "Patient.name", "path": "Patient.name", "min": 1}]}}))
    profiled = CliRunner().invoke(app, ["validate", str(good), "--ig", str(ig), "--profile",
                                        "http://example.org/sd/named"])
    assert profiled.exit_code == 1, profiled.output
    assert "Patient.name" in profiled.output


def test_terminology_load_csv_and_json(tmp_path: Path) -> None:
    table = tmp_path / "districts.csv"
    table.write_bytes("code,display\n310101,黄浦区\n310104,徐汇区\n".encode("gb18030"))
    data = tmp_path / "data"
    result = CliRunner().invoke(app, ["terminology", "load", str(table), "--url", "urn:oid:1.2.3.4",
                                      "--name", "Districts", "--valueset-url", "http://example.org/vs/districts",
                                      "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert "CodeSystem urn:oid:1.2.3.4: created" in result.output
    again = CliRunner().invoke(app, ["terminology", "load", str(table), "--url", "urn:oid:1.2.3.4",
                                     "--name", "Districts", "--valueset-url", "http://example.org/vs/districts",
                                     "--data-dir", str(data)])
    assert "CodeSystem urn:oid:1.2.3.4: updated" in again.output
    missing = CliRunner().invoke(app, ["terminology", "load", str(table), "--data-dir", str(data)])
    assert missing.exit_code != 0

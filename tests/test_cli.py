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
import pytest
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


# --- CLI friction: regional profiles by default, one-line errors, which store, non-FHIR files, rejections ---


def _one_error_line(output: str) -> str:
    assert "Traceback" not in output and "╭" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output
    return errors[0]


def test_validate_knows_the_regional_profiles_without_ig(tmp_path: Path) -> None:
    from profiles.regional import examples

    valid = next(e for e in examples() if e.valid and e.profile.endswith("/cn-patient"))
    good = tmp_path / "good.json"
    good.write_bytes(orjson.dumps(valid.resource))
    ok = CliRunner().invoke(app, ["validate", str(good), "--profile", valid.profile])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps({"resourceType": "Patient", "gender": "male"}))
    failed = CliRunner().invoke(app, ["validate", str(bad), "--profile", valid.profile])
    assert failed.exit_code == 1
    assert "Patient.identifier" in failed.output and "unknown" not in failed.output.lower()


def test_cli_errors_are_one_line_and_a_non_zero_exit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YIDANG_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    missing = CliRunner().invoke(app, ["terminology", "load", "districts.csv", "--url", "urn:oid:1.2.3",
                                       "--name", "X", "--valueset-url", "http://example.org/vs/x"])
    assert missing.exit_code == 1
    assert _one_error_line(missing.output) == "error: No such file or directory: districts.csv"
    table = tmp_path / "wrong.csv"
    table.write_text("a;b\nx\n")
    header = CliRunner().invoke(app, ["terminology", "load", str(table), "--url", "urn:oid:1.2.3", "--name", "X",
                                      "--valueset-url", "http://example.org/vs/x"])
    assert header.exit_code == 1
    assert "code and display" in _one_error_line(header.output)
    urn = CliRunner().invoke(app, ["terminology", "load", str(table), "--url", "urn:oid:1.2.3", "--name", "X"])
    assert urn.exit_code == 2 and "--valueset-url" in urn.output and "Traceback" not in urn.output
    patient = tmp_path / "patient.json"
    patient.write_bytes(orjson.dumps({"resourceType": "Patient"}))
    unreachable = CliRunner().invoke(app, ["load", str(patient), "--server", f"http://127.0.0.1:{_free_port()}"])
    assert unreachable.exit_code == 1
    assert "ConnectError" in _one_error_line(unreachable.output)
    assert not (tmp_path / "data").exists()


def test_read_only_commands_refuse_to_create_a_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "persons.csv"
    result = CliRunner().invoke(app, ["export-local", "--dataset", "person", "--out", str(out)])
    assert result.exit_code == 1
    line = _one_error_line(result.output)
    assert str(tmp_path / "data" / "yidang.db") in line and "--data-dir" in line
    assert not (tmp_path / "data").exists() and not out.exists()
    other = CliRunner().invoke(app, ["export-local", "--dataset", "person", "--out", str(out),
                                     "--data-dir", str(tmp_path / "elsewhere")])
    assert other.exit_code == 1 and not (tmp_path / "elsewhere").exists()


def test_commands_say_which_store_and_load_skips_non_fhir_json(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "index.json").write_bytes(orjson.dumps([{"file": "p.json", "count": 1}]))
    (src / "p.json").write_bytes(orjson.dumps({"resourceType": "Patient", "id": "p1"}))
    data = tmp_path / "data"
    first = CliRunner().invoke(app, ["load", str(src), "--data-dir", str(data)])
    assert first.exit_code == 0, first.output
    assert f"store: sqlite ({data.resolve() / 'yidang.db'}, new)" in first.output
    assert "skipped 1 JSON file(s) that are not FHIR resources" in first.output and "index.json" in first.output
    again = CliRunner().invoke(app, ["load", str(src), "--data-dir", str(data)])
    assert f"store: sqlite ({data.resolve() / 'yidang.db'})" in again.output
    exported = CliRunner().invoke(app, ["export-local", "--dataset", "person", "--out", str(tmp_path / "p.csv"),
                                        "--data-dir", str(data)])
    assert exported.exit_code == 0, exported.output
    assert f"store: sqlite ({data.resolve() / 'yidang.db'})" in exported.output
    named = CliRunner().invoke(app, ["load", str(src / "index.json"), "--data-dir", str(data)])
    assert named.exit_code == 1  # a file named on the command line must be FHIR


def test_ingest_lists_the_rejected_records_and_why(tmp_path: Path) -> None:
    from tests.datasets import generate as g

    data = tmp_path / "person.csv"
    data.write_bytes(g.to_csv(g.person_rows(3, seed=61), "gb18030"))
    result = CliRunner().invoke(app, ["ingest", str(data), "--dataset", "person", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "rejected 5" in result.output
    listed = [line for line in result.output.splitlines() if line.startswith("  record ")]
    assert len(listed) == 5
    assert any("id-invalid" in line and "check character" in line for line in listed)
    assert any("required" in line for line in listed)


def test_ingest_bounds_the_list_of_rejections() -> None:
    from server.cli import REJECTIONS_SHOWN, rejections

    issues = [{"record": n, "element": "DE02", "severity": "error", "code": "required",
               "message": {"zh": "缺", "en": "missing"}} for n in range(1, 40)]
    issues.append({"record": 3, "element": "DE03", "severity": "warning", "code": "w", "message": {"en": "w"}})
    lines = rejections({"issues": issues})
    assert len(lines) == 39 > REJECTIONS_SHOWN
    assert lines[2] == "record 3: DE02 required: missing"

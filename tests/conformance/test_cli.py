"""``yidang conformance list`` and ``yidang conformance run`` against a server over the network:
exit status 0 when every script passes, 1 on any failure, 2 for a usage error; reports written."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from server.cli import app
from tests.paths import SAMPLES

YIDANG = Path(sys.executable).with_name("yidang")
EXAMPLES = SAMPLES / "r4-examples"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    folder = tmp_path_factory.mktemp("serve")
    proc = subprocess.Popen([str(YIDANG), "serve", "--port", str(port), "--data-dir", str(folder / "data"),
                             "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=folder, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=1) as r:
                    assert json.loads(r.read())["status"] == "ok"
                    break
            except OSError:
                assert time.time() < deadline, "server did not become ready"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_list_shows_the_suites() -> None:
    result = CliRunner().invoke(app, ["conformance", "list"])
    assert result.exit_code == 0
    assert "base" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--var", "novalue"], "NAME=VALUE"),
        (["--suite", "no-such-suite"], "no suite named"),
        ([], "no TestScripts"),
        (["--suite", "base", "--types", "Patient"], "--types applies to the capability suite"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["conformance", "run", "--server", "http://127.0.0.1:9", *args])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the shared R4 examples are not beside the repository")
def test_run_passes_then_fails_and_writes_reports(server: str, tmp_path: Path) -> None:
    passing = CliRunner().invoke(app, ["conformance", "run", "--server", server, "--report-dir", str(tmp_path / "ok"),
                                       str(EXAMPLES / "TestScript-testscript-example.json")])
    assert passing.exit_code == 0, passing.output
    assert "PASS" in passing.output
    assert {p.name for p in (tmp_path / "ok").iterdir()} == {"TestReport-001.json", "junit.xml", "report.html"}
    report = json.loads((tmp_path / "ok" / "TestReport-001.json").read_text())
    assert report["resourceType"] == "TestReport" and report["result"] == "pass"

    failing = CliRunner().invoke(app, ["conformance", "run", "--server", server, "--var", "KnownPatientResourceId=x",
                                       str(EXAMPLES / "TestScript-testscript-example-readtest.json")])
    assert failing.exit_code == 1
    assert "FAIL" in failing.output and "'404'" in failing.output


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the shared R4 examples are not beside the repository")
def test_unreachable_server_is_an_error() -> None:
    result = CliRunner().invoke(app, ["conformance", "run", "--server", f"http://127.0.0.1:{_free_port()}",
                                      "--timeout", "2", str(EXAMPLES / "TestScript-testscript-example.json")])
    assert result.exit_code == 1
    assert "ConnectError" in result.output or "ERROR" in result.output


def test_list_shows_the_generated_and_regional_suites() -> None:
    result = CliRunner().invoke(app, ["conformance", "list"])
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert "generated" in lines["capability"]
    assert "scripts" in lines["regional"]


def test_capability_suite_over_the_network(server: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["conformance", "run", "--server", server, "--suite", "capability",
                                      "--types", "Patient,Observation", "--report-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "PASS    capability Patient search" in result.output
    assert "5 scripts, 0 failed" in result.output  # Patient, Patient search, Observation x2, system
    assert len(list(tmp_path.glob("TestReport-*.json"))) == 5


def test_capability_suite_for_an_undeclared_type_is_an_error(server: str) -> None:
    result = CliRunner().invoke(app, ["conformance", "run", "--server", server, "--suite", "capability",
                                      "--types", "NoSuchType"])
    assert result.exit_code == 1
    assert "declares no NoSuchType" in result.output


@pytest.mark.slow  # the same suite runs in-process in test_regional_suite.py
def test_regional_suite_over_the_network(server: str) -> None:
    result = CliRunner().invoke(app, ["conformance", "run", "--server", server, "--suite", "regional"])
    assert result.exit_code == 0, result.output
    scripts = len(list((Path(__file__).parents[2] / "conformance" / "suites" / "regional").glob("*.json")))
    assert f"{scripts} scripts, 0 failed" in result.output


def _post(server: str, resource: dict[str, object]) -> None:
    request = urllib.request.Request(f"{server}/{resource['resourceType']}", data=json.dumps(resource).encode(),
                                     headers={"Content-Type": "application/fhir+json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def test_validate_reports_rates_and_exit_status(server: str) -> None:
    from profiles.regional import examples

    valid = next(e for e in examples() if e.valid and e.resource["resourceType"] == "Practitioner")
    _post(server, valid.resource)
    profile = valid.profile
    conforming = CliRunner().invoke(app, ["conformance", "validate", "--server", server, "--profile", profile])
    assert conforming.exit_code == 0, conforming.output
    assert f"{profile} (Practitioner): 1/1 conform (100.0%)" in conforming.output

    _post(server, {"resourceType": "Practitioner", "gender": "female"})
    failing = CliRunner().invoke(app, ["conformance", "validate", "--server", server, "--profile", profile, "--json"])
    assert failing.exit_code == 1
    report = json.loads(failing.output)["profiles"][0]
    assert (report["checked"], report["conforming"], report["rate"]) == (2, 1, 50.0)
    assert report["topIssues"][0]["severity"] == "error"

    unknown = CliRunner().invoke(app, ["conformance", "validate", "--server", server,
                                       "--profile", "http://example.org/StructureDefinition/none"])
    assert unknown.exit_code == 2 and "not known" in unknown.output

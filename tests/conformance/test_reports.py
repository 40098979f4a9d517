"""Reports: the TestReport resource (http://hl7.org/fhir/R4/testreport.html) is valid R4, JUnit
XML counts what happened, and the HTML report shows a person the verdict, the counts, each test's
status and the request/response behind a failure (rendered in headless Chromium)."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.reports.html import html_report
from conformance.reports.junit import junit_xml
from conformance.reports.testreport import build_test_report
from conformance.runner.results import ActionResult, Exchange, ScriptResult
from conformance.runner.results import TestResult as ResultOfTest
from profiles.validator import default_validator

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _exchange(status: int, body: bytes) -> Exchange:
    return Exchange("GET", "http://server.test/fhir/Patient/1", {"Accept": "application/fhir+json"},
                    status=status, response_headers={"content-type": "application/fhir+json"},
                    response_body=body, elapsed_ms=12.0)


def sample_results() -> list[ScriptResult]:
    ok = ScriptResult({"resourceType": "TestScript", "id": "good", "name": "GoodScript"}, "good.json",
                      started="2024-05-01T08:00:00Z", elapsed_ms=40)
    ok.setup = [ActionResult("operation", "create patient", "pass", "POST -> 201", _exchange(201, b"{}"), 5)]
    ok.tests = [ResultOfTest("t0", "Capabilities", "", [ActionResult("assert", "status 200", "pass", "ok")], 1),
                ResultOfTest("t1", "Read patient", "reads", [
        ActionResult("operation", "read", "pass", "GET -> 200", _exchange(200, b'{"resourceType":"Patient"}'), 4),
        ActionResult("assert", "status 200", "pass", "ok"),
        ActionResult("assert", "Last-Modified present", "warning", "header Last-Modified is absent")], 9)]
    ok.teardown = [ActionResult("operation", "delete", "pass", "DELETE -> 204", _exchange(204, b""), 3)]
    bad = ScriptResult({"resourceType": "TestScript", "id": "bad", "name": "BadScript <b>&</b>"}, "bad.xml",
                       started="2024-05-01T08:00:01Z", elapsed_ms=30)
    bad.tests = [
        ResultOfTest("t1", "Search finds 张三", "", [
            ActionResult("operation", "search", "pass", "GET -> 500",
                         _exchange(500, b'{"resourceType":"OperationOutcome","issue":[{"diagnostics":"boom-42"}]}'), 7),
            ActionResult("assert", "status 200", "fail", "expected the HTTP status equals '200', but it is '500'"),
            ActionResult("assert", "bundle", "skip", "skipped: status 200 did not pass")], 8),
        ResultOfTest("t2", "Broken expression", "", [ActionResult("assert", "expr", "error", "cannot parse FHIRPath")]),
        ResultOfTest("t3", "Skipped entirely", "",
                     [ActionResult("assert", "x", "skip", "skipped: setup did not pass")]),
    ]
    broken = ScriptResult({"resourceType": "TestScript", "id": "unreadable"}, "missing.json",
                          error="fixture p: x.json not found")
    return [ok, bad, broken]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_test_report_is_valid_r4(index: int) -> None:
    result = sample_results()[index]
    report = build_test_report(result, server="http://server.test/fhir")
    errors = [i for i in default_validator().validate(report) if i.severity in ("error", "fatal")]
    assert errors == []
    assert report["result"] == ("pass" if index == 0 else "fail")
    assert report["participant"][1]["uri"] == "http://server.test/fhir"


def test_test_report_carries_each_action_result_and_request_detail() -> None:
    ok, bad, _ = sample_results()
    report = build_test_report(bad, server="http://server.test/fhir")
    actions = [next(iter(a.values())) for t in report["test"] for a in t["action"]]
    assert [a["result"] for a in actions] == ["pass", "fail", "skip", "error", "skip"]
    assert actions[0]["detail"] == "http://server.test/fhir/Patient/1"
    assert "`GET http://server.test/fhir/Patient/1` → 500" in actions[0]["message"]
    assert report["score"] == 0.0
    good = build_test_report(ok, server="s")
    assert good["score"] == 100.0 and good["teardown"]["action"][0]["operation"]["result"] == "pass"


def test_junit_counts() -> None:
    root = ET.fromstring(junit_xml(sample_results()))
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("6", "1", "2", "1")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["GoodScript", "BadScript <b>&</b>", "unreadable"]
    failure = suites[1].find("testcase/failure")
    assert failure is not None and "500" in (failure.get("message") or "")


def test_html_is_self_contained_and_escaped() -> None:
    page = html_report(sample_results(), server="http://server.test/fhir")
    assert "<script" not in page and not re.search(r'(src|href)="http', page)
    assert "BadScript &lt;b&gt;&amp;&lt;/b&gt;" in page and "<b>&</b>" not in page
    assert "boom-42" in page and "Search finds 张三" in page


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=1280,900"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=60, check=False)


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Rows of RGB(A) pixels of an 8-bit non-interlaced PNG (what Chromium writes), unfiltered."""
    import struct
    import zlib

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, header = 8, b"", b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks += body
        position += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and color in (2, 6)
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(chunks)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 255
            elif kind == 2:
                line[x] = (line[x] + up) & 255
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line))
        previous = line
    return width, channels, rows


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_html_report_as_a_person_sees_it(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(html_report(sample_results(), server="http://server.test/fhir"), encoding="utf-8")
    dom = _chromium(["--dump-dom", page.as_uri()], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = re.sub(r"<[^>]+>", " ", dom.stdout)
    text = re.sub(r"\s+", " ", text)
    assert "FAILED" in text
    for words in ("1 passed", "1 failed", "2 errors", "1 warnings", "1 skipped", "Search finds 张三",
                  "expected the HTTP status equals '200', but it is '500'", "fixture p: x.json not found"):
        assert words in text, words
    # the failed test is expanded, the passing ones are not
    opened = re.findall(r'<details class="group (\w+)"( open)?', dom.stdout)
    assert ("fail", " open") in opened and ("pass", "") in opened

    shot = tmp_path / "shot.png"
    result = _chromium([f"--screenshot={shot}", page.as_uri()], tmp_path / "profile-shot")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    width, channels, rows = _png_pixels(shot)
    top = rows[:200]  # the header a person sees first: the red FAILED verdict
    red = sum(1 for row in top for x in range(0, width * channels, channels)
              if row[x] > 180 and row[x + 1] < 70 and row[x + 2] < 70)
    assert red > 2000, "the FAILED verdict is not visible at the top of the page"
    green = sum(1 for row in rows for x in range(0, width * channels, channels)
                if row[x] < 80 and 100 < row[x + 1] < 150 and row[x + 2] < 80)
    assert green > 100, "no PASS badge is visible"

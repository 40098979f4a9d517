"""``yidang ingest``: dry run writes the QC report; a real run stores into the embedded store, idempotently."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from server.cli import app
from server.load_runner import target
from tests.datasets import generate as g


def test_dry_run_writes_json_and_html_reports(tmp_path: Path) -> None:
    data = tmp_path / "person.csv"
    data.write_bytes(g.to_csv(g.person_rows(3, seed=61), "gb18030"))
    result = CliRunner().invoke(app, ["ingest", str(data), "--dataset", "person", "--dry-run",
                                      "--report", str(tmp_path / "qc")])
    assert result.exit_code == 0, result.output
    assert "accepted 3, rejected 5" in result.output
    report = json.loads((tmp_path / "qc" / "person.qc.json").read_text(encoding="utf-8"))
    assert report["records_total"] == 8 and len(report["issues"]) >= 5
    assert "<svg" in (tmp_path / "qc" / "person.qc.html").read_text(encoding="utf-8")


def test_ingest_into_the_embedded_store_twice(tmp_path: Path) -> None:
    data = tmp_path / "lab.json"
    data.write_bytes(g.to_json(g.lab_rows(g.people(2, seed=62))))
    args = ["ingest", str(data), "--dataset", "lab-report", "--data-dir", str(tmp_path / "db")]
    for _ in range(2):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "persons 2 in 1 transactions (persons failed 0)" in result.output

    async def versions() -> list[str]:
        async with target(None, tmp_path / "db", None) as client:
            found = (await client.get("/DiagnosticReport")).json()
        return [e["resource"]["meta"]["versionId"] for e in found["entry"]]

    assert asyncio.run(versions()) == ["1", "1"]


def test_unknown_dataset_fails(tmp_path: Path) -> None:
    data = tmp_path / "x.csv"
    data.write_bytes(b"a\n1\n")
    result = CliRunner().invoke(app, ["ingest", str(data), "--dataset", "nope", "--dry-run"])
    assert result.exit_code == 2
    assert "unknown data set" in result.output

"""The QC report tells what was stored (issue 17): written after delivery, per record stored / rejected by QC /
rejected by the server with the server's diagnostics, and totals equal to what a search of the store finds."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from server.cli import app
from server.load_runner import target
from tests.datasets import generate as g


def test_ingest_report_shows_what_the_store_holds(tmp_path: Path) -> None:
    people = g.people(4, seed=173)
    db = tmp_path / "db"

    async def prepare() -> None:  # the platform holds people[1]'s ID number twice: its conditional update fails
        async with target(None, db, None) as client:
            for _ in range(2):
                r = await client.post("/Patient", json={"resourceType": "Patient", "identifier": [
                    {"system": "urn:oid:2.16.156.10011.1.3", "value": people[1].id_number}]})
                assert r.status_code == 201, r.text

    asyncio.run(prepare())
    rows = [g.person_row(p, g.INSTITUTIONS[n % 2], 900 + n) for n, p in enumerate(people)]
    rows.append({**g.person_row(g.people(1, seed=174)[0], g.INSTITUTIONS[0], 950), "出生日期": "19900230"})
    data = tmp_path / "person.csv"
    data.write_bytes(g.to_csv(rows))
    result = CliRunner().invoke(app, ["ingest", str(data), "--dataset", "person", "--data-dir", str(db),
                                      "--report", str(tmp_path / "qc")])
    assert result.exit_code == 1, result.output  # a person failed
    report = json.loads((tmp_path / "qc" / "person.qc.json").read_text(encoding="utf-8"))
    assert report["delivered"] is True and "stored 3, failed 1" in result.output
    assert (report["records_total"], report["records_accepted"], report["records_rejected"]) == (5, 4, 1)
    assert (report["records_stored"], report["records_failed"]) == (3, 1)
    statuses = {r["record"]: r["status"] for r in report["records"]}
    assert statuses == {1: "stored", 2: "failed", 3: "stored", 4: "stored", 5: "rejected"}
    failed = next(r for r in report["records"] if r["status"] == "failed")
    assert failed["reasons"] and any("match" in reason or "412" in reason for reason in failed["reasons"]), failed
    (issue,) = [i for i in report["issues"] if i["code"] == "server-rejected"]
    assert issue["record"] == 2 and issue["severity"] == "error"
    by_source = report["sources"][g.INSTITUTIONS[1][0]]
    assert (by_source["records_accepted"], by_source["records_stored"], by_source["records_failed"]) == (2, 1, 1)

    async def stored() -> int:
        async with target(None, db, None) as client:
            found = 0
            for p in people:
                r = await client.get("/Patient", params={"identifier": f"urn:oid:2.16.156.10011.1.3|{p.id_number}",
                                                         "name": p.name})
                found += len(r.json().get("entry", []))
            return found

    assert asyncio.run(stored()) == report["records_stored"]
    assert "存储 stored: 3" in (tmp_path / "qc" / "person.qc.html").read_text(encoding="utf-8")


def test_a_dry_run_report_says_nothing_was_delivered(tmp_path: Path) -> None:
    data = tmp_path / "person.csv"
    data.write_bytes(g.to_csv(g.person_rows(2, seed=175)))
    result = CliRunner().invoke(app, ["ingest", str(data), "--dataset", "person", "--dry-run",
                                      "--report", str(tmp_path / "qc")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "qc" / "person.qc.json").read_text(encoding="utf-8"))
    assert report["delivered"] is False and report["records_stored"] == 0
    assert {r["status"] for r in report["records"]} == {"checked", "rejected"}

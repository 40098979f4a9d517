"""export-local returns exactly the data set asked for, with the asking institution's values (issue 17)."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

from typer.testing import CliRunner

from server.cli import app
from server.load_runner import target
from tests.datasets import generate as g

PEOPLE = g.people(3, seed=177)


def _ingest(tmp_path: Path, name: str, rows: list[dict[str, str]], db: Path) -> None:
    source = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}.csv"
    source.write_bytes(g.to_csv(rows))
    result = CliRunner().invoke(app, ["ingest", str(source), "--dataset", name, "--data-dir", str(db)])
    assert result.exit_code == 0, result.output


def _export(tmp_path: Path, name: str, db: Path, *args: str) -> list[dict[str, str]]:
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["export-local", "--dataset", name, "--out", str(out), "--data-dir", str(db),
                                      *args])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8-sig"))))


def test_a_followup_export_holds_only_its_own_programme(tmp_path: Path) -> None:
    db = tmp_path / "db"
    hypertension = g.followup_rows(PEOPLE)
    diabetes = [{**row, "随访记录编号": "T" + row["随访记录编号"]} for row in g.followup_rows(PEOPLE, diabetes=True)]
    _ingest(tmp_path, "hypertension-followup", hypertension, db)
    _ingest(tmp_path, "diabetes-followup", diabetes, db)
    for name, rows in (("hypertension-followup", hypertension), ("diabetes-followup", diabetes)):
        exported = _export(tmp_path, name, db)
        assert sorted(r["YD.FOLLOWUP.NO"] for r in exported) == sorted(r["随访记录编号"] for r in rows)

    async def may() -> int:  # a follow-up recorded with one date is that day: found by a month search
        async with target(None, db, None) as client:
            found = (await client.get("/Encounter", params={"date": "2024-04", "_count": "100"})).json()
            return len(found.get("entry", []))

    in_may = [r for r in hypertension + diabetes if r["随访日期"].startswith("202404")]
    assert in_may and asyncio.run(may()) == len(in_may)


def test_person_export_takes_the_asking_institutions_values(tmp_path: Path) -> None:
    db = tmp_path / "db"
    person = PEOPLE[0]
    first = {**g.person_row(person, g.INSTITUTIONS[0], 1), "建档日期": "20230105"}
    second = {**g.person_row(person, g.INSTITUTIONS[1], 2), "建档日期": "20240310"}
    passport = {**g.person_row(PEOPLE[1], g.INSTITUTIONS[0], 3), "身份证件类别代码": "03", "身份证件号码": "E1234567"}
    _ingest(tmp_path, "person", [first, passport], db)
    _ingest(tmp_path, "person", [second], db)
    for institution, row in ((g.INSTITUTIONS[0], first), (g.INSTITUTIONS[1], second)):
        exported = {r["DE02.01.030.00"]: r for r in _export(tmp_path, "person", db, "--source", institution[0])}
        back = exported[person.id_number]
        assert (back["YD.SOURCE"], back["DE08.10.052.00"], back["DE01.00.004.00"]) == (
            institution[0], institution[1], row["病案号"])
        assert (back["DE02.01.031.00"], back["YD.RECORD.DATE"]) == ("01", second["建档日期"])  # the latest record's
    exported = {r["DE02.01.030.00"]: r for r in _export(tmp_path, "person", db)}
    assert exported[person.id_number]["DE01.00.004.00"] == second["病案号"]  # the record's own (latest) institution
    assert (exported["E1234567"]["DE02.01.031.00"], exported["E1234567"]["YD.SOURCE"]) == ("03", g.INSTITUTIONS[0][0])

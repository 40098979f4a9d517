"""local → FHIR → local: every mapped element comes back unchanged through ``export-local``.

Ingest into a fresh embedded store with the CLI, export with the CLI, and compare each exported row
with the input row, element by element, for the elements the map stores (QC-only elements such as
身份证件类别代码 have no FHIR target and export empty).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from profiles.datasets import export, spec
from server.cli import app
from tests.datasets import generate as g

PEOPLE = g.people(3, seed=71)
CASES = {
    "person": [g.person_row(p, g.INSTITUTIONS[0], i) for i, p in enumerate(PEOPLE)],
    "encounter": g.encounter_rows(PEOPLE),
    "diagnosis": [{**r, "ICD-10版本": "国家临床版2.0"} for r in g.diagnosis_rows(PEOPLE)],
    "lab-report": g.lab_rows(PEOPLE),
    "exam-report": g.exam_rows(PEOPLE),
    "hypertension-followup": g.followup_rows(PEOPLE),
    "diabetes-followup": g.followup_rows(PEOPLE, diabetes=True),
}


def _key(dataset: str, row: dict[str, str]) -> tuple[str, ...]:
    keys = {"person": ("DE02.01.030.00",), "encounter": ("DE01.00.010.00", "DE01.00.014.00"),
            "diagnosis": ("DE01.00.010.00", "DE05.01.024.00"), "lab-report": ("DE01.00.018.00", "DE04.30.019.00"),
            "exam-report": ("YD.EXAM.NO",), "hypertension-followup": ("YD.FOLLOWUP.NO",),
            "diabetes-followup": ("YD.FOLLOWUP.NO",)}
    return tuple(row.get(k, "") for k in keys[dataset])


@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trip(tmp_path: Path, name: str) -> None:
    dataset = spec.load(name)
    headers = dataset.headers()
    source = tmp_path / f"{name}.csv"
    source.write_bytes(g.to_csv(CASES[name], "gb18030"))
    db = tmp_path / "db"
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(source), "--dataset", name, "--data-dir", str(db)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["export-local", "--dataset", name, "--out", str(out), "--data-dir", str(db)])
    assert result.exit_code == 0, result.output
    exported = {_key(name, r): r for r in csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8-sig")))}
    places = {e.id: (r.alias, r.path) for e in dataset.elements if (r := export.reader(e)) is not None}
    mapped = set(places)
    # elements sharing their FHIR place with another (就诊日期时间 / 入院日期时间 → period.start) come back
    # where either was given; the others must come back empty where the row left them empty
    shared = {e for e, place in places.items() if list(places.values()).count(place) > 1}
    columns = {headers[k] for row in CASES[name] for k in row if k in headers} & mapped - shared
    assert len(exported) == len(CASES[name])
    for row in CASES[name]:
        original = {headers[k]: v for k, v in row.items() if k in headers}
        back = exported[_key(name, original)]
        assert {k: v for k, v in original.items() if k in mapped} == {k: back[k] for k in original if k in mapped}
        # the columns this row leaves empty come back empty: a visit without a second drug must not get
        # another visit's (a MedicationStatement found through the shared Patient)
        assert {k: original.get(k, "") for k in columns} == {k: back[k] for k in columns}


def test_export_filters_by_source(tmp_path: Path) -> None:
    source = tmp_path / "p.csv"
    rows = [g.person_row(p, g.INSTITUTIONS[i % 2], i) for i, p in enumerate(g.people(4, seed=72))]
    source.write_bytes(g.to_csv(rows))
    runner = CliRunner()
    ingested = runner.invoke(app, ["ingest", str(source), "--dataset", "person", "--data-dir", str(tmp_path)])
    assert ingested.exit_code == 0, ingested.output
    out = tmp_path / "o.csv"
    code = g.INSTITUTIONS[1][0]
    result = runner.invoke(app, ["export-local", "--dataset", "person", "--out", str(out), "--data-dir", str(tmp_path),
                                 "--source", code])
    assert result.exit_code == 0, result.output
    exported = list(csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8-sig"))))
    assert len(exported) == 2 and {r["YD.SOURCE"] for r in exported} == {code}


def test_vital_signs_cannot_be_exported(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export-local", "--dataset", "vital-signs", "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 2


def test_export_leaves_out_resources_the_data_set_did_not_write(tmp_path: Path) -> None:
    """A Patient loaded from elsewhere (a Synthea bundle: no 身份证号, 健康卡号 or 档案编号) is no row."""
    import orjson

    runner = CliRunner()
    source = tmp_path / "p.csv"
    source.write_bytes(g.to_csv([g.person_row(p, g.INSTITUTIONS[0], i) for i, p in enumerate(g.people(2, seed=73))]))
    ingested = runner.invoke(app, ["ingest", str(source), "--dataset", "person", "--data-dir", str(tmp_path)])
    assert ingested.exit_code == 0, ingested.output
    foreign = tmp_path / "synthea.json"
    foreign.write_bytes(orjson.dumps({"resourceType": "Patient", "name": [{"family": "Smith"}],
                                      "identifier": [{"system": "https://github.com/synthetichealth/synthea",
                                                      "value": "5cbc121b-cd71-4428-b8b7-31e53eba8184"}]}))
    loaded = runner.invoke(app, ["load", str(foreign), "--data-dir", str(tmp_path)])
    assert loaded.exit_code == 0, loaded.output
    out = tmp_path / "o.csv"
    result = runner.invoke(app, ["export-local", "--dataset", "person", "--out", str(out), "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    exported = list(csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8-sig"))))
    assert len(exported) == 2 and all(r["DE02.01.030.00"] for r in exported)

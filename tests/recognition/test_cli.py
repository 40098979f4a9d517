"""``yidang recognition import``: the catalogue and qualifications from CSV into the local store,
idempotent, bad rows named with their line (exit 1), an unusable file refused (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from server.cli import app

CATALOG = ("item_system,item_code,item_name,category,validity_days,scope\n"
           "http://loinc.org,2345-7,血糖,laboratory,30,province\n"
           "http://loinc.org,718-7,血红蛋白,laboratory,many,city\n")
QUALS = ("institution,item_system,item_code,valid_from,valid_to\n"
         "NOBODY,http://loinc.org,2345-7,2025-01-01,2025-12-31\n")


def test_import_catalog_and_qualifications(tmp_path: Path) -> None:
    catalog, quals, bad = tmp_path / "c.csv", tmp_path / "q.csv", tmp_path / "bad.csv"
    catalog.write_text(CATALOG, encoding="utf-8")
    quals.write_text(QUALS, encoding="utf-8")
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    data = tmp_path / "data"
    runner = CliRunner()
    first = runner.invoke(app, ["recognition", "import", "--catalog", str(catalog), "--data-dir", str(data)])
    assert first.exit_code == 1, first.output
    assert "read 2, created 1, updated 0, unchanged 0, rejected 1" in first.stdout
    assert "c.csv:3: validity_days 'many'" in first.stderr
    again = runner.invoke(app, ["recognition", "import", "--catalog", str(catalog), "--data-dir", str(data), "--json"])
    summary = json.loads(again.stdout.splitlines()[0])
    assert (summary["created"], summary["unchanged"], summary["rejected"]) == (0, 1, 1)
    q = runner.invoke(app, ["recognition", "import", "--qualifications", str(quals), "--data-dir", str(data)])
    assert q.exit_code == 1 and "unknown institution 'NOBODY'" in q.stderr
    refused = runner.invoke(app, ["recognition", "import", "--catalog", str(bad), "--data-dir", str(data)])
    assert refused.exit_code == 2 and "lacks the column" in refused.stderr
    none = runner.invoke(app, ["recognition", "import", "--data-dir", str(data)])
    assert none.exit_code == 2

"""Lab-report rows that name the person only by ID number (no name, sex, birth date), on both stores:
linked to the Patient the platform knows, with a QC warning (not a rejection); refused when the
platform knows no such person."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.datasets import generate as g
from tests.identity.helpers import ID


async def ingest(client: httpx.AsyncClient, dataset: str, rows: list[dict[str, str]]) -> dict[str, Any]:
    r = await client.post("/$ingest-local", params={"dataset": dataset}, content=g.to_csv(rows),
                          headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    out = {p["name"]: p.get("valueInteger", p.get("valueString")) for p in r.json()["parameter"]}
    out["report"] = json.loads(out["report"])
    return out


def issues(report: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "code" in node and "severity" in node and "record" in node:
                found.append(node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(report)
    return found


async def test_id_only_lab_rows(client: httpx.AsyncClient) -> None:
    known, unknown = g.people(2, seed=1515)
    await ingest(client, "person", [g.person_row(known, g.INSTITUTIONS[0], 1)])
    rows = g.lab_rows([known, unknown], seed=1516)[:2]
    rows = [rows[0], {**g.lab_rows([unknown], seed=1517)[0]}]
    stripped = [{k: v for k, v in row.items() if k not in ("姓名", "性别代码", "出生日期")} for row in rows]
    out = await ingest(client, "lab-report", stripped)
    found = issues(out["report"])
    warned = [i for i in found if i["code"] == "person-by-identifier"]
    assert warned and all(i["severity"] == "warning" for i in warned)
    assert not [i for i in found if i["code"] == "required"]
    assert out["records_stored"] == 1 and out["records_failed"] == 1  # the unknown person is refused
    failed = [i for i in found if i["code"] == "server-rejected"]
    assert failed and "Patient?identifier" in failed[0]["message"]["en"]
    patients = (await client.get("/Patient", params={"identifier": f"{ID}|{known.id_number}"})).json()["entry"]
    assert len(patients) == 1
    pid = patients[0]["resource"]["id"]
    obs = (await client.get("/Observation", params={"subject": f"Patient/{pid}"})).json()
    assert obs.get("total", len(obs.get("entry", []))) >= 1
    assert (await client.get("/Patient", params={"identifier": f"{ID}|{unknown.id_number}"})).json()["entry"] == []

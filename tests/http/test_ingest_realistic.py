"""Acceptance (issue 17): a realistic multi-institution file set, ingested on both stores.

Four institutions, 48 persons plus three truly bad records; person files in UTF-8 and GB18030 with desk dates,
full-width digits and spaces, a passport beside a health card, a moved resident with two districts' 档案编号;
lab reports with local codes mapped to LOINC per institution, a glucose in mg/dL and an impossible unit;
diagnoses in the national clinical edition; hypertension follow-ups with the unmapped 随访方式 9 and diabetes
follow-ups beside them. Checked: no person lost for a fixable defect, every rejection reported with its reason,
the report's stored counts equal what a search of the store finds, lab results found by LOINC with UCUM units,
and export-local returning exactly the data set asked for.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx

from profiles.datasets import labmap
from server.export_local import fetch_rows
from tests.conftest import unique
from tests.datasets import generate as g

WIDE = str.maketrans("0123456789", "０１２３４５６７８９")


async def _ingest(client: httpx.AsyncClient, dataset: str, body: bytes) -> dict[str, Any]:
    r = await client.post("/$ingest-local", params={"dataset": dataset}, content=body,
                          headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    params = {p["name"]: p.get("valueInteger", p.get("valueString")) for p in r.json()["parameter"]}
    report: dict[str, Any] = json.loads(params["report"])
    for record in report["records"]:  # every record not stored says why
        assert record["status"] == "stored" or record["reasons"], record
    return report


async def _count(client: httpx.AsyncClient, type_: str, criteria: list[str]) -> int:
    found = 0
    for c in criteria:
        r = await client.get(f"/{type_}?{c}")
        assert r.status_code == 200, r.text
        found += len([e for e in r.json().get("entry", []) if e.get("search", {}).get("mode") != "outcome"])
    return found


def _rejected(report: dict[str, Any]) -> dict[int, str]:
    return {r["record"]: " ".join(r["reasons"]) for r in report["records"] if r["status"] != "stored"}


async def test_realistic_multi_institution_file_set(client: httpx.AsyncClient) -> None:
    institutions = [(unique("INS"), f"第{n + 1}社区卫生服务中心") for n in range(4)]
    people = g.people(48, seed=1800)
    bad = g.people(3, seed=1850)
    of = {p.id_number: institutions[n % 4] for n, p in enumerate(people)}
    for source, code in ((institutions[0][0], "GLU"), (institutions[1][0], "1001")):
        cm = labmap.conceptmap(source, [(code, "14771-0", "空腹血糖"), ("HGB", "718-7", "血红蛋白"),
                                        ("WBC", "6690-2", "白细胞计数")])
        assert (await client.put(f"/ConceptMap?url={cm['url']}", json=cm)).status_code in (200, 201)

    # --- persons: one file per institution, UTF-8 and GB18030, dirty desk input; three truly bad records
    passport = people[2]
    moved = people[0]  # registered at institution 0 (2023), moved to institution 1 (2024)
    files: dict[str, list[dict[str, str]]] = {code: [] for code, _ in institutions}
    for n, p in enumerate(people):
        inst = of[p.id_number]
        row = {**g.person_row(p, inst, 1800 + n), "DE01.00.009.00": unique("DA"), "建档日期": "20230301"}
        if n % 4 == 0:
            row["出生日期"] = f"{p.born.year}年{p.born.month}月{p.born.day}日"
        if n % 4 == 1:
            row["身份证件号码"] = p.id_number[:6].translate(WIDE) + " " + p.id_number[6:]
            row["本人电话号码"] = p.phone[:3] + " " + p.phone[3:].translate(WIDE)
        if n % 4 == 3:
            row["建档日期"] = "2023/3/1"
        if p is passport:
            row.update({"身份证件类别代码": "03", "身份证件号码": "G12345678"})
        files[inst[0]].append(row)
    files[institutions[1][0]].append({**g.person_row(moved, institutions[1], 1899), "DE01.00.009.00": unique("DB"),
                                      "建档日期": "20240301"})
    files[institutions[3][0]] += [
        {**g.person_row(bad[0], institutions[3], 1890), "身份证件号码": bad[0].id_number[:17] + "Y"},
        {**g.person_row(bad[1], institutions[3], 1891), "建档日期": "03/05/2023"},
        {**g.person_row(bad[2], institutions[3], 1892), "姓名": ""}]
    stored = 0
    for n, (code, rows) in enumerate(files.items()):
        report = await _ingest(client, "person", g.to_csv(rows, "gb18030" if n % 2 else "utf-8"))
        stored += report["records_stored"]
        if code == institutions[3][0]:
            reasons = _rejected(report)
            assert len(reasons) == 3 and "id-invalid" in reasons[len(rows) - 2] and "ambiguous" in reasons[
                len(rows) - 1] and "required" in reasons[len(rows)], reasons
        else:
            assert report["records_rejected"] == 0 and report["records_failed"] == 0, _rejected(report)
    keys = [f"identifier=urn:oid:2.16.156.10011.1.3|{p.id_number}" for p in people if p is not passport]
    keys.append("identifier=http://yidang.org/fhir/sid/id-document/03|G12345678")
    assert await _count(client, "Patient", keys) == len(people)  # no person lost
    assert stored == len(people) + 1  # the moved resident has a record at two institutions
    assert await _count(client, "Patient", [f"identifier=urn:oid:2.16.156.10011.1.3|{p.id_number}" for p in bad]) == 0
    patient = (await client.get("/Patient", params={"identifier": f"urn:oid:2.16.156.10011.1.3|{moved.id_number}"}
                                )).json()["entry"][0]["resource"]
    assert [i.get("use") for i in patient["identifier"] if i["system"] == "urn:oid:2.16.156.10011.1.2"] == ["old", None]

    # --- lab reports: local codes (mapped per institution) or LOINC given; mg/dL glucose; one impossible unit
    lab_people = [p for p in people if p is not passport][:16]
    lab = []
    for n, row in enumerate(g.lab_rows(lab_people)):
        inst = of[row["身份证件号码"]]
        row = {**row, "医疗卫生机构代码": inst[0], "报告单编号": f"{inst[0]}-{row['报告单编号']}"}
        if inst in institutions[:2]:
            row["LOINC编码"] = ""
            if inst is institutions[1] and row["检验项目代码"] == "GLU":
                row["检验项目代码"] = "1001"
        if n == 1:
            row.update({"检验定量结果": "99", "定量结果计量单位": "mg/dL"})
        lab.append(row)
    lab.append({**lab[1], "检验项目代码": "GLU2", "LOINC编码": "14771-0", "检验定量结果": "96",
                "定量结果计量单位": "mmol/L"})  # a mg/dL value labelled mmol/L
    report = await _ingest(client, "lab-report", g.to_csv(lab, "gb18030"))
    assert list(_rejected(report)) == [len(lab)] and "unit-mismatch" in _rejected(report)[len(lab)]
    keys = [f"identifier=http://yidang.org/fhir/sid/lab-result|{quote(r['医疗卫生机构代码'])}/{quote(r['报告单编号'])}/"
            f"{quote(r['检验项目代码'])}" for r in lab]
    assert await _count(client, "Observation", keys) == report["records_stored"] == len(lab) - 1
    glucose = []
    for p in lab_people:
        r = await client.get("/Observation", params={"code": "http://loinc.org|14771-0",
                                                     "subject.identifier": f"urn:oid:2.16.156.10011.1.3|{p.id_number}"})
        glucose += [e["resource"] for e in r.json().get("entry", [])]
    assert len(glucose) == len(lab_people)  # every institution's glucose, found by LOINC
    assert all(o["valueQuantity"]["system"] == "http://unitsofmeasure.org" and o["valueQuantity"]["code"] == "mmol/L"
               for o in glucose)
    assert sorted(o["valueQuantity"]["value"] for o in glucose if o.get("note"))[0] == 5.49  # 99 mg/dL

    # --- diagnoses: clinical-edition codes stored, one malformed code reported
    diagnosis = [{**row, "医疗卫生机构代码": of[row["身份证件号码"]][0], "门(急)诊号": unique("MZ"),
                  "诊断代码": ("I10.x00x002", "E11.900", "I10")[n % 3]} for n, row in
                 enumerate(g.diagnosis_rows(lab_people))]
    diagnosis.append({**diagnosis[0], "门(急)诊号": unique("MZ"), "诊断代码": "I 10"})
    report = await _ingest(client, "diagnosis", g.to_csv(diagnosis))
    assert list(_rejected(report)) == [len(diagnosis)] and report["records_stored"] == len(diagnosis) - 1
    clinical = await _count(client, "Condition", [
        f"code=http://yidang.org/fhir/CodeSystem/cn-icd10-clinical|I10.x00x002&subject.identifier="
        f"urn:oid:2.16.156.10011.1.3|{p.id_number}" for p in lab_people])
    assert clinical == len([r for r in diagnosis if r["诊断代码"] == "I10.x00x002"])

    # --- follow-ups: hypertension (half with 随访方式 9) and diabetes for the same persons; export one
    followed = [p for p in people[4:] if p is not passport][:12]
    hypertension = [{**row, "医疗卫生机构代码": of[row["身份证件号码"]][0], "随访记录编号": unique("H"),
                     "随访方式": "9" if n % 2 else row["随访方式"]} for n, row in enumerate(g.followup_rows(followed))]
    diabetes = [{**row, "医疗卫生机构代码": of[row["身份证件号码"]][0], "随访记录编号": unique("T")}
                for row in g.followup_rows(followed, diabetes=True)]
    for name, rows in (("hypertension-followup", hypertension), ("diabetes-followup", diabetes)):
        report = await _ingest(client, name, g.to_csv(rows))
        assert report["records_stored"] == len(rows) and report["records_rejected"] == 0
        assert await _count(client, "Encounter", [f"identifier=http://yidang.org/fhir/sid/followup|{r['随访记录编号']}"
                                                  for r in rows]) == len(rows)
    for code, _ in institutions:
        exported = await fetch_rows(client, "hypertension-followup", source=code)
        mine = sorted(r["随访记录编号"] for r in hypertension if r["医疗卫生机构代码"] == code)
        assert sorted(r["YD.FOLLOWUP.NO"] for r in exported) == mine
        assert {r["DE06.00.108.00"] for r in exported} <= {"1", "2", "3", "9"}

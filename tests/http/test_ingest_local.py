"""Local data sets over HTTP on both stores: ``$convert-local``, ``$ingest-local`` and the ingest sender.

Checks that conversion stores nothing, that ingest stores good records and reports rejected ones,
that re-ingesting the same file makes no new version (idempotent), that one person sent by two
institutions ends as one Patient with both institutions' 病案号, and that clinical data sets link
to that Patient.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from profiles.datasets import spec
from profiles.datasets.run import run
from server.ingest_local import send
from tests.conftest import unique
from tests.datasets import generate as g


def _params(body: dict[str, Any]) -> dict[str, Any]:
    return {p["name"]: p.get("valueInteger", p.get("valueString")) for p in body["parameter"]}


async def _patient(client: httpx.AsyncClient, number: str) -> dict[str, Any]:
    r = await client.get("/Patient", params={"identifier": f"urn:oid:2.16.156.10011.1.3|{number}"})
    entries = r.json().get("entry", [])
    assert len(entries) == 1, r.json()
    return entries[0]["resource"]


async def test_convert_local_stores_nothing(client: httpx.AsyncClient) -> None:
    people = g.people(3, seed=301)
    r = await client.post("/$convert-local", params={"dataset": "person"},
                          content=g.to_csv([g.person_row(p, g.INSTITUTIONS[0], i) for i, p in enumerate(people)]),
                          headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["type"] == "transaction"
    assert sum(e["resource"]["resourceType"] == "Patient" for e in bundle["entry"]) == 3
    assert r.headers["X-Records-Accepted"] == "3"
    missing = await client.get("/Patient", params={"identifier": f"urn:oid:2.16.156.10011.1.3|{people[0].id_number}"})
    assert missing.json().get("total", len(missing.json().get("entry", []))) == 0


async def test_convert_local_needs_a_known_dataset(client: httpx.AsyncClient) -> None:
    r = await client.post("/$convert-local", params={"dataset": "nope"}, content=b"a,b\n1,2\n",
                          headers={"Content-Type": "text/csv"})
    assert r.status_code == 400


async def test_ingest_local_stores_good_records_and_reports_rejected(client: httpx.AsyncClient) -> None:
    rows = g.person_rows(4, seed=302)
    body = g.to_csv(rows, "gb18030")
    r = await client.post("/$ingest-local", params={"dataset": "person"}, content=body,
                          headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    params = _params(r.json())
    assert (params["records_total"], params["records_accepted"], params["records_rejected"]) == (9, 4, 5)
    assert params["persons_failed"] == 0, params
    report = json.loads(params["report"])
    assert {i["code"] for i in report["issues"]} >= {"id-invalid", "format", "code-unknown", "required"}
    patient = await _patient(client, g.people(4, seed=302)[0].id_number)
    assert patient["name"][0]["text"] == rows[0]["姓名"]


async def test_reingest_is_idempotent(client: httpx.AsyncClient) -> None:
    body = g.to_json(g.person_rows(2, seed=303, faults=False))
    for _ in range(2):
        r = await client.post("/$ingest-local", params={"dataset": "person"}, content=body,
                              headers={"Content-Type": "application/json"})
        assert _params(r.json())["persons_failed"] == 0
    patient = await _patient(client, g.people(2, seed=303)[0].id_number)
    assert patient["meta"]["versionId"] == "1"


async def test_same_person_from_two_institutions_is_one_patient(client: httpx.AsyncClient) -> None:
    person = g.people(1, seed=304)[0]
    dataset = spec.load("person")
    for n, institution in enumerate(g.INSTITUTIONS):
        data = g.to_csv([g.person_row(person, institution, 500 + n)])
        sent = await send(client, run(dataset, data, kind="csv").conversion.bundles)
        assert sent.failed == 0, sent.errors
    patient = await _patient(client, person.id_number)
    record_numbers = {(i["value"], i["assigner"]["identifier"]["value"]) for i in patient["identifier"]
                      if i["system"] == "urn:oid:2.16.156.10011.1.13"}
    assert record_numbers == {("BA000500", g.INSTITUTIONS[0][0]), ("BA000501", g.INSTITUTIONS[1][0])}
    again = await send(client, run(dataset, g.to_csv([g.person_row(person, g.INSTITUTIONS[1], 501)]),
                                   kind="csv").conversion.bundles)
    assert again.failed == 0
    assert (await _patient(client, person.id_number))["meta"]["versionId"] == patient["meta"]["versionId"]


async def test_lab_report_links_to_the_person(client: httpx.AsyncClient) -> None:
    people = g.people(2, seed=305)
    xml = g.to_xml(g.lab_rows(people), spec.load("lab-report").headers())
    for _ in range(2):
        r = await client.post("/$ingest-local", params={"dataset": "lab-report"}, content=xml,
                              headers={"Content-Type": "application/xml"})
        assert _params(r.json())["persons_failed"] == 0, r.json()
    patient = await _patient(client, people[0].id_number)
    reports = (await client.get("/DiagnosticReport", params={"subject": f"Patient/{patient['id']}"})).json()
    assert len(reports["entry"]) == 1
    report = reports["entry"][0]["resource"]
    assert len(report["result"]) == len(g.LAB_ITEMS) and report["meta"]["versionId"] == "1"


async def test_clinical_datasets_ingest(client: httpx.AsyncClient) -> None:
    people = g.people(3, seed=306)
    for name, rows in (("encounter", g.encounter_rows(people)), ("diagnosis", g.diagnosis_rows(people)),
                       ("vital-signs", g.vital_rows(people)), ("exam-report", g.exam_rows(people)),
                       ("diabetes-followup", g.followup_rows(people, diabetes=True))):
        r = await client.post("/$ingest-local", params={"dataset": name, "source": g.INSTITUTIONS[0][0]},
                              content=g.to_csv(rows), headers={"Content-Type": "text/csv"})
        params = _params(r.json())
        assert params["records_accepted"] == len(rows) and params["persons_failed"] == 0, params
    patient = await _patient(client, people[2].id_number)
    encounters = (await client.get("/Encounter", params={"subject": f"Patient/{patient['id']}"})).json()
    classes = sorted(e["resource"]["class"]["code"] for e in encounters["entry"])
    assert len(classes) == 3 and "IMP" in classes  # the inpatient stay and two follow-up visits
    episodes = (await client.get("/EpisodeOfCare", params={"patient": f"Patient/{patient['id']}"})).json()
    assert len(episodes["entry"]) == 1


async def test_a_failing_person_in_a_batch_fails_alone(client: httpx.AsyncClient) -> None:
    """Persons go several to a transaction; when one cannot be stored (here: the platform already
    holds two Patients with its ID number, so its conditional update matches twice), the batch is
    retried person by person: that person is reported, the others are stored."""
    people = g.people(5, seed=307)
    for _ in range(2):
        r = await client.post("/Patient", json={"resourceType": "Patient", "identifier": [
            {"system": "urn:oid:2.16.156.10011.1.3", "value": people[2].id_number}]})
        assert r.status_code == 201, r.text
    data = g.to_csv([g.person_row(p, g.INSTITUTIONS[0], 700 + i) for i, p in enumerate(people)])
    sent = await send(client, run(spec.load("person"), data, kind="csv").conversion.bundles)
    assert (sent.persons, sent.failed, sent.transactions) == (5, 1, 6), sent.errors
    assert "more than one" in sent.errors[0] or "412" in sent.errors[0] or "matches" in sent.errors[0]
    for person in (*people[:2], *people[3:]):
        assert (await _patient(client, person.id_number))["name"][0]["text"] == person.name
    r = await client.post("/$ingest-local", params={"dataset": "person"}, content=data,
                          headers={"Content-Type": "text/csv"})
    params = _params(r.json())
    assert (params["persons"], params["persons_failed"]) == (5, 1), params


async def _ingest(client: httpx.AsyncClient, dataset: str, rows: list[dict[str, str]]) -> None:
    r = await client.post("/$ingest-local", params={"dataset": dataset}, content=g.to_csv(rows),
                          headers={"Content-Type": "text/csv"})
    params = _params(r.json())
    assert params["records_rejected"] == 0 and params["persons_failed"] == 0, params


async def _visit_of_diagnosis(client: httpx.AsyncClient, person: g.Person) -> dict[str, Any]:
    patient = await _patient(client, person.id_number)
    conditions = (await client.get("/Condition", params={"subject": f"Patient/{patient['id']}"})).json()["entry"]
    assert len(conditions) == 1
    reference = conditions[0]["resource"]["encounter"]["reference"]
    r = await client.get("/" + reference)
    assert r.status_code == 200, (reference, r.text)
    assert [i["system"] for i in r.json()["identifier"]] == ["urn:oid:2.16.156.10011.1.11"]
    return r.json()


async def test_diagnosis_links_its_visit_whichever_data_set_comes_first(client: httpx.AsyncClient) -> None:
    """Condition.encounter is a literal reference to the visit: a diagnosis that comes before its
    visit creates a placeholder Encounter under the visit's key, which the encounter data set then
    fills in place; a diagnosis that comes after links to the stored visit without touching it."""
    first, later = g.people(1, seed=308), g.people(1, seed=309)

    def visit(rows: list[dict[str, str]], number: str) -> list[dict[str, str]]:
        return [{**row, "门(急)诊号": number} for row in rows]

    number = unique("MZ")
    await _ingest(client, "diagnosis", visit(g.diagnosis_rows(first), number))
    placeholder = await _visit_of_diagnosis(client, first[0])
    assert placeholder["status"] == "unknown"
    await _ingest(client, "encounter", visit(g.encounter_rows(first), number))
    stored = await _visit_of_diagnosis(client, first[0])
    assert (stored["id"], stored["status"], stored["class"]["code"]) == (placeholder["id"], "finished", "AMB")

    number = unique("MZ")
    await _ingest(client, "encounter", visit(g.encounter_rows(later), number))
    await _ingest(client, "diagnosis", visit(g.diagnosis_rows(later), number))
    stored = await _visit_of_diagnosis(client, later[0])
    assert (stored["status"], stored["meta"]["versionId"]) == ("finished", "1")


async def test_a_stored_person_with_the_same_id_number_and_another_name_is_reported(
        client: httpx.AsyncClient) -> None:
    """Across files and institutions: the platform holds the ID number under another name. The record
    is still stored (a warning, as within a file), and the report names the stored Patient."""
    person = g.people(1, seed=310)[0]
    first = g.to_csv([g.person_row(person, g.INSTITUTIONS[0], 800)])
    renamed = g.to_csv([{**g.person_row(person, g.INSTITUTIONS[1], 801), "姓名": person.name + "林"}])
    for data, expected in ((first, []), (renamed, [(1, "stored-id-different-name", "warning")])):
        r = await client.post("/$ingest-local", params={"dataset": "person"}, content=data,
                              headers={"Content-Type": "text/csv"})
        params = _params(r.json())
        assert params["persons_failed"] == 0, params
        report = json.loads(params["report"])
        found = [(i["record"], i["code"], i["severity"]) for i in report["issues"] if i["code"].startswith("stored")]
        assert found == expected
        if expected:
            (issue,) = [i for i in report["issues"] if i["code"] == "stored-id-different-name"]
            assert person.name in issue["message"]["zh"] and issue["element"] == "DE02.01.039.00"
            source = report["sources"][g.INSTITUTIONS[1][0]]
            assert [i["code"] for i in source["issues"]] == ["stored-id-different-name"]
    patient = await _patient(client, person.id_number)
    assert patient["name"][0]["text"] == person.name + "林"  # the latest record's name, as documented


async def test_a_person_without_id_number_like_a_stored_one_is_a_likely_duplicate(client: httpx.AsyncClient) -> None:
    """No ID number, another health card, but the name, sex, birth date and phone of a stored person:
    stored as its own Patient (it may be another person), and reported as a likely duplicate naming
    the stored Patient, on every ingest of that record."""
    person = g.people(1, seed=311)[0]
    await _ingest(client, "person", [g.person_row(person, g.INSTITUTIONS[0], 810)])
    stored = await _patient(client, person.id_number)
    card = unique("H")
    row = {**g.person_row(person, g.INSTITUTIONS[1], 811), "身份证件号码": "", "居民健康卡号": card,
           "DE01.00.009.00": unique("R")}
    for _ in range(2):
        r = await client.post("/$ingest-local", params={"dataset": "person"}, content=g.to_csv([row]),
                              headers={"Content-Type": "text/csv"})
        report = json.loads(_params(r.json())["report"])
        found = [i for i in report["issues"] if i["code"] == "stored-likely-duplicate"]
        assert [(i["record"], i["severity"]) for i in found] == [(1, "warning")], report["issues"]
        assert f"Patient/{stored['id']}" in found[0]["message"]["en"]
    r = await client.get("/Patient", params={"identifier": f"urn:oid:2.16.156.10011.1.19|{card}"})
    assert len(r.json()["entry"]) == 1


async def test_followup_drugs_adherence_and_next_visit_link_to_the_visit(client: httpx.AsyncClient) -> None:
    """服药依从性, 用药 and 下次随访日期 are stored as an Observation, MedicationStatements and a CarePlan
    that reference the follow-up visit (searchable by it); re-ingesting the file versions none of them."""
    people = g.people(2, seed=310)  # numbers of their own: other tests of this module store SF0000000 …
    rows = [{**row, "随访记录编号": "M" + row["随访记录编号"]} for row in g.followup_rows(people)]
    for _ in range(2):
        await _ingest(client, "hypertension-followup", rows)
    row = rows[1]  # a visit with two drugs
    assert row["药物名称2"]
    r = await client.get("/Encounter", params={"identifier": f"http://yidang.org/fhir/sid/followup|{row['随访记录编号']}"})
    visit = r.json()["entry"][0]["resource"]
    reference = f"Encounter/{visit['id']}"
    statements = (await client.get("/MedicationStatement", params={"context": reference})).json()["entry"]
    drugs = sorted((s["resource"]["medicationCodeableConcept"]["text"], s["resource"]["dosage"][0]["text"])
                   for s in statements)
    assert drugs == sorted([(row["药物名称1"], row["用法用量1"]), (row["药物名称2"], row["用法用量2"])])
    plans = (await client.get("/CarePlan", params={"encounter": reference})).json()["entry"]
    assert [p["resource"]["activity"][0]["detail"]["scheduledPeriod"]["start"] for p in plans] == [
        f"{row['下次随访日期'][:4]}-{row['下次随访日期'][4:6]}-{row['下次随访日期'][6:]}"]
    adherence = (await client.get("/Observation", params={
        "encounter": reference, "code": "http://yidang.org/fhir/CodeSystem/cn-chronic-care|medication-adherence"}))
    assert [o["resource"]["valueCodeableConcept"]["coding"][0]["code"] for o in adherence.json()["entry"]] == [
        row["服药依从性"]]
    assert {s["resource"]["meta"]["versionId"] for s in [*statements, *plans]} == {"1"}


async def test_ingested_chinese_names_are_found_by_family_and_given(client: httpx.AsyncClient) -> None:
    import dataclasses

    generated = g.people(2, seed=311)
    people = [dataclasses.replace(generated[0], name="欧阳娜娜"), dataclasses.replace(generated[1], name="王芳")]
    rows = [g.person_row(p, g.INSTITUTIONS[0], i) for i, p in enumerate(people)]
    r = await client.post("/$ingest-local", params={"dataset": "person"}, content=g.to_csv(rows),
                          headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    ouyang = await _patient(client, people[0].id_number)
    assert ouyang["name"][0] == {"text": "欧阳娜娜", "family": "欧阳", "given": ["娜娜"]}
    wang = await _patient(client, people[1].id_number)
    assert wang["name"][0]["family"] == "王" and wang["name"][0]["given"] == ["芳"]
    found = await client.get("/Patient", params={"family:exact": "欧阳", "given": "娜娜",
                                                 "identifier": f"urn:oid:2.16.156.10011.1.3|{people[0].id_number}"})
    assert [e["resource"]["id"] for e in found.json().get("entry", [])] == [ouyang["id"]]


async def test_an_unmapped_code_loses_no_person(client: httpx.AsyncClient) -> None:
    """随访方式 9 (其他) has no v3 class: the visit is stored with the map's fallback class AMB and the original
    coding in type, and the report warns on each such record (issue 17: 14 of 34 persons were lost)."""
    people = g.people(3, seed=1701)
    rows = [{**row, "随访记录编号": unique("U"), "随访方式": "9" if n % 2 else row["随访方式"]}
            for n, row in enumerate(g.followup_rows(people))]
    r = await client.post("/$ingest-local", params={"dataset": "hypertension-followup"}, content=g.to_csv(rows),
                          headers={"Content-Type": "text/csv"})
    params = _params(r.json())
    assert (params["records_accepted"], params["persons_failed"]) == (6, 0), params
    report = json.loads(params["report"])
    assert sorted(i["record"] for i in report["issues"] if i["code"] == "code-unmapped") == [2, 4, 6]
    visit = (await client.get("/Encounter", params={
        "identifier": f"http://yidang.org/fhir/sid/followup|{rows[1]['随访记录编号']}"})).json()["entry"][0]["resource"]
    assert visit["class"]["code"] == "AMB" and visit["type"][0]["coding"][0]["code"] == "9"


async def test_clinical_edition_diagnoses_are_stored_and_found_by_either_code(client: httpx.AsyncClient) -> None:
    """国家临床版 2.0 codes pass QC and the cn-condition profile on write (issue 17: 10 of 40 lost); a Condition is
    found by its clinical code and by its ICD-10 category; a malformed code is rejected with its reason."""
    people = g.people(3, seed=1702)
    number = unique("MZ")
    rows = [{**row, "门(急)诊号": f"{number}{n}", "诊断代码": code}
            for n, (row, code) in enumerate(zip(g.diagnosis_rows(people), ["I10.x00x002", "E11.900", "I 10"],
                                                strict=True))]
    r = await client.post("/$ingest-local", params={"dataset": "diagnosis"}, content=g.to_csv(rows),
                          headers={"Content-Type": "text/csv"})
    params = _params(r.json())
    assert (params["records_accepted"], params["records_rejected"], params["persons_failed"]) == (2, 1, 0), params
    report = json.loads(params["report"])
    assert [(i["record"], i["code"]) for i in report["issues"] if i["severity"] == "error"] == [(3, "format")]
    patient = await _patient(client, people[0].id_number)
    for code in ("http://yidang.org/fhir/CodeSystem/cn-icd10-clinical|I10.x00x002",
                 "urn:oid:2.16.156.10011.2.3.3.11|I10"):
        found = (await client.get("/Condition", params={"subject": f"Patient/{patient['id']}", "code": code})).json()
        assert len(found["entry"]) == 1, (code, found)


async def test_the_ingest_report_shows_what_was_stored(client: httpx.AsyncClient) -> None:
    """The report is built after delivery: a person the server refuses is ``failed`` with the server's
    OperationOutcome diagnostics, the counts equal what a search finds (issue 17: "accepted 66", 14 then failed)."""
    people = g.people(3, seed=1703)
    for _ in range(2):
        r = await client.post("/Patient", json={"resourceType": "Patient", "identifier": [
            {"system": "urn:oid:2.16.156.10011.1.3", "value": people[0].id_number}]})
        assert r.status_code == 201, r.text
    rows = [g.person_row(p, g.INSTITUTIONS[0], 1700 + n) for n, p in enumerate(people)]
    rows.append({**rows[1], "身份证件号码": "123"})
    r = await client.post("/$ingest-local", params={"dataset": "person"}, content=g.to_csv(rows),
                          headers={"Content-Type": "text/csv"})
    params = _params(r.json())
    assert (params["records_accepted"], params["records_rejected"]) == (3, 1), params
    assert (params["records_stored"], params["records_failed"], params["persons_failed"]) == (2, 1, 1), params
    report = json.loads(params["report"])
    assert [(x["record"], x["status"]) for x in report["records"]] == [
        (1, "failed"), (2, "stored"), (3, "stored"), (4, "rejected")]
    assert any("id-invalid" in reason for reason in report["records"][3]["reasons"])
    assert report["records"][0]["reasons"] and "server-rejected" in report["records"][0]["reasons"][0]
    found = 0
    for p in people:
        r = await client.get("/Patient", params={"identifier": f"urn:oid:2.16.156.10011.1.3|{p.id_number}",
                                                 "name": p.name})
        found += len(r.json().get("entry", []))
    assert found == report["records_stored"]


async def test_desk_input_is_normalised_and_stored(client: httpx.AsyncClient) -> None:
    """Full-width digits and spaces in ID and phone numbers, 年月日 and slashed dates, a passport beside a health
    card, a ``<0.1`` lab value: stored normalised with the originals kept; ``03/05/2024`` is refused, not guessed."""
    people = g.people(3, seed=1704)
    wide = people[0].id_number.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    rows = [{**g.person_row(people[0], g.INSTITUTIONS[0], 1710), "身份证件号码": f"{wide[:6]} {wide[6:]}",
             "出生日期": f"{people[0].born.year}年{people[0].born.month}月{people[0].born.day}日",
             "本人电话号码": "１３９ １２３４ ５６７８", "建档日期": "2023/1/5"},
            {**g.person_row(people[1], g.INSTITUTIONS[0], 1711), "身份证件类别代码": "03", "身份证件号码": "E7654321",
             "居民健康卡号": unique("H")},
            {**g.person_row(people[2], g.INSTITUTIONS[0], 1712), "建档日期": "03/05/2023"}]
    r = await client.post("/$ingest-local", params={"dataset": "person"}, content=g.to_csv(rows),
                          headers={"Content-Type": "text/csv"})
    params = _params(r.json())
    assert (params["records_stored"], params["records_rejected"], params["persons_failed"]) == (2, 1, 0), params
    report = json.loads(params["report"])
    assert "ambiguous" in report["records"][2]["reasons"][0]
    patient = await _patient(client, people[0].id_number)
    assert patient["telecom"][0]["value"] == "13912345678" and patient["birthDate"] == people[0].born.isoformat()
    national = next(i for i in patient["identifier"] if i["system"] == "urn:oid:2.16.156.10011.1.3")
    assert national["_value"]["extension"][0]["valueString"] == f"{wide[:6]} {wide[6:]}"
    found = (await client.get("/Patient", params={"identifier": "http://yidang.org/fhir/sid/id-document/03|E7654321"}))
    (passport_holder,) = [e["resource"] for e in found.json()["entry"]]
    assert not [i for i in passport_holder["identifier"] if i["system"] == "urn:oid:2.16.156.10011.1.3"]
    lab = [{**row, "检验定量结果": "<0.1" if row["检验项目代码"] == "WBC" else row["检验定量结果"],
            "报告单编号": unique("JY")} for row in g.lab_rows(people[:1])]
    r = await client.post("/$ingest-local", params={"dataset": "lab-report"}, content=g.to_csv(lab),
                          headers={"Content-Type": "text/csv"})
    assert _params(r.json())["records_stored"] == len(lab), r.json()
    found = await client.get("/Observation", params={"subject": f"Patient/{patient['id']}", "value-quantity": "lt0.2"})
    assert [e["resource"]["valueQuantity"]["comparator"] for e in found.json()["entry"]] == ["<"]


async def test_lab_results_of_every_institution_are_found_by_loinc_with_ucum_units(client: httpx.AsyncClient) -> None:
    """Each institution's local lab codes map to LOINC through its ConceptMap, loaded through the FHIR API; a
    glucose in mg/dL is converted to mmol/L (the original in a note), a mg/dL value labelled mmol/L is refused."""
    from profiles.datasets import labmap

    people = g.people(2, seed=1705)
    sources = [unique("LAB"), unique("LAB")]
    for source, code in zip(sources, ("GLU", "0101"), strict=True):
        cm = labmap.conceptmap(source, [(code, "14771-0", "空腹血糖"), (code + "H", "718-7", "血红蛋白")])
        r = await client.put(f"/ConceptMap?url={cm['url']}", json=cm)
        assert r.status_code in (200, 201), r.text
    files = []
    for n, (source, code, value, unit) in enumerate(((sources[0], "GLU", "96", "mg/dL"),
                                                     (sources[1], "0101", "5.6", "mmol/L"))):
        files.append([{**g._who(people[n], 0), "医疗卫生机构代码": source, "报告单编号": unique("JY"),
                       "检验项目代码": code, "检验项目名称": "空腹血糖", "检验定量结果": value,
                       "定量结果计量单位": unit,
                       "标本采样日期时间": "20240502T080000", "检验报告日期": "20240502T140000"}])
    files[1].append({**files[1][0], "检验项目代码": "0101H", "检验项目名称": "血红蛋白", "检验定量结果": "13.5",
                     "定量结果计量单位": "mmol/L"})  # not a haemoglobin unit: refused with the reason
    for rows in files:
        r = await client.post("/$ingest-local", params={"dataset": "lab-report"}, content=g.to_csv(rows),
                              headers={"Content-Type": "text/csv"})
        params = _params(r.json())
        assert params["persons_failed"] == 0 and params["records_stored"] == 1, params
    assert "unit-mismatch" in json.loads(params["report"])["records"][1]["reasons"][0]
    values = {}
    for person in people:
        patient = await _patient(client, person.id_number)
        found = (await client.get("/Observation", params={"subject": f"Patient/{patient['id']}",
                                                          "code": "http://loinc.org|14771-0"})).json()
        (observation,) = [e["resource"] for e in found["entry"]]
        quantity = observation["valueQuantity"]
        assert (quantity["system"], quantity["code"]) == ("http://unitsofmeasure.org", "mmol/L")
        values[person.id_number] = quantity["value"]
        assert len(observation["code"]["coding"]) == 2  # the local code stays
    assert values == {people[0].id_number: 5.33, people[1].id_number: 5.6}
    found = await client.get("/Observation", params={"code": "http://loinc.org|14771-0",
                                                     "value-quantity": "5.33|http://unitsofmeasure.org|mmol/L",
                                                     "subject.identifier": f"urn:oid:2.16.156.10011.1.3|"
                                                                           f"{people[0].id_number}"})
    assert len(found.json()["entry"]) == 1


async def test_a_moved_resident_keeps_one_current_record_number_and_one_open_enrolment(
        client: httpx.AsyncClient) -> None:
    """Two districts' 健康档案编号 for one person: the older (by 建档日期) kept as ``use: old`` with its end, the
    Patient managed by the new district, the old district's hypertension EpisodeOfCare closed (finished, end)."""
    person = g.people(1, seed=1706)[0]
    districts = [(unique("D"), "旧区社区卫生服务中心", unique("A"), "20190301"),
                 (unique("D"), "新区社区卫生服务中心", unique("B"), "20240301")]
    for n, (code, name, number, since) in enumerate(districts):
        row = {**g.person_row(person, (code, name), 1720 + n), "DE01.00.009.00": number, "建档日期": since}
        await _ingest(client, "person", [row])
        visits = [{**v, "医疗卫生机构代码": code, "城乡居民健康档案编号": number, "随访记录编号": unique("F"),
                   "随访日期": f"{2019 + 5 * n}0{4 + k}01", "下次随访日期": f"{2019 + 5 * n}0{7 + k}01"}
                  for k, v in enumerate(g.followup_rows([person]))]
        await _ingest(client, "hypertension-followup", visits)
    patient = await _patient(client, person.id_number)
    numbers = {i["value"]: i for i in patient["identifier"] if i["system"] == "urn:oid:2.16.156.10011.1.2"}
    old, new = numbers[districts[0][2]], numbers[districts[1][2]]
    assert old["use"] == "old" and old["period"] == {"start": "2019-03-01", "end": "2024-03-01"}
    assert "use" not in new and new["period"] == {"start": "2024-03-01"}
    managing = await client.get("/" + patient["managingOrganization"]["reference"])
    assert managing.json()["identifier"][0]["value"] == districts[1][0]
    episodes = (await client.get("/EpisodeOfCare", params={"patient": f"Patient/{patient['id']}"})).json()["entry"]
    by_status = {e["resource"]["status"]: e["resource"] for e in episodes}
    assert sorted(by_status) == ["active", "finished"] and len(episodes) == 2
    assert districts[0][2] in by_status["finished"]["identifier"][0]["value"]
    assert by_status["finished"]["period"]["end"] == "2024-04-01"

"""Patient/$match ranking and grades, Patient/$merge and $unmerge, on both stores: the happy paths,
the bad input (unknown identifier system, merge into itself, unknown patients, nothing half-written)
and access (an institution cannot merge; $match answers only what the caller may see)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from server.identity import merge as merge_module
from server.stores.base import Store
from tests.conftest import unique
from tests.identity.helpers import (
    CARD,
    ID,
    MRN,
    as_,
    bad_check,
    id_number,
    make_app_client,
    match_params,
    patient,
    ref_params,
)

GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"


@pytest_asyncio.fixture(scope="module")
async def api(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    async with make_app_client(store, unique("mm").replace("-", "")) as client:
        yield client


async def create(api: httpx.AsyncClient, resource: dict[str, Any], who: str = "platform") -> str:
    r = await api.post(f"/{resource['resourceType']}", json=resource, headers=as_(who))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def match(api: httpx.AsyncClient, resource: dict[str, Any], who: str = "platform", **more: Any
                ) -> httpx.Response:
    return await api.post("/Patient/$match", json=match_params(resource, **more), headers=as_(who))


def ranked(bundle: dict[str, Any]) -> list[tuple[str, str, float]]:
    return [(e["resource"]["id"], e["search"]["extension"][0]["valueCode"], e["search"]["score"])
            for e in bundle.get("entry", [])]


def unique_name(base: str) -> str:
    return base + unique("")[-6:]


async def test_match_ranks_and_grades(api: httpx.AsyncClient) -> None:
    name, born = unique_name("张伟"), "1991-03-04"
    number, phone = id_number(born), "1390" + unique("")[-7:].replace("-", "0")[:7]
    certain = await create(api, patient(name=name, born=born, ids=[(ID, number)], phone=phone))
    probable = await create(api, patient(name=name, born=born, phone=phone))                # no ID, phone agrees
    possible = await create(api, patient(name=name, born=born))                             # weak match
    homophone = await create(api, patient(name=name.replace("张", "章"), born=born, phone=phone))
    other_id = await create(api, patient(name=name, born=born, ids=[(ID, id_number(born))]))  # another person
    r = await match(api, patient(name=name, born=born, ids=[(ID, number)], phone=phone))
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["type"] == "searchset" and bundle["total"] == len(bundle["entry"])
    got = ranked(bundle)
    ids = [i for i, _, _ in got]
    assert ids[0] == certain and got[0][1] == "certain"
    grades = {i: g for i, g, _ in got}
    assert grades[probable] == "probable" and grades[possible] == "possible"
    assert grades[homophone] == "possible"  # pinyin-equal name: a plus, less than the same characters
    assert other_id not in grades  # a different valid ID number is a different person
    scores = [s for _, _, s in got]
    assert scores == sorted(scores, reverse=True)
    assert dict((i, s) for i, _, s in got)[homophone] < dict((i, s) for i, _, s in got)[probable]
    # onlyCertainMatches and count
    only = ranked((await match(api, patient(name=name, born=born, ids=[(ID, number)]),
                               onlyCertainMatches=True)).json())
    assert [(i, g) for i, g, _ in only] == [(certain, "certain")]
    assert len(ranked((await match(api, patient(name=name, born=born, phone=phone), count=2)).json())) == 2


async def test_bad_check_digit_never_certain(api: httpx.AsyncClient) -> None:
    born, name = "1982-02-02", unique_name("刘洋")
    wrong = bad_check(id_number(born))
    stored = await create(api, patient(name=name, born=born, ids=[(ID, wrong)]))
    got = ranked((await match(api, patient(name=name, born=born, ids=[(ID, wrong)]))).json())
    assert got and got[0][0] == stored and got[0][1] != "certain"
    card = unique("card")
    by_card = await create(api, patient(name=unique_name("周"), born=born, ids=[(CARD, card)]))
    got = ranked((await match(api, patient(name=None, born=None, gender=None, ids=[(CARD, card)]))).json())
    assert got[0][:2] == (by_card, "certain")


@pytest.mark.parametrize("body, problem", [
    ({"resourceType": "Parameters", "parameter": []}, "resource"),
    (match_params({"resourceType": "Observation"}), "resource"),
    (match_params(patient(ids=[("urn:oid:2.16.156.10011.1.999", "1")])), "2.16.156.10011.1.999"),
    (match_params(patient(ids=[("mrn", "1")])), "absolute URI"),
    (match_params(patient(), count=0), "count"),
])
async def test_match_bad_input(api: httpx.AsyncClient, body: dict[str, Any], problem: str) -> None:
    r = await api.post("/Patient/$match", json=body)
    assert r.status_code == 400, r.text
    assert problem in r.json()["issue"][0]["diagnostics"]


async def test_match_only_visible(api: httpx.AsyncClient) -> None:
    name, born = unique_name("孙丽"), "1975-05-05"
    number = id_number(born, male=False)
    mine = await create(api, patient(name=name, born=born, gender="female", ids=[(ID, number)]), who="a")
    theirs = await create(api, patient(name=name, born=born, gender="female", ids=[(ID, number)]), who="b")
    query = patient(name=name, born=born, gender="female", ids=[(ID, number)])
    seen_by_a = {i for i, _, _ in ranked((await match(api, query, who="a")).json())}
    assert seen_by_a == {mine}
    assert {i for i, _, _ in ranked((await match(api, query)).json())} == {mine, theirs}


async def merge_call(api: httpx.AsyncClient, who: str = "platform", **values: Any) -> httpx.Response:
    return await api.post("/Patient/$merge", json=ref_params(**values), headers=as_(who))


async def duplicates(api: httpx.AsyncClient) -> dict[str, str]:
    born = "1960-01-01"
    number, mrn = id_number(born), unique("mrn")
    target = await create(api, patient(name=unique_name("黄"), born=born, ids=[(ID, number)]))
    source = await create(api, patient(name=unique_name("黄"), born=born, ids=[(MRN, mrn)]))
    obs = await create(api, {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                             "subject": {"reference": f"Patient/{source}"},
                             "performer": [{"reference": f"Patient/{source}"}]})
    enc = await create(api, {"resourceType": "Encounter", "status": "finished",
                             "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                             "subject": {"reference": f"Patient/{source}"}})
    untouched = await create(api, {"resourceType": "Observation", "status": "final", "code": {"text": "y"},
                                   "subject": {"reference": f"Patient/{target}"}})
    return {"target": target, "source": source, "obs": obs, "enc": enc, "untouched": untouched, "mrn": mrn,
            "number": number}


async def versions(api: httpx.AsyncClient, refs: list[str]) -> dict[str, str]:
    return {ref: (await api.get(f"/{ref}")).json()["meta"]["versionId"] for ref in refs}


async def test_merge_preview_merge_and_unmerge(api: httpx.AsyncClient) -> None:
    d = await duplicates(api)
    refs = [f"Patient/{d['target']}", f"Patient/{d['source']}", f"Observation/{d['obs']}", f"Encounter/{d['enc']}",
            f"Observation/{d['untouched']}"]
    before = {ref: (await api.get(f"/{ref}")).json() for ref in refs}
    # preview: what would change, nothing written
    r = await merge_call(api, source_patient=f"Patient/{d['source']}", target_patient=f"Patient/{d['target']}",
                         preview=True)
    assert r.status_code == 200, r.text
    out = {p["name"]: p for p in r.json()["parameter"]}
    assert "provenance" not in out
    text = " ".join(i["diagnostics"] for i in out["outcome"]["resource"]["issue"])
    assert f"Observation/{d['obs']}" in text and f"Encounter/{d['enc']}" in text and "preview" in text
    assert {(i["system"], i["value"], i.get("use")) for i in out["result"]["resource"]["identifier"]} >= {
        (MRN, d["mrn"], "old")}
    assert await versions(api, refs) == {ref: "1" for ref in refs}
    # the merge, by the target's identifier
    r = await merge_call(api, source_patient=f"Patient/{d['source']}",
                         target_patient_identifier={"system": ID, "value": d["number"]})
    assert r.status_code == 200, r.text
    provenance = {p["name"]: p for p in r.json()["parameter"]}["provenance"]["valueReference"]["reference"]
    obs = (await api.get(f"/Observation/{d['obs']}")).json()
    assert obs["subject"]["reference"] == f"Patient/{d['target']}"
    assert obs["performer"][0]["reference"] == f"Patient/{d['target']}"
    assert (await api.get(f"/Encounter/{d['enc']}")).json()["subject"]["reference"] == f"Patient/{d['target']}"
    source = (await api.get(f"/Patient/{d['source']}")).json()
    assert source["active"] is False
    assert source["link"] == [{"other": {"reference": f"Patient/{d['target']}"}, "type": "replaced-by"}]
    assert source["identifier"] == before[f"Patient/{d['source']}"]["identifier"]  # kept
    target = (await api.get(f"/Patient/{d['target']}")).json()
    assert {"system": MRN, "value": d["mrn"], "use": "old"} in target["identifier"]
    assert {"other": {"reference": f"Patient/{d['source']}"}, "type": "replaces"} in target["link"]
    assert (await api.get(f"/Observation/{d['untouched']}")).json()["meta"]["versionId"] == "1"
    record = (await api.get(f"/{provenance}")).json()
    assert record["activity"]["coding"][0]["code"] == "merge"
    assert {t["reference"] for t in record["target"]} == {f"{r}/_history/2" for r in refs[:4]}
    assert record["agent"][0]["who"]["identifier"]["value"] == "ops"
    # history kept: version 1 of the source is still there
    assert (await api.get(f"/Patient/{d['source']}/_history/1")).status_code == 200
    # the Person now links the target only (the source is merged away)
    persons = (await api.get("/Person", params={"identifier": f"{ID}|{d['number']}"})).json()["entry"]
    assert [lk["target"]["reference"] for lk in persons[0]["resource"]["link"]] == [f"Patient/{d['target']}"]
    # merging the merged-away source again is refused
    again = await merge_call(api, source_patient=f"Patient/{d['source']}", target_patient=f"Patient/{d['target']}")
    assert again.status_code == 400 and "already merged" in again.text
    # unmerge: every changed resource back to its exact previous content
    r = await api.post("/Patient/$unmerge", json=ref_params(provenance=provenance))
    assert r.status_code == 200, r.text
    for ref in refs:
        now = (await api.get(f"/{ref}")).json()
        expected_version = "1" if ref.endswith(d["untouched"]) else "3"
        assert now["meta"]["versionId"] == expected_version
        assert {k: v for k, v in now.items() if k != "meta"} == {k: v for k, v in before[ref].items() if k != "meta"}
    # a second unmerge would lose the restoration: refused, nothing written
    r = await api.post("/Patient/$unmerge", json=ref_params(source_patient=f"Patient/{d['source']}"))
    assert r.status_code == 409, r.text


async def test_merge_bad_input(api: httpx.AsyncClient) -> None:
    d = await duplicates(api)
    r = await merge_call(api, source_patient=f"Patient/{d['source']}", target_patient=f"Patient/{d['source']}")
    assert r.status_code == 400 and "itself" in r.json()["issue"][0]["diagnostics"]
    r = await merge_call(api, source_patient="Patient/nope-" + unique(), target_patient=f"Patient/{d['target']}")
    assert r.status_code == 404 and "source-patient" in r.text
    r = await merge_call(api, source_patient=f"Patient/{d['source']}",
                         target_patient_identifier={"system": ID, "value": id_number()})
    assert r.status_code == 404
    r = await merge_call(api, target_patient=f"Patient/{d['target']}")
    assert r.status_code == 400
    r = await merge_call(api, source_patient=f"Patient/{d['source']}", target_patient=f"Patient/{d['target']}",
                         result_patient={"resourceType": "Patient", "id": "other"})
    assert r.status_code == 400 and "result-patient" in r.text
    r = await api.get("/Patient/$merge")
    assert r.status_code == 405
    r = await merge_call(api, "a", source_patient=f"Patient/{d['source']}", target_patient=f"Patient/{d['target']}")
    assert r.status_code == 403  # a platform operation
    assert (await api.get(f"/Observation/{d['obs']}")).json()["meta"]["versionId"] == "1"


async def test_merge_is_all_or_nothing(api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    d = await duplicates(api)

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(merge_module, "provenance", broken)  # fails after every other write of the session
    r = await merge_call(api, source_patient=f"Patient/{d['source']}", target_patient=f"Patient/{d['target']}")
    assert r.status_code == 500  # an unexpected failure: the session is rolled back whole
    for ref in (f"Patient/{d['target']}", f"Patient/{d['source']}", f"Observation/{d['obs']}",
                f"Encounter/{d['enc']}"):
        body = (await api.get(f"/{ref}")).json()
        assert body["meta"]["versionId"] == "1", ref

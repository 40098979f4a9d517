"""Person linking on both stores: one Person per resident across institutions, kept in step with every
Patient create/update/delete, race-safe, never from a weak match or a mistyped ID number."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from server.stores.base import Store
from tests.conftest import unique
from tests.identity.helpers import CARD, ID, MRN, as_, bad_check, id_number, make_app_client, patient


@pytest_asyncio.fixture(scope="module")
async def api(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    async with make_app_client(store, unique("id").replace("-", "")) as client:
        yield client


async def create(api: httpx.AsyncClient, who: str, resource: dict[str, Any]) -> str:
    r = await api.post("/Patient", json=resource, headers=as_(who))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def persons(api: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    r = await api.get("/Person", params=params)
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", [])]


def targets(person: dict[str, Any]) -> dict[str, str]:
    return {lk["target"]["reference"].split("/")[1]: lk["assurance"] for lk in person["link"]}


async def test_two_institutions_one_person(api: httpx.AsyncClient) -> None:
    number = id_number("1990-01-01", male=True)
    pa = await create(api, "a", patient(ids=[(ID, number), (MRN, unique("mrn"))]))
    pb = await create(api, "b", patient(name="张伟", born=None, gender=None, ids=[(ID, number)]))
    found = await persons(api, identifier=f"{ID}|{number}")
    assert len(found) == 1
    assert targets(found[0]) == {pa: "level4", pb: "level3"}  # birth date + sex confirm pa's number
    assert found[0]["identifier"] == [{"system": ID, "value": number}]  # strong identifiers only
    assert [p["id"] for p in await persons(api, patient=f"Patient/{pb}")] == [found[0]["id"]]
    # the institutions' own Patients were not rewritten
    assert (await api.get(f"/Patient/{pa}")).json()["meta"]["versionId"] == "1"


async def test_health_card_links_and_bridges(api: httpx.AsyncClient) -> None:
    card, number = unique("card"), id_number("1985-11-20", male=False)
    p1 = await create(api, "a", patient(name="李娜", born="1985-11-20", gender="female", ids=[(CARD, card)]))
    p2 = await create(api, "b", patient(name="李娜", born="1985-11-20", gender="female", ids=[(ID, number)]))
    assert len(await persons(api, identifier=f"{CARD}|{card}")) == 1
    assert len(await persons(api, identifier=f"{ID}|{number}")) == 1
    # a third record carries both: the two Persons are one person after all
    p3 = await create(api, "b", patient(name="李娜", born="1985-11-20", gender="female",
                                        ids=[(ID, number), (CARD, card)]))
    by_card, by_id = await persons(api, identifier=f"{CARD}|{card}"), await persons(api, identifier=f"{ID}|{number}")
    assert len(by_card) == 1 and by_card == by_id
    assert set(targets(by_card[0])) == {p1, p2, p3}
    assert {(i["system"], i["value"]) for i in by_card[0]["identifier"]} == {(ID, number), (CARD, card)}


async def test_update_relinks_and_delete_unlinks(api: httpx.AsyncClient) -> None:
    first, second = id_number("1970-05-05"), id_number("1970-05-05")
    other = await create(api, "a", patient(born="1970-05-05", ids=[(ID, first)]))
    moved = await create(api, "b", patient(born="1970-05-05", ids=[(ID, first)]))
    old_person = (await persons(api, identifier=f"{ID}|{first}"))[0]
    assert set(targets(old_person)) == {other, moved}
    body = patient(born="1970-05-05", ids=[(ID, second)], id=moved)  # the desk corrected the number
    r = await api.put(f"/Patient/{moved}", json=body, headers=as_("b"))
    assert r.status_code == 200, r.text
    assert set(targets((await persons(api, identifier=f"{ID}|{first}"))[0])) == {other}
    new_person = await persons(api, patient=f"Patient/{moved}")
    assert len(new_person) == 1 and new_person[0]["id"] != old_person["id"]
    assert new_person[0]["identifier"] == [{"system": ID, "value": second}]
    # deleting the Patient empties its Person, which is deleted (its history stays)
    assert (await api.delete(f"/Patient/{moved}", headers=as_("b"))).status_code in (200, 204)
    assert await persons(api, identifier=f"{ID}|{second}") == []
    gone = await api.get(f"/Person/{new_person[0]['id']}")
    assert gone.status_code == 410
    history = await api.get(f"/Person/{new_person[0]['id']}/_history")
    assert len(history.json()["entry"]) == 2


async def test_bad_check_digit_and_weak_matches_never_link(api: httpx.AsyncClient) -> None:
    wrong = bad_check(id_number("1966-06-06"))
    p1 = await create(api, "a", patient(name="王芳", born="1966-06-06", gender="female", ids=[(ID, wrong)]))
    p2 = await create(api, "b", patient(name="王芳", born="1966-06-06", gender="female", ids=[(ID, wrong)]))
    assert await persons(api, patient=f"Patient/{p1}") == []
    assert await persons(api, patient=f"Patient/{p2}") == []
    assert await persons(api, identifier=f"{ID}|{wrong}") == []
    # same name, birth date, sex and phone but no strong identifier: not linked
    w1 = await create(api, "a", patient(name="赵敏", born="1977-07-07", gender="female", phone="13800000001"))
    await create(api, "b", patient(name="赵敏", born="1977-07-07", gender="female", phone="13800000001"))
    assert await persons(api, patient=f"Patient/{w1}") == []


async def test_operator_link_is_kept(api: httpx.AsyncClient) -> None:
    number = id_number("1950-02-02")
    linked = await create(api, "a", patient(born="1950-02-02", ids=[(ID, number)]))
    weak = await create(api, "b", patient(born="1950-02-02"))
    person = (await persons(api, patient=f"Patient/{linked}"))[0]
    person["link"].append({"target": {"reference": f"Patient/{weak}"}, "assurance": "level2"})
    r = await api.put(f"/Person/{person['id']}", json=person)  # an operator confirms the weak match
    assert r.status_code == 200, r.text
    r = await api.put(f"/Patient/{linked}", json=patient(born="1950-02-02", ids=[(ID, number)], id=linked,
                                                          active=True), headers=as_("a"))
    assert r.status_code == 200
    after = (await persons(api, patient=f"Patient/{linked}"))[0]
    assert targets(after) == {linked: "level4", weak: "level2"}


@pytest.mark.parametrize("round_", range(2))
async def test_concurrent_registration_yields_one_person(api: httpx.AsyncClient, round_: int) -> None:
    number = id_number("1988-08-08", male=False)
    body = patient(name="陈静", born="1988-08-08", gender="female", ids=[(ID, number)])
    results = await asyncio.gather(*(api.post("/Patient", json=body, headers=as_(who))
                                     for who in ("a", "b", "a", "b", "a", "b")))
    assert [r.status_code for r in results] == [201] * 6
    found = await persons(api, identifier=f"{ID}|{number}")
    assert len(found) == 1
    assert set(targets(found[0])) == {r.json()["id"] for r in results}


async def test_person_is_platform_record(api: httpx.AsyncClient) -> None:
    number = id_number("1960-03-03")
    pa = await create(api, "a", patient(born="1960-03-03", ids=[(ID, number)]))
    await create(api, "b", patient(born="1960-03-03", ids=[(ID, number)]))
    r = await api.get("/Person", params={"patient": f"Patient/{pa}"}, headers=as_("a"))
    assert r.status_code == 403  # a Person names other institutions' Patients
    person = (await persons(api, patient=f"Patient/{pa}"))[0]
    assert (await api.get(f"/Person/{person['id']}", headers=as_("a"))).status_code == 403
    r = await api.put(f"/Person/{person['id']}", json=person, headers=as_("a"))
    assert r.status_code == 403

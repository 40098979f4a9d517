"""``conformance validate`` (conformance/profile_conformance.py) against Yidang in-process: resources
are fetched page by page, validated against regional profiles, and rates and grouped issues
reported; unknown profiles and unreadable answers are errors."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from conformance import profile_conformance as pc
from profiles.regional import BASE as REGIONAL
from profiles.regional import examples
from server.stores.base import Store
from tests.conftest import BASE, make_client, unique

PATIENT = REGIONAL + "cn-patient"
CONDITION = REGIONAL + "cn-condition"


@pytest.fixture(scope="module")
async def yidang(store: Store) -> httpx.AsyncClient:
    async with make_client(store) as client:
        yield client


async def _post(client: httpx.AsyncClient, resource: dict[str, Any]) -> None:
    response = await client.post(f"{BASE}/{resource['resourceType']}", content=orjson.dumps(resource),
                                 headers={"Content-Type": "application/fhir+json"})
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
async def loaded(yidang: httpx.AsyncClient) -> str:
    """Every valid Patient example, and two patients that do not claim the profile and break it."""
    family = unique("pc")
    for example in examples():
        if example.valid and example.resource["resourceType"] == "Patient":
            await _post(yidang, example.resource)
    for n in range(2):  # no identifier, name, birthDate: three errors each against cn-patient
        await _post(yidang, {"resourceType": "Patient", "gender": "male", "address": [{"text": f"{family}-{n}"}]})
    return family


async def test_rates_and_grouped_issues(yidang: httpx.AsyncClient, loaded: str) -> None:
    valid = sum(1 for e in examples() if e.valid and e.resource["resourceType"] == "Patient")
    [report] = await pc.run(BASE, [PATIENT], count=1000, client=yidang)
    assert report.type == "Patient"
    assert len(report.checked) >= valid + 2
    assert report.conforming == len(report.checked) - 2
    assert 0 < report.rate < 100
    top = report.top_issues()
    assert top[0]["severity"] == "error" and top[0]["count"] == 2
    assert {i["expression"] for i in top if i["count"] == 2 and i["severity"] == "error"} >= {
        "Patient.identifier", "Patient.name", "Patient.birthDate"}
    text = pc.to_text([report], server=BASE)
    assert f"{PATIENT} (Patient): {report.conforming}/{len(report.checked)} conform" in text
    data = orjson.loads(pc.to_json([report], server=BASE))
    assert data["profiles"][0]["conforming"] == report.conforming
    assert sum(r["errors"] > 0 for r in data["profiles"][0]["resources"]) == 2


async def test_next_links_are_followed_up_to_count(yidang: httpx.AsyncClient, loaded: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pc, "PAGE", 1)
    fetched = await pc.fetch(yidang, BASE, "Patient", 3)
    assert len(fetched) == 3 and len({r["id"] for r in fetched}) == 3


async def test_type_option_and_empty_result(yidang: httpx.AsyncClient) -> None:
    [report] = await pc.run(BASE, [CONDITION], type_="Linkage", client=yidang)
    assert report.type == "Linkage" and report.checked == [] and report.rate == 100.0


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ("http://example.org/StructureDefinition/unknown", "not known"),
        (REGIONAL + "cn-ethnicity", "does not profile a resource"),
    ],
)
async def test_unusable_profiles(yidang: httpx.AsyncClient, profile: str, message: str) -> None:
    with pytest.raises(pc.ConformanceError, match=message):
        await pc.run(BASE, [profile], client=yidang)


async def test_a_server_without_the_type_is_an_error() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=Starlette(routes=[]))) as client:
        with pytest.raises(pc.ConformanceError, match="404 without a Bundle"):
            await pc.run("http://none.test/fhir", [PATIENT], client=client)

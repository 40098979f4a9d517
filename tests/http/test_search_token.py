"""token search over HTTP on both stores (http://hl7.org/fhir/R4/search.html#token).

``code``, ``system|code``, ``|code``, ``system|``; ``:not`` (resources without the value match
too), ``:text``, ``:of-type``, ``:missing``; values from Identifier, Coding, CodeableConcept,
ContactPoint, boolean, code and id elements.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.http.searching import load, search_ids

LOINC = "http://loinc.org"
ID_CARD = "urn:oid:2.16.156.10011.1.3"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
VITALS = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}

RESOURCES: list[dict[str, Any]] = [
    {"resourceType": "Patient", "id": "p1", "gender": "female", "active": True,
     "identifier": [{"system": ID_CARD, "value": "110101199003070011",
                     "type": {"coding": [{"system": V2_0203, "code": "NI"}], "text": "National ID"}}],
     "telecom": [{"system": "phone", "value": "13800138000"}, {"system": "email", "value": "a@example.cn"}]},
    {"resourceType": "Patient", "id": "p2", "gender": "male", "active": False,
     "identifier": [{"system": "http://hospital.a/mrn", "value": "MRN-1",
                     "type": {"coding": [{"system": V2_0203, "code": "MR"}]}}],
     "telecom": [{"system": "phone", "value": "13900139000"}]},
    {"resourceType": "Patient", "id": "p3"},
    {"resourceType": "Observation", "id": "o1", "status": "final", "category": [VITALS],
     "code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic blood pressure"}],
              "text": "BP sys"}},
    {"resourceType": "Observation", "id": "o2", "status": "preliminary", "code": {"coding": [{"code": "8480-6"}]}},
    {"resourceType": "Observation", "id": "o3", "status": "final",
     "code": {"coding": [{"system": "http://other.org", "code": "X1"}, {"system": LOINC, "code": "2339-0"}]}},
    {"resourceType": "Observation", "id": "o4", "status": "amended", "code": {"text": "Free text only"}},
]

OBSERVATIONS: list[tuple[str, set[str]]] = [
    ("code=8480-6", {"o1", "o2"}),
    ("code=8480-6X", set()),
    ("code=8480", set()),
    (f"code={LOINC}|8480-6", {"o1"}),
    ("code=|8480-6", {"o2"}),
    (f"code={LOINC}|", {"o1", "o3"}),
    ("code=http://other.org|8480-6", set()),
    ("code=http://other.org|X1", {"o3"}),
    (f"code={LOINC}|2339-0,http://other.org|X1", {"o3"}),
    ("code=X1,8480-6", {"o1", "o2", "o3"}),
    ("code=X1&code=2339-0", {"o3"}),
    ("code=X1&code=8480-6", set()),
    ("code:not=8480-6", {"o3", "o4"}),
    (f"code:not={LOINC}|8480-6", {"o2", "o3", "o4"}),
    ("code:not=8480-6,X1", {"o4"}),
    ("code:text=systolic", {"o1"}),
    ("code:text=SYSTOLIC blood", {"o1"}),
    ("code:text=bp", {"o1"}),
    ("code:text=free", {"o4"}),
    ("code:text=nothing", set()),
    ("status=final", {"o1", "o3"}),
    ("status=final,amended", {"o1", "o3", "o4"}),
    ("status=final&status=amended", set()),
    ("status:not=final", {"o2", "o4"}),
    ("category=vital-signs", {"o1"}),
    ("category:missing=true", {"o2", "o3", "o4"}),
    ("category:missing=false", {"o1"}),
    ("_id=o1,o3", {"o1", "o3"}),
    ("combo-code=8480-6", {"o1", "o2"}),
]

PATIENTS: list[tuple[str, set[str]]] = [
    ("identifier=110101199003070011", {"p1"}),
    (f"identifier={ID_CARD}|110101199003070011", {"p1"}),
    (f"identifier={ID_CARD}|MRN-1", set()),
    ("identifier=http://hospital.a/mrn|", {"p2"}),
    ("identifier=|MRN-1", set()),
    (f"identifier:of-type={V2_0203}|NI|110101199003070011", {"p1"}),
    (f"identifier:of-type={V2_0203}|MR|110101199003070011", set()),
    (f"identifier:of-type={V2_0203}|MR|MRN-1", {"p2"}),
    ("identifier:of-type=|MR|MRN-1", {"p2"}),
    ("identifier:text=national", {"p1"}),
    ("identifier:text=passport", set()),
    ("identifier:missing=true", {"p3"}),
    ("identifier:not=MRN-1", {"p1", "p3"}),
    ("gender=female", {"p1"}),
    ("gender=female,male", {"p1", "p2"}),
    ("gender:not=male", {"p1", "p3"}),
    ("gender:missing=true", {"p3"}),
    ("gender:missing=false", {"p1", "p2"}),
    ("active=true", {"p1"}),
    ("active=false", {"p2"}),
    ("active:not=true", {"p2", "p3"}),
    ("active:missing=true", {"p3"}),
    ("telecom=13800138000", {"p1"}),
    ("telecom=phone|13800138000", {"p1"}),
    ("telecom=email|13800138000", set()),
    ("telecom=phone|", {"p1", "p2"}),
    ("email=a@example.cn", {"p1"}),
    ("email=13800138000", set()),
    ("phone=13900139000", {"p2"}),
    ("phone=139", set()),
    ("_id=p2", {"p2"}),
]


@pytest_asyncio.fixture(scope="module", autouse=True)
async def resources(client: httpx.AsyncClient) -> None:
    await load(client, RESOURCES)


@pytest.mark.parametrize(("query", "expected"), OBSERVATIONS, ids=[q for q, _ in OBSERVATIONS])
async def test_observation_tokens(client: httpx.AsyncClient, query: str, expected: set[str]) -> None:
    assert await search_ids(client, "/Observation", query) == expected


@pytest.mark.parametrize(("query", "expected"), PATIENTS, ids=[q for q, _ in PATIENTS])
async def test_patient_tokens(client: httpx.AsyncClient, query: str, expected: set[str]) -> None:
    assert await search_ids(client, "/Patient", query) == expected

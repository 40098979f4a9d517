"""composite search over HTTP on both stores (http://hl7.org/fhir/R4/search.html#composite).

The components must hold within one element: ``code-value-quantity`` pairs Observation.code with
Observation.value, ``component-code-value-quantity`` a component's code with its own value, and
``combo-code-value-quantity`` either; a code of the panel with the value of a component never
matches.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.http.searching import load, outcome, search_ids

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def coding(code: str) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code}]}


def mmhg(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}


def obs(id_: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": id_, "status": "final", "code": coding(code), **extra}


RESOURCES: list[dict[str, Any]] = [
    obs("c1", "8480-6", valueQuantity=mmhg(140)),
    obs("c2", "8480-6", valueQuantity=mmhg(120)),
    obs("c3", "85354-9", component=[{"code": coding("8480-6"), "valueQuantity": mmhg(150)},
                                    {"code": coding("8462-4"), "valueQuantity": mmhg(90)}]),
    obs("c4", "8462-4", valueQuantity=mmhg(150)),
    obs("c5", "72166-2", valueCodeableConcept={"coding": [{"system": "http://snomed.info/sct",
                                                           "code": "8517006"}]}),
    obs("c6", "8310-5", valueQuantity={"value": 37.5, "unit": "Cel", "system": UCUM, "code": "Cel"},
        effectiveDateTime="2024-03-15"),
    obs("c8", "21112-8", valueDateTime="1990-03-07"),
    obs("c7", "8302-2", valueQuantity={"value": 1.75, "unit": "m", "system": UCUM, "code": "m"}),
]

CASES: list[tuple[str, set[str]]] = [
    (f"code-value-quantity={LOINC}|8480-6$gt130", {"c1"}),
    ("code-value-quantity=8480-6$gt130", {"c1"}),
    ("code-value-quantity=8480-6$lt130", {"c2"}),
    ("code-value-quantity=8480-6$ge120", {"c1", "c2"}),
    ("code-value-quantity=8480-6$150", set()),
    ("code-value-quantity=8462-4$150", {"c4"}),
    ("code-value-quantity=8462-4$90", set()),
    (f"code-value-quantity={LOINC}|8480-6$140|{UCUM}|mm[Hg]", {"c1"}),
    ("code-value-quantity=8480-6$140||mm[Hg]", {"c1"}),
    (f"code-value-quantity={LOINC}|8480-6$140|{UCUM}|kg", set()),
    ("code-value-quantity=http://other.org|8480-6$140", set()),
    (f"code-value-quantity=8302-2$175|{UCUM}|cm", {"c7"}),
    ("code-value-quantity=8480-6$gt130,8462-4$gt130", {"c1", "c4"}),
    ("component-code-value-quantity=8480-6$150", {"c3"}),
    ("component-code-value-quantity=8462-4$90", {"c3"}),
    ("component-code-value-quantity=8462-4$gt100", set()),
    ("component-code-value-quantity=8480-6$90", set()),
    ("component-code-value-quantity=8480-6$140", set()),
    ("combo-code-value-quantity=8480-6$150", {"c3"}),
    ("combo-code-value-quantity=8480-6$140", {"c1"}),
    ("combo-code-value-quantity=8480-6$ge120", {"c1", "c2", "c3"}),
    ("combo-code-value-quantity=85354-9$150", set()),
    ("combo-code-value-quantity=8462-4$150", {"c4"}),
    ("code-value-concept=72166-2$http://snomed.info/sct|8517006", {"c5"}),
    ("code-value-concept=72166-2$8517006", {"c5"}),
    ("code-value-concept=72166-2$1234", set()),
    ("code-value-date=21112-8$1990-03", {"c8"}),
    ("code-value-date=21112-8$gt1990-03-07", set()),
    ("code-value-date=21112-8$lt1991", {"c8"}),
    ("code-value-date=8310-5$2024-03", set()),  # the effective date is not the value
    ("code-value-quantity=8310-5$37.5", {"c6"}),
    ("code-value-quantity=8310-5$37", set()),
]

MALFORMED = ["8480-6", "8480-6$", "$140", "8480-6$abc", "8480-6$140$1", "8480-6$xx140"]


@pytest_asyncio.fixture(scope="module", autouse=True)
async def resources(client: httpx.AsyncClient) -> None:
    await load(client, RESOURCES)


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[q for q, _ in CASES])
async def test_composite_search(client: httpx.AsyncClient, query: str, expected: set[str]) -> None:
    assert await search_ids(client, "/Observation", query) == expected


@pytest.mark.parametrize("value", MALFORMED)
async def test_malformed_composite_is_400(client: httpx.AsyncClient, value: str) -> None:
    body = outcome(await client.get("/Observation", params={"code-value-quantity": value}), 400)
    assert any("code-value-quantity" in i.get("expression", ()) for i in body["issue"]), body

"""number and quantity search over HTTP on both stores
(http://hl7.org/fhir/R4/search.html#number, #quantity).

``eq`` (and ``ne``/``ap``) honour the precision of the search value (``5.4`` is [5.35, 5.45),
``100`` is [99.5, 100.5), ``1e2`` is [50, 150)); quantities take ``value|system|code`` and
``value||unit``, and UCUM units are compared in canonical form (70 kg = 70000 g).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.http.searching import load, outcome, search_ids

UCUM = "http://unitsofmeasure.org"


def risk(id_: str, probability: float) -> dict[str, Any]:
    return {"resourceType": "RiskAssessment", "id": id_, "status": "final", "subject": {"reference": "Patient/p"},
            "prediction": [{"probabilityDecimal": probability}]}


def obs(id_: str, quantity: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": id_, "status": "final", "code": {"text": "q"},
            "valueQuantity": quantity}


RESOURCES: list[dict[str, Any]] = [
    {"resourceType": "Patient", "id": "p"},
    risk("n1", 5.4), risk("n2", 5.35), risk("n3", 5.449), risk("n4", 5.45), risk("n5", 100), risk("n6", 99.5),
    risk("n7", -3), risk("n8", 0.0054),
    {"resourceType": "RiskAssessment", "id": "n9", "status": "final", "subject": {"reference": "Patient/p"}},
    obs("q1", {"value": 5.4, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"}),
    obs("q2", {"value": 70, "unit": "kg", "system": UCUM, "code": "kg"}),
    obs("q3", {"value": 70000, "unit": "g", "system": UCUM, "code": "g"}),
    obs("q4", {"value": 5.4, "unit": "mg"}),
    obs("q5", {"value": 100, "comparator": "<", "unit": "mmol/L", "system": UCUM, "code": "mmol/L"}),
    obs("q6", {"value": 5.4, "unit": "milligram", "system": UCUM, "code": "mg"}),
    obs("q7", {"value": 120, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}),
]

NUMBERS: list[tuple[str, set[str]]] = [
    ("probability=5.4", {"n1", "n2", "n3"}),
    ("probability=eq5.4", {"n1", "n2", "n3"}),
    ("probability=5.40", {"n1"}),
    ("probability=5.45", {"n3", "n4"}),  # [5.445, 5.455)
    ("probability=100", {"n5", "n6"}),
    ("probability=1e2", {"n5", "n6"}),
    ("probability=1.00e2", {"n5", "n6"}),  # three digits: [99.5, 100.5)
    ("probability=1.000e2", {"n5"}),
    ("probability=-3", {"n7"}),
    ("probability=0.0054", {"n8"}),
    ("probability=0.005", {"n8"}),
    ("probability=0.0055", set()),
    ("probability=7", set()),
    ("probability=gt5.4", {"n3", "n4", "n5", "n6"}),
    ("probability=ge5.4", {"n1", "n3", "n4", "n5", "n6"}),
    ("probability=lt5.4", {"n2", "n7", "n8"}),
    ("probability=le5.4", {"n1", "n2", "n7", "n8"}),
    ("probability=ne5.4", {"n4", "n5", "n6", "n7", "n8"}),
    ("probability=sa5.4", {"n3", "n4", "n5", "n6"}),
    ("probability=eb5.4", {"n2", "n7", "n8"}),
    ("probability=ap5.4", {"n1", "n2", "n3", "n4"}),
    ("probability=ap100", {"n5", "n6"}),
    ("probability=gt5.4&probability=lt100", {"n3", "n4", "n6"}),
    ("probability=-3,100", {"n5", "n6", "n7"}),
    ("probability:missing=true", {"n9"}),
]

QUANTITIES: list[tuple[str, set[str]]] = [
    ("value-quantity=5.4", {"q1", "q4", "q6"}),
    (f"value-quantity=5.4|{UCUM}|mmol/L", {"q1"}),
    ("value-quantity=5.4||mmol/L", {"q1"}),
    ("value-quantity=5.4||mg", {"q4", "q6"}),
    ("value-quantity=5.4||milligram", {"q6"}),
    (f"value-quantity=5.4|{UCUM}|mg", {"q6"}),
    (f"value-quantity=0.0054|{UCUM}|g", {"q6"}),
    (f"value-quantity=5400|{UCUM}|ug", {"q6"}),
    ("value-quantity=5.4|http://other.org|mmol/L", set()),
    ("value-quantity=70", {"q2"}),
    (f"value-quantity=70|{UCUM}|kg", {"q2", "q3"}),
    (f"value-quantity=70000|{UCUM}|g", {"q2", "q3"}),
    (f"value-quantity=70|{UCUM}|g", set()),
    (f"value-quantity=gt60|{UCUM}|kg", {"q2", "q3"}),
    (f"value-quantity=gt60000|{UCUM}|g", {"q2", "q3"}),
    (f"value-quantity=lt60|{UCUM}|kg", {"q6"}),  # 5.4 mg < 60 kg
    (f"value-quantity=lt60|{UCUM}|mg", {"q6"}),
    (f"value-quantity=lt5|{UCUM}|mg", set()),
    (f"value-quantity=le70|{UCUM}|kg", {"q2", "q3", "q6"}),
    (f"value-quantity=ne70|{UCUM}|kg", {"q6"}),
    (f"value-quantity=ne70|{UCUM}|m", set()),
    (f"value-quantity=ap69|{UCUM}|kg", {"q2", "q3"}),
    ("value-quantity=lt50||mmol/L", {"q1", "q5"}),
    ("value-quantity=gt50||mmol/L", {"q5"}),  # "<100" is (-inf, 100]: it reaches above 50
    ("value-quantity=gt100||mmol/L", set()),
    ("value-quantity=100||mmol/L", set()),
    (f"value-quantity=120|{UCUM}|mm[Hg]", {"q7"}),
    ("value-quantity=gt100", {"q3", "q7"}),
    ("value-quantity=gt100&value-quantity=lt1000", {"q7"}),
    ("value-quantity=5.4||mmol/L,70||kg", {"q1", "q2"}),
]

MALFORMED = [
    ("probability", "abc"), ("probability", "zz5"), ("probability", "5.4.1"), ("probability", "1e"),
    ("probability", "gt"), ("value-quantity", "abc"), ("value-quantity", "5.4|mg"),
    ("value-quantity", "5.4|a|b|c"), ("value-quantity", "xx5||mg"), ("value-quantity", "NaN"),
    ("value-quantity", "Infinity"),
]


@pytest_asyncio.fixture(scope="module", autouse=True)
async def resources(client: httpx.AsyncClient) -> None:
    await load(client, RESOURCES)


@pytest.mark.parametrize(("query", "expected"), NUMBERS, ids=[q for q, _ in NUMBERS])
async def test_numbers(client: httpx.AsyncClient, query: str, expected: set[str]) -> None:
    assert await search_ids(client, "/RiskAssessment", query) == expected


@pytest.mark.parametrize(("query", "expected"), QUANTITIES, ids=[q for q, _ in QUANTITIES])
async def test_quantities(client: httpx.AsyncClient, query: str, expected: set[str]) -> None:
    assert await search_ids(client, "/Observation", query) == expected


@pytest.mark.parametrize(("name", "value"), MALFORMED)
async def test_malformed_number_is_400_naming_the_parameter(client: httpx.AsyncClient, name: str,
                                                            value: str) -> None:
    path = "/RiskAssessment" if name == "probability" else "/Observation"
    body = outcome(await client.get(path, params={name: value}), 400)
    assert any(name in i.get("expression", ()) for i in body["issue"]), body

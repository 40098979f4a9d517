"""Token ``:in``, ``:not-in``, ``:below`` and ``:above`` through the terminology service, on both
stores (http://hl7.org/fhir/R4/search.html#token)."""

from __future__ import annotations

import httpx
import pytest
import pytest_asyncio

from tests.conftest import unique

ICD = "urn:oid:2.16.156.10011.2.3.3.11"
GENDER_VS = "http://hl7.org/fhir/ValueSet/administrative-gender"


@pytest_asyncio.fixture(scope="module")
async def marker(client: httpx.AsyncClient) -> str:
    tag = unique("term")
    conditions = {"c-i10": "I10", "c-i11": "I11.9", "c-e11": "E11.9"}
    for cid, code in conditions.items():
        r = await client.put(f"/Condition/{tag}-{cid}", json={
            "resourceType": "Condition", "id": f"{tag}-{cid}", "subject": {"reference": "Patient/x"},
            "identifier": [{"value": tag}], "code": {"coding": [{"system": ICD, "code": code}]}})
        assert r.status_code in (200, 201), r.text
    for pid, gender in {"p-m": "male", "p-f": "female", "p-none": None}.items():
        body = {"resourceType": "Patient", "id": f"{tag}-{pid}", "identifier": [{"value": tag}]}
        if gender:
            body["gender"] = gender
        assert (await client.put(f"/Patient/{tag}-{pid}", json=body)).status_code in (200, 201)
    return tag


def found(bundle: dict, tag: str) -> set[str]:
    return {e["resource"]["id"].removeprefix(tag + "-") for e in bundle.get("entry", [])
            if e.get("search", {}).get("mode") == "match"}


@pytest.mark.parametrize(
    ("type_", "query", "expected"),
    [
        ("Condition", f"code:below={ICD}|I10-I15", {"c-i10", "c-i11"}),
        ("Condition", f"code:below={ICD}|I11", {"c-i11"}),
        ("Condition", f"code:above={ICD}|I11.9", {"c-i11"}),
        ("Condition", f"code:below={ICD}|E10-E14", {"c-e11"}),
        ("Patient", f"gender:in={GENDER_VS}", {"p-m", "p-f"}),
        ("Patient", f"gender:not-in={GENDER_VS}", {"p-none"}),
    ],
)
async def test_terminology_modifiers(client: httpx.AsyncClient, marker: str, type_: str, query: str,
                                     expected: set[str]) -> None:
    r = await client.get(f"/{type_}?identifier={marker}&{query}")
    assert r.status_code == 200, r.text
    assert found(r.json(), marker) == expected


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("gender:in=http://example.org/no-such-valueset", 400),
        ("gender:below=male", 400),
        ("gender:below=http://unknown.example/cs|x", 400),
    ],
)
async def test_terminology_modifier_errors(client: httpx.AsyncClient, query: str, status: int) -> None:
    r = await client.get(f"/Patient?{query}", headers={"Prefer": "handling=strict"})
    assert r.status_code == status, r.text
    assert r.json()["resourceType"] == "OperationOutcome"

"""string search over HTTP on both stores (http://hl7.org/fhir/R4/search.html#string).

Default: case- and accent-insensitive starts-with on any part of a HumanName / Address;
``:exact`` compares the text as written; ``:contains`` anywhere. Chinese names carry no spaces:
``张三丰`` is found by a prefix of the full name (``name.text``) and of the family name.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.http.searching import load, search_ids

PATIENTS: list[dict[str, Any]] = [
    {"resourceType": "Patient", "id": "zhang", "name": [{"text": "张三丰"}]},
    {"resourceType": "Patient", "id": "ouyang", "name": [{"text": "欧阳修", "family": "欧阳", "given": ["修"]}]},
    {"resourceType": "Patient", "id": "muller", "name": [{"family": "Müller", "given": ["Jürgen"]}],
     "address": [{"line": ["12 Rue de l'Église"], "city": "Zürich", "postalCode": "8001", "country": "CH"}]},
    {"resourceType": "Patient", "id": "smith", "name": [{"family": "Smith", "given": ["Peter", "James"],
                                                         "prefix": ["Dr"]}],
     "address": [{"text": "1 Main St, Springfield", "city": "Springfield", "state": "IL"}]},
    {"resourceType": "Patient", "id": "obrien", "name": [{"family": "O'Brien, Jr", "given": ["Seán"]}]},
    {"resourceType": "Patient", "id": "noname", "gender": "unknown"},
]

CASES: list[tuple[str, set[str]]] = [
    # default: starts-with, case- and accent-insensitive, any name part
    ("name=smith", {"smith"}),
    ("name=SMI", {"smith"}),
    ("name=mith", set()),
    ("name=pet", {"smith"}),
    ("name=james", {"smith"}),
    ("name=dr", {"smith"}),
    ("name=muller", {"muller"}),
    ("name=MÜL", {"muller"}),
    ("name=jurgen", {"muller"}),
    ("name=sean", {"obrien"}),
    ("name=Seán", {"obrien"}),
    ("name=o'brien", {"obrien"}),
    ("name=zz", set()),
    ("family=smith", {"smith"}),
    ("family=peter", set()),
    ("given=peter", {"smith"}),
    ("given=smith", set()),
    # Chinese names: prefix of the full name and of the family
    ("name=张", {"zhang"}),
    ("name=张三", {"zhang"}),
    ("name=张三丰", {"zhang"}),
    ("name=三丰", set()),
    ("name=张三丰丰", set()),
    ("name=欧阳", {"ouyang"}),
    ("name=欧阳修", {"ouyang"}),
    ("family=欧阳", {"ouyang"}),
    ("family=欧", {"ouyang"}),
    ("family=修", set()),
    ("given=修", {"ouyang"}),
    ("name:exact=张三丰", {"zhang"}),
    ("name:exact=张三", set()),
    ("name:contains=三丰", {"zhang"}),
    ("name:contains=阳修", {"ouyang"}),
    # :exact — the text as written
    ("name:exact=Müller", {"muller"}),
    ("name:exact=muller", set()),
    ("name:exact=Müll", set()),
    ("name:exact=MÜLLER", set()),
    ("family:exact=Smith", {"smith"}),
    ("family:exact=smith", set()),
    # :contains — anywhere, still case/accent-insensitive
    ("name:contains=ller", {"muller"}),
    ("name:contains=ULL", {"muller"}),
    ("name:contains=ame", {"smith"}),
    ("name:contains=xyz", set()),
    # Address parts
    ("address=zur", {"muller"}),
    ("address=12 rue", {"muller"}),
    ("address=rue", set()),
    ("address:contains=eglise", {"muller"}),
    ("address-city=zurich", {"muller"}),
    ("address-city=springfield", {"smith"}),
    ("address-city:exact=springfield", set()),
    ("address-postalcode=800", {"muller"}),
    ("address-country=ch", {"muller"}),
    ("address-state=il", {"smith"}),
    ("address=1 main", {"smith"}),
    # comma = OR, repeated = AND, escaped comma is part of the value
    ("name=smith,muller", {"smith", "muller"}),
    ("name=smith,zz", {"smith"}),
    ("name=smith&name=peter", {"smith"}),
    ("name=smith&name=muller", set()),
    ("family=o'brien\\, jr", {"obrien"}),
    ("family=o'brien\\, x", set()),
    ("family:exact=O'Brien\\, Jr", {"obrien"}),
    # :missing
    ("name:missing=true", {"noname"}),
    ("address:missing=false", {"muller", "smith"}),
]


@pytest_asyncio.fixture(scope="module", autouse=True)
async def patients(client: httpx.AsyncClient) -> None:
    await load(client, PATIENTS)


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[q for q, _ in CASES])
async def test_string_search(client: httpx.AsyncClient, query: str, expected: set[str]) -> None:
    assert await search_ids(client, "/Patient", query) == expected

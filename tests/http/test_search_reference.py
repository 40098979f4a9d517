"""reference search, chaining and reverse chaining over HTTP on both stores
(http://hl7.org/fhir/R4/search.html#reference, #chaining, #has).

``id``, ``Type/id``, absolute URLs (local under the server's base, or foreign), ``:[type]``,
``:identifier``, ``:missing``; chains to depth 2; ``_has`` with nesting and with a chain inside.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.conftest import BASE
from tests.http.searching import load, search_ids

FOREIGN = "http://other.example.org/fhir/Patient/zz"

RESOURCES: list[dict[str, Any]] = [
    {"resourceType": "Organization", "id": "org1", "name": "Peking Union Medical College Hospital",
     "identifier": [{"system": "urn:oid:2.16.156", "value": "PUMCH"}]},
    {"resourceType": "Organization", "id": "org2", "name": "Other Clinic",
     "partOf": {"reference": "Organization/org1"}},
    {"resourceType": "Practitioner", "id": "pr1", "name": [{"family": "Li", "given": ["Wei"]}]},
    {"resourceType": "Patient", "id": "pa", "name": [{"family": "Alpha"}],
     "managingOrganization": {"reference": "Organization/org1"},
     "generalPractitioner": [{"reference": "Practitioner/pr1"}]},
    {"resourceType": "Patient", "id": "pb", "name": [{"family": "Beta"}],
     "managingOrganization": {"reference": f"{BASE}/Organization/org2"}},
    {"resourceType": "Patient", "id": "pc", "name": [{"family": "Gamma"}],
     "generalPractitioner": [{"identifier": {"system": "urn:npi", "value": "123"}, "display": "Dr. Who"}]},
    {"resourceType": "Observation", "id": "oa", "status": "final", "code": {"coding": [{"code": "X"}]},
     "subject": {"reference": "Patient/pa"}, "performer": [{"reference": "Practitioner/pr1"}]},
    {"resourceType": "Observation", "id": "ob", "status": "final", "code": {"coding": [{"code": "Y"}]},
     "subject": {"reference": "Patient/pb"}},
    {"resourceType": "Observation", "id": "oc", "status": "final", "code": {"coding": [{"code": "X"}]},
     "subject": {"reference": FOREIGN}},
    {"resourceType": "Observation", "id": "od", "status": "final", "code": {"coding": [{"code": "Z"}]}},
    {"resourceType": "Observation", "id": "oe", "status": "final", "code": {"coding": [{"code": "Y"}]},
     "subject": {"reference": "Patient/pa"}, "performer": [{"reference": "Organization/org2"}]},
]

OBSERVATIONS: list[tuple[str, set[str]]] = [
    ("subject=Patient/pa", {"oa", "oe"}),
    ("subject=pa", {"oa", "oe"}),
    ("subject:Patient=pa", {"oa", "oe"}),
    ("subject:Group=pa", set()),
    (f"subject={BASE}/Patient/pa", {"oa", "oe"}),
    ("subject=Patient/pb", {"ob"}),
    ("subject=pb,pa", {"oa", "ob", "oe"}),
    ("subject=Patient/zz", set()),
    (f"subject={FOREIGN}", {"oc"}),
    ("subject=http://other.example.org/fhir/Patient/z", set()),
    ("patient=pa", {"oa", "oe"}),
    ("patient=Patient/pa&code=Y", {"oe"}),
    ("subject:missing=true", {"od"}),
    ("subject:missing=false", {"oa", "ob", "oc", "oe"}),
    ("performer=Practitioner/pr1", {"oa"}),
    ("performer:Organization=org2", {"oe"}),
    # chains, to depth 2
    ("subject.name=alpha", {"oa", "oe"}),
    ("subject:Patient.name=beta", {"ob"}),
    ("subject:Patient.name=zzz", set()),
    ("patient.identifier=none", set()),
    ("subject:Patient.organization.name=peking", {"oa", "oe"}),
    ("subject:Patient.organization.name=other", {"ob"}),
    ("subject:Patient.organization.name=clinic", set()),
    ("subject:Patient.organization.identifier=urn:oid:2.16.156|PUMCH", {"oa", "oe"}),
    ("subject:Patient.organization.partof=org1", {"ob"}),
    ("subject:Patient.general-practitioner.name=li", {"oa", "oe"}),
    ("performer:Practitioner.name=wei", {"oa"}),
    ("performer.name=other", {"oe"}),
    ("subject:Patient.name=alpha&performer:Organization.name=other", {"oe"}),
    ("subject:Patient.name=alpha,beta", {"oa", "ob", "oe"}),
]

PATIENTS: list[tuple[str, set[str]]] = [
    ("organization=org1", {"pa"}),
    ("organization=Organization/org2", {"pb"}),
    (f"organization={BASE}/Organization/org2", {"pb"}),
    ("organization:missing=true", {"pc"}),
    ("general-practitioner:identifier=urn:npi|123", {"pc"}),
    ("general-practitioner:identifier=123", {"pc"}),
    ("general-practitioner:identifier=urn:npi|124", set()),
    ("general-practitioner:missing=true", {"pb"}),
    ("general-practitioner:missing=false", {"pa", "pc"}),
    ("general-practitioner=pr1", {"pa"}),
    ("general-practitioner:Practitioner=pr1", {"pa"}),
    # reverse chaining
    ("_has:Observation:patient:code=X", {"pa"}),
    ("_has:Observation:subject:code=Y", {"pa", "pb"}),
    ("_has:Observation:subject:code=Z", set()),
    ("_has:Observation:subject:code=X&_has:Observation:subject:code=Y", {"pa"}),
    ("_has:Observation:subject:code=X,Y", {"pa", "pb"}),
    ("_has:Observation:subject:performer=Organization/org2", {"pa"}),
    # chain inside _has
    ("_has:Observation:subject:performer:Practitioner.name=li", {"pa"}),
    ("_has:Observation:subject:performer:Organization.name=other", {"pa"}),
    ("_has:Observation:subject:performer:Organization.name=peking", set()),
    ("organization.name=peking&_has:Observation:subject:code=Y", {"pa"}),
]

ORGANIZATIONS: list[tuple[str, set[str]]] = [
    # nested _has
    ("_has:Patient:organization:_has:Observation:patient:code=X", {"org1"}),
    ("_has:Patient:organization:_has:Observation:patient:code=Y", {"org1", "org2"}),
    ("_has:Patient:organization:_has:Observation:patient:code=Z", set()),
    ("_has:Patient:organization:name=beta", {"org2"}),
    ("partof=org1", {"org2"}),
    ("partof:missing=true", {"org1"}),
    ("partof.name=peking", {"org2"}),
    ("_has:Organization:partof:name=other", {"org1"}),
]


@pytest_asyncio.fixture(scope="module", autouse=True)
async def resources(client: httpx.AsyncClient) -> None:
    await load(client, RESOURCES)


@pytest.mark.parametrize(("query", "expected"), OBSERVATIONS, ids=[q for q, _ in OBSERVATIONS])
async def test_observation_references(client: httpx.AsyncClient, query: str, expected: set[str]) -> None:
    assert await search_ids(client, "/Observation", query) == expected


@pytest.mark.parametrize(("query", "expected"), PATIENTS, ids=[q for q, _ in PATIENTS])
async def test_patient_references(client: httpx.AsyncClient, query: str, expected: set[str]) -> None:
    assert await search_ids(client, "/Patient", query) == expected


@pytest.mark.parametrize(("query", "expected"), ORGANIZATIONS, ids=[q for q, _ in ORGANIZATIONS])
async def test_organization_references(client: httpx.AsyncClient, query: str, expected: set[str]) -> None:
    assert await search_ids(client, "/Organization", query) == expected

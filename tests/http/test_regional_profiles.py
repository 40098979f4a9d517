"""The regional profiles over HTTP, on both stores: ``$validate?profile=`` and enforced writes.

Needs a server that loads the regional profiles at start-up (``profiles.regional.load_regional``
into the profile registry the validator uses). Every example of ``profiles/regional/examples``
is validated against its profile given as the ``profile`` parameter
(http://hl7.org/fhir/R4/resource-operation-validate.html) with its ``meta.profile`` removed, and
is written claiming it in ``meta.profile``: conforming examples are created (201), counter-examples
are refused with 422 and an OperationOutcome naming the broken rule's location
(http://hl7.org/fhir/R4/http.html#2.21.0.15, http://hl7.org/fhir/R4/resource.html#profile).
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from profiles.regional import Example, examples
from tests.conftest import unique

ALL = examples()
VALID = [e for e in ALL if e.valid]
INVALID = [e for e in ALL if not e.valid]


def errors(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    assert outcome["resourceType"] == "OperationOutcome", outcome
    return [i for i in outcome.get("issue", ()) if i["severity"] in ("error", "fatal")]


def names_rule(issue: dict[str, Any], example: Example) -> bool:
    """The issue is the counter-example's error: at its location, with its invariant key or issue code."""
    return example.expression in issue.get("expression", ()) and (
        issue["code"] == example.key or str(issue.get("diagnostics", "")).startswith(example.key + ":"))


def unclaimed(example: Example) -> dict[str, Any]:
    body = copy.deepcopy(example.resource)
    body.pop("meta", None)
    return body


def fresh(example: Example) -> dict[str, Any]:
    """The example with an id no other test uses (both stores share a module's database)."""
    body = copy.deepcopy(example.resource)
    body["id"] = unique(body["resourceType"].lower())
    return body


@pytest.mark.parametrize("example", VALID, ids=lambda e: e.name)
async def test_validate_example(client: httpx.AsyncClient, example: Example) -> None:
    r = await client.post(f"/{example.resource['resourceType']}/$validate", params={"profile": example.profile},
                          json=unclaimed(example))
    assert r.status_code == 200
    assert errors(r.json()) == []


@pytest.mark.parametrize("example", INVALID, ids=lambda e: e.name)
async def test_validate_counter_example(client: httpx.AsyncClient, example: Example) -> None:
    r = await client.post(f"/{example.resource['resourceType']}/$validate", params={"profile": example.profile},
                          json=unclaimed(example))
    assert r.status_code == 200
    found = errors(r.json())
    assert any(names_rule(i, example) for i in found), (example.reason, found)


async def test_validate_with_profile_in_parameters(client: httpx.AsyncClient) -> None:
    """The profile may come as a Parameters part too; a counter-example fails the same way."""
    example = INVALID[0]
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": unclaimed(example)},
        {"name": "profile", "valueUri": example.profile},
    ]}
    r = await client.post(f"/{example.resource['resourceType']}/$validate", json=params)
    assert r.status_code == 200
    assert any(names_rule(i, example) for i in errors(r.json()))


@pytest.mark.parametrize("example", VALID, ids=lambda e: e.name)
async def test_create_example_claiming_the_profile(client: httpx.AsyncClient, example: Example) -> None:
    type_ = example.resource["resourceType"]
    r = await client.post(f"/{type_}", json=fresh(example))
    assert r.status_code == 201, r.text
    assert example.profile in r.json()["meta"]["profile"]


@pytest.mark.parametrize("example", INVALID, ids=lambda e: e.name)
async def test_create_counter_example_is_refused(client: httpx.AsyncClient, example: Example) -> None:
    type_ = example.resource["resourceType"]
    body = fresh(example)
    r = await client.post(f"/{type_}", json=body)
    assert r.status_code == 422, r.text
    assert any(names_rule(i, example) for i in errors(r.json())), (example.reason, r.json())
    r = await client.put(f"/{type_}/{body['id']}", json=body)
    assert r.status_code == 422, r.text
    assert any(names_rule(i, example) for i in errors(r.json()))
    assert (await client.get(f"/{type_}/{body['id']}")).status_code == 404


async def test_update_to_a_counter_example_is_refused(client: httpx.AsyncClient) -> None:
    """A conforming resource cannot be updated into one that breaks its claimed profile."""
    valid = next(e for e in VALID if e.name == "cn-patient-valid-1.json")
    broken = next(e for e in INVALID if e.name == "cn-patient-invalid-id-check-digit.json")
    body = fresh(valid)
    assert (await client.put(f"/Patient/{body['id']}", json=body)).status_code == 201
    update = {**copy.deepcopy(broken.resource), "id": body["id"]}
    r = await client.put(f"/Patient/{body['id']}", json=update)
    assert r.status_code == 422
    assert any(names_rule(i, broken) for i in errors(r.json()))
    current = (await client.get(f"/Patient/{body['id']}")).json()
    assert current["meta"]["versionId"] == "1"
    assert current["identifier"][0]["value"] == valid.resource["identifier"][0]["value"]

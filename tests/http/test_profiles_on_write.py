"""Profiles and bindings on write and through ``$validate``, on both stores: a StructureDefinition
stored through the API is enforced at once for resources that claim it, and configuration can
require a profile for every write of a type."""

from __future__ import annotations

import httpx

from tests.conftest import make_client, unique


def birthdate_profile(url: str) -> dict:
    return {
        "resourceType": "StructureDefinition", "url": url, "name": "BirthDatePatient", "status": "active",
        "fhirVersion": "4.0.1", "kind": "resource", "abstract": False, "type": "Patient",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
        "differential": {"element": [{"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1}]},
    }


def errors(body: dict) -> list[dict]:
    return [i for i in body["issue"] if i["severity"] in ("error", "fatal")]


async def test_required_binding_is_enforced_with_core_validation(store) -> None:  # type: ignore[no-untyped-def]
    robot = {"resourceType": "Patient", "gender": "robot"}
    async with make_client(store, validation="core") as core:
        r = await core.post("/Patient", json=robot)
        assert r.status_code == 422
        assert any("gender" in e for i in errors(r.json()) for e in i.get("expression", []))
        org = await core.post("/Organization", json={"resourceType": "Organization"})  # org-1 invariant
        assert org.status_code == 422
    async with make_client(store) as structural:
        checked = await structural.post("/Patient/$validate", json=robot)
        assert errors(checked.json())


async def test_uploaded_profile_is_used_at_once(client: httpx.AsyncClient) -> None:
    url = f"http://example.org/fhir/StructureDefinition/{unique('bd')}"
    sd = await client.post("/StructureDefinition", json=birthdate_profile(url))
    assert sd.status_code == 201, sd.text
    bare = {"resourceType": "Patient", "gender": "male"}
    check = await client.post("/Patient/$validate", params={"profile": url}, json=bare)
    assert check.status_code == 200
    assert any("birthDate" in e for i in errors(check.json()) for e in i.get("expression", []))
    claimed = {**bare, "meta": {"profile": [url]}}
    assert (await client.post("/Patient", json=claimed)).status_code == 422
    assert (await client.post("/Patient", json={**claimed, "birthDate": "1970-01-01"})).status_code == 201
    assert (await client.post("/Patient", json=bare)).status_code == 201  # no claim, no profile


async def test_required_profiles_setting(store) -> None:  # type: ignore[no-untyped-def]
    url = f"http://example.org/fhir/StructureDefinition/{unique('req')}"
    async with make_client(store, required_profiles={"Patient": [url]}) as strict:
        assert (await strict.post("/StructureDefinition", json=birthdate_profile(url))).status_code == 201
        r = await strict.post("/Patient", json={"resourceType": "Patient"})
        assert r.status_code == 422
        ok = await strict.post("/Patient", json={"resourceType": "Patient", "birthDate": "2000-02-29"})
        assert ok.status_code == 201
        org = await strict.post("/Organization", json={"resourceType": "Organization", "name": "x"})
        assert org.status_code == 201

"""CapabilityStatement ``rest.security`` (issue 13 §3/§4): SMART on FHIR with the OAuth URIs
extension when authorization is on; nothing claimed when it is off."""

from __future__ import annotations

from typing import Any

from server.stores.base import Store
from tests.conftest import BASE, make_client

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


async def security(store: Store, **settings: Any) -> dict[str, Any] | None:
    async with make_client(store, **settings) as client:
        r = await client.get("/metadata", params={"_format": "json"})
    assert r.status_code == 200
    return r.json()["rest"][0].get("security")


async def test_smart_declares_the_service_and_the_oauth_uris(store: Store) -> None:
    sec = await security(store, auth="smart", cors_origins=["https://app.example.cn"])
    assert sec is not None
    assert sec["cors"] is True
    codings = [c for s in sec["service"] for c in s["coding"]]
    assert {"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"} in codings
    (ext,) = [e for e in sec["extension"] if e["url"] == OAUTH_URIS]
    uris = {e["url"]: e["valueUri"] for e in ext["extension"]}
    assert uris == {name: f"{BASE}/auth/{name}" for name in ("token", "authorize", "introspect", "revoke")}


async def test_smart_without_cors_origins_claims_no_cors(store: Store) -> None:
    sec = await security(store, auth="smart")
    assert sec is not None and sec.get("cors", False) is False


async def test_open_server_claims_no_security_service(store: Store) -> None:
    for settings in ({}, {"auth": "off"}):
        sec = await security(store, **settings)
        assert sec is None or ("service" not in sec and "extension" not in sec)
        if sec is not None:
            assert "off" in sec.get("description", "")
            assert "cors" not in sec
    with_cors = await security(store, cors_origins=["*"])
    assert with_cors is not None and with_cors["cors"] is True and "service" not in with_cors

"""``/openapi.json`` and ``/docs`` (issue 13 §4): an OpenAPI 3 document generated from the
CapabilityStatement (valid per openapi-spec-validator), with the security schemes when
authorization is on; a self-contained docs page; the document cached until the CapabilityStatement
changes."""

from __future__ import annotations

import re
from typing import Any

from openapi_spec_validator import validate

from server.http.docs import render
from server.http.openapi import OpenApiCache
from server.stores.base import Store
from tests.conftest import BASE, make_client, unique


async def fetch(store: Store, **settings: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    async with make_client(store, **settings) as client:
        r = await client.get("/openapi.json")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        cs = (await client.get("/metadata", params={"_format": "json"})).json()
        return r.json(), cs




async def test_the_document_is_valid_openapi_with_smart_security(store: Store) -> None:
    doc, _ = await fetch(store, auth="smart")
    validate(doc)  # raises on an invalid document (takes ~10 s: 1,400 paths)
    schemes = doc["components"]["securitySchemes"]
    flows = schemes["smart"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == f"{BASE}/auth/token"
    assert flows["authorizationCode"]["authorizationUrl"] == f"{BASE}/auth/authorize"
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert doc["security"] == [{"smart": []}, {"bearer": []}]
    assert doc["paths"]["/metadata"]["get"]["security"] == []  # public


async def test_open_server_claims_no_security(store: Store) -> None:
    doc, _ = await fetch(store)
    assert doc["openapi"].startswith("3.")
    assert "securitySchemes" not in doc["components"] and "security" not in doc


async def test_paths_follow_the_capability_statement(store: Store) -> None:
    doc, cs = await fetch(store)
    paths = doc["paths"]
    assert doc["servers"] == [{"url": BASE}]
    rest = cs["rest"][0]
    types = [r["type"] for r in rest["resource"]]
    for type_ in types:
        assert {"get", "post"} <= set(paths[f"/{type_}"])
        assert {"get", "put", "patch", "delete"} <= set(paths[f"/{type_}/{{id}}"])
        assert "get" in paths[f"/{type_}/{{id}}/_history/{{vid}}"]
        assert "get" in paths[f"/{type_}/_history"] and "get" in paths[f"/{type_}/{{id}}/_history"]
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    query = {p["name"] for p in paths["/Patient"]["get"]["parameters"] if "name" in p}
    assert {p["name"] for p in patient["searchParam"]} <= query
    assert "birthdate" in query and "family" in query
    assert "/Patient/$everything" in paths and "/Patient/{id}/$everything" in paths
    assert "/Observation/$everything" not in paths  # only where the CapabilityStatement lists it
    assert "/ValueSet/$expand" in paths and "/$ingest-local" in paths
    assert {"get", "post"} <= set(paths["/"])
    ids = [op["operationId"] for item in paths.values() for k, op in item.items() if k != "parameters"]
    assert len(ids) == len(set(ids))
    assert paths["/Patient"]["post"]["responses"]["201"]
    assert paths["/Patient/{id}"]["delete"]["responses"]["204"]


async def test_a_new_search_parameter_shows_up_and_the_document_is_cached_until_then(store: Store) -> None:
    async with make_client(store) as client:
        first = await client.get("/openapi.json")
        again = await client.get("/openapi.json")
        assert first.content == again.content
        code = unique("sp").replace("-", "")
        sp = {"resourceType": "SearchParameter", "url": f"http://example.org/sp/{code}", "name": code,
              "status": "active", "code": code, "base": ["Patient"], "type": "token",
              "expression": "Patient.maritalStatus", "description": "marital status"}
        created = await client.post("/SearchParameter", json=sp)
        assert created.status_code == 201, created.text
        doc = (await client.get("/openapi.json")).json()
        assert code in {p.get("name") for p in doc["paths"]["/Patient"]["get"]["parameters"]}


def test_cache_keys_on_registry_version_and_base() -> None:
    class Registry:
        version = 1

    built: list[str] = []

    import server.http.openapi as openapi

    real = openapi.capability_statement

    def capability(svc: Any, *, base: str) -> dict[str, Any]:
        built.append(base)
        return {"rest": [{"resource": []}], "software": {"name": "Y", "version": "1"}}

    class Svc:
        registry = Registry()
        operations = None

        class settings:
            auth = ""

    openapi.capability_statement = capability  # type: ignore[assignment]
    try:
        cache = OpenApiCache()
        svc: Any = Svc()
        cache.get(svc, "http://a")
        cache.get(svc, "http://a")
        assert built == ["http://a"]
        cache.get(svc, "http://b")
        Svc.registry.version = 2
        cache.get(svc, "http://b")
        assert built == ["http://a", "http://b", "http://b"]
    finally:
        openapi.capability_statement = real  # type: ignore[assignment]


async def test_docs_page_is_self_contained_and_lists_the_operations(store: Store) -> None:
    async with make_client(store, auth="smart") as client:
        r = await client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert f'href="{BASE}/openapi.json"' in page
    assert "/Patient/{id}" in page and "$everything" in page and "Search Patient" in page
    assert f'<a href="{BASE}/Patient">' in page  # GETs without path parameters are links
    assert f"{BASE}/auth/token" in page
    # nothing fetched from elsewhere: no scripts, no external style sheets, images or fonts
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert not re.search(r"src=|@import|url\(", page)


def test_docs_render_escapes() -> None:
    doc = {"info": {"title": "<T>", "version": "1", "description": "a & b"}, "tags": [{"name": "X"}],
           "paths": {"/X": {"get": {"tags": ["X"], "summary": "<b>"}}}, "components": {}}
    page = render(doc, "http://h")
    assert "&lt;T&gt;" in page and "&lt;b&gt;" in page and "a &amp; b" in page


async def test_openapi_and_docs_need_no_token_when_auth_is_on(store: Store) -> None:
    async with make_client(store, auth="smart") as client:
        for path in ("/openapi.json", "/docs"):
            r = await client.get(path)
            assert r.status_code == 200, (path, r.status_code)

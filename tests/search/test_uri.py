"""URI search: http://hl7.org/fhir/R4/search.html#uri (exact, :below, :above) and ``_profile``."""

from __future__ import annotations

import pytest

from server.errors import InvalidSearch
from server.search.index import Indexer
from server.search.types.uri import above
from tests.search.evaluate import World, search_ids


@pytest.fixture(scope="module")
def world(indexer: Indexer) -> World:
    w = World(indexer)
    for rid, url in (("vs1", "http://acme.org/fhir/ValueSet/123"), ("vs2", "http://acme.org/fhir/ValueSet/123/v2"),
                     ("vs3", "http://acme.org/fhir"), ("vs4", "urn:oid:1.2.3"), ("vs5", "http://acme.org.evil/x")):
        w.add({"resourceType": "ValueSet", "id": rid, "status": "active", "url": url})
    w.add({"resourceType": "ValueSet", "id": "vs6", "status": "draft"})
    return w


@pytest.mark.parametrize(("query", "expected"), [
    ("url=http://acme.org/fhir/ValueSet/123", ["vs1"]),
    ("url=http://acme.org/fhir/ValueSet/12", []),
    ("url=HTTP://ACME.ORG/fhir/ValueSet/123", []),
    ("url:below=http://acme.org/fhir/", ["vs1", "vs2"]),
    ("url:below=http://acme.org/fhir", ["vs1", "vs2", "vs3"]),
    ("url:above=http://acme.org/fhir/ValueSet/123/v2", ["vs1", "vs2", "vs3"]),
    ("url:above=http://acme.org/fhir/ValueSet/999", ["vs3"]),
    ("url=urn:oid:1.2.3", ["vs4"]),
    ("url:missing=true", ["vs6"]),
])
def test_valueset_url(world: World, query: str, expected: list[str]) -> None:
    assert search_ids(world, ("ValueSet",), query) == expected


def test_above_stops_at_the_authority() -> None:
    assert above("http://a.org/b/c") == ("http://a.org/b/c", "http://a.org/b/", "http://a.org/b", "http://a.org/",
                                         "http://a.org")
    assert above("urn:oid:1.2.3") == ("urn:oid:1.2.3",)


def test_profile_with_version(indexer: Indexer) -> None:
    w = World(indexer)
    w.add({"resourceType": "Patient", "id": "p1", "meta": {"profile": ["http://x.org/StructureDefinition/p|1.0"]}})
    w.add({"resourceType": "Patient", "id": "p2", "meta": {"profile": ["http://x.org/StructureDefinition/p"]}})
    assert search_ids(w, ("Patient",), "_profile=http://x.org/StructureDefinition/p") == ["p1", "p2"]
    assert search_ids(w, ("Patient",), "_profile=http://x.org/StructureDefinition/p|1.0") == ["p1"]


@pytest.mark.parametrize("query", ["url:contains=acme", "url:exact=x", "url:not=x"])
def test_uri_errors(world: World, query: str) -> None:
    with pytest.raises(InvalidSearch) as caught:
        search_ids(world, ("ValueSet",), query)
    assert caught.value.expression == ("url",)

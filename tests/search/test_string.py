"""String search: http://hl7.org/fhir/R4/search.html#string (case- and accent-insensitive
starts-with, :exact, :contains; HumanName and Address parts; Chinese names)."""

from __future__ import annotations

import pytest

from server.errors import InvalidSearch
from server.search.index import Indexer
from server.search.types.common import normalise
from tests.search.evaluate import World, search_ids


@pytest.fixture(scope="module")
def world(indexer: Indexer) -> World:
    w = World(indexer)
    w.add({"resourceType": "Patient", "id": "p1",
           "name": [{"family": "Müller", "given": ["Jürgen"], "prefix": ["Dr."]}],
           "address": [{"line": ["1 Main St"], "city": "São Paulo", "postalCode": "12345", "country": "BR"}]})
    w.add({"resourceType": "Patient", "id": "p2", "name": [{"text": "张三丰", "family": "张"}],
           "address": [{"text": "北京市海淀区", "city": "北京"}]})
    w.add({"resourceType": "Patient", "id": "p3", "name": [{"family": "Mull", "given": ["Ann Marie"]}]})
    w.add({"resourceType": "Patient", "id": "p4", "name": [{"family": "ＡＢＣ"}]})
    w.add({"resourceType": "Patient", "id": "p5"})
    return w


@pytest.mark.parametrize(("query", "expected"), [
    ("name=muller", ["p1"]),
    ("name=MÜL", ["p1", "p3"]),
    ("name=mull", ["p1", "p3"]),
    ("name=mueller", []),
    ("name:exact=Mull", ["p3"]),
    ("name:exact=mull", []),
    ("name:exact=Müller", ["p1"]),
    ("name:exact=Mül", []),
    ("name:contains=ller", ["p1"]),
    ("name:contains=LL", ["p1", "p3"]),
    ("name=jur", ["p1"]),
    ("name=dr", ["p1"]),
    ("name=张", ["p2"]),
    ("name=张三", ["p2"]),
    ("name=张三丰", ["p2"]),
    ("name=三丰", []),
    ("name:contains=三丰", ["p2"]),
    ("family=张", ["p2"]),
    ("family=张三", []),
    ("name=abc", ["p4"]),
    ("given=ann", ["p3"]),
    ("given=marie", []),
    ("given=ann,jür", ["p1", "p3"]),
    ("name=mull&given=ann", ["p3"]),
    ("address=sao", ["p1"]),
    ("address=1 main", ["p1"]),
    ("address=main", []),
    ("address:contains=main", ["p1"]),
    ("address=北京", ["p2"]),
    ("address-city=são paulo", ["p1"]),
    ("address-city=paulo", []),
    ("address-postalcode=123", ["p1"]),
    ("address-country=br", ["p1"]),
    ("name:missing=true", ["p5"]),
    ("name:missing=false", ["p1", "p2", "p3", "p4"]),
])
def test_patient_strings(world: World, query: str, expected: list[str]) -> None:
    assert search_ids(world, ("Patient",), query) == expected


@pytest.mark.parametrize(("text", "folded"), [
    ("Müller", "muller"), ("SÃO", "sao"), ("ＡＢＣ", "abc"), ("张三丰", "张三丰"), ("Straße", "strasse"),
    ("ǅ", "dz"),
])
def test_normalise(text: str, folded: str) -> None:
    assert normalise(text) == folded


@pytest.mark.parametrize("query", ["name:text=x", "name:below=x", "name:not=x", "name:exact"])
def test_string_errors(world: World, query: str) -> None:
    if "=" not in query:
        assert search_ids(world, ("Patient",), query) == ["p1", "p2", "p3", "p4", "p5"]  # empty value: ignored
        return
    with pytest.raises(InvalidSearch) as caught:
        search_ids(world, ("Patient",), query)
    assert caught.value.expression == ("name",)

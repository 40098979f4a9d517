"""Every search that filters by a parameter compiles to a MongoDB filter an index answers
(issue: "every search that filters by a parameter uses an index on both stores").

Pure part: for a table of representative searches, the compiled filter touches only fields that
lead an index of :data:`server.stores.mongo.schema.INDEXES` — each ``$elemMatch`` on an entry
array fixes ``<table>.p`` and constrains a field that follows it in a compound index, and the
row fields (``type``, ``id``, ``lu``, ``_id``, ``refs``) are indexed — so on MongoDB each is a
bounded multikey index scan.

Live part: nx-27017 (the test server) answers ``explain``; it cannot index ``$elemMatch`` on
arrays (see /work/shared/MONGO.md), so its plan is checked for the row-field forms only: ``_id``
(``_has`` results), ``type`` + ``id`` (``_id`` searches) and ``type`` + ``lu`` (``_lastUpdated``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from server.search.model import Chain, Condition, Has
from server.search.parse import parse_search
from server.search.registry import SearchRegistry
from server.stores.mongo import MongoStore
from server.stores.mongo import compile as c
from server.stores.mongo.schema import INDEXES, RESOURCES

REGISTRY = SearchRegistry()

SEARCHES: list[tuple[str, str]] = [
    ("Observation", "code=http://loinc.org|8480-6"),
    ("Observation", "code=8480-6,8462-4"),
    ("Patient", "identifier=urn:oid:2.16.156|110101"),
    ("Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|1"),
    ("Patient", "_tag=http://example.org|vip"),
    ("Patient", "name=zha"),
    ("Patient", "name:exact=Zhang"),
    ("Patient", "family=张&gender=male"),
    ("Observation", "date=ge2024-01-01T10:00:00Z&date=lt2024-01-01T11:00:00Z"),
    ("Observation", "date=2024-01-01"),
    ("Patient", "birthdate=1990"),
    ("Observation", "subject=Patient/123"),
    ("Observation", "subject=http://other.org/fhir/Patient/1"),
    ("Observation", "subject:identifier=urn:x|1"),
    ("Observation", "subject:Patient.identifier=urn:oid:2.16.156|110101"),
    ("Observation", "subject:Patient.organization.name=peking"),
    ("Patient", "_has:Observation:patient:code=8480-6"),
    ("Organization", "_has:Patient:organization:_has:Observation:patient:code=8480-6"),
    ("Encounter", "_id=abc"),
    ("Patient", "_lastUpdated=gt2024-01-01"),
    ("Observation", "value-quantity=5.4|http://unitsofmeasure.org|mg"),
    ("Observation", "value-quantity=5.4"),
    ("RiskAssessment", "probability=0.5"),
    ("Observation", "code-value-quantity=http://loinc.org|8480-6$gt140"),
    ("ValueSet", "url=http://acme.org/vs/1"),
    ("ValueSet", "url:below=http://acme.org/"),
    ("ValueSet", "url:above=http://acme.org/vs/1/x"),
    ("Patient", "gender:missing=true"),
]

INDEX_KEYS = [[k for k, _ in model.document["key"].items()] for model in INDEXES[RESOURCES]]
ROW_FIELDS = {"_id", "type", "id", "lu", "refs"}
RESIDUAL = {"deleted"}
"""Tested on the documents an index found (every current document has it)."""
BOUNDED = {"$eq", "$gt", "$gte", "$lt", "$lte", "$in"}


def resolve(cond: Condition) -> dict[Chain | Has, c.Filter]:
    """Chain/Has sub-queries resolved as the store would, with stand-in ids."""
    return {node: c.chain_filter(node, ["x"]) if isinstance(node, Chain) else c.has_filter(["Patient/x"])
            for node in c.subqueries(cond)}


def filters(resource_type: str, query: str) -> Iterator[c.Filter]:
    """The filter of the search and of each of its (nested) sub-queries."""
    params = [tuple(p.split("=", 1)) for p in query.split("&")]
    where = parse_search((resource_type,), params, REGISTRY, strict=True).query.where  # type: ignore[arg-type]
    pending: list[tuple[tuple[str, ...], Condition]] = [((resource_type,), where)]
    while pending:
        types, cond = pending.pop()
        yield c.base_filter(types, c.compile_where(cond, resolve(cond)))
        for node in c.subqueries(cond):
            target = node.target_type if isinstance(node, Chain) else node.source_type
            pending.append(((target,), node.where))


def walk(f: c.Filter) -> Iterator[tuple[str, Any]]:
    """(field, operand) of every field condition, through $and/$or/$nor."""
    for key, value in f.items():
        if key in ("$and", "$or", "$nor"):
            for item in value:
                yield from walk(item)
        else:
            yield key, value


def indexed_elem_match(table: str, em: dict[str, Any]) -> bool:
    """``em`` fixes ``<table>.p`` and bounds a field that follows it in one compound index (or,
    for ``:missing``, tests ``p`` alone: the index prefix)."""
    if set(em.get("p", {})) != {"$eq"}:
        return False
    bounded = {f"{table}.{name}" for name, ops in em.items() if name != "p" and set(ops) & BOUNDED}
    for keys in INDEX_KEYS:
        if keys[0] != f"{table}.p":
            continue
        if len(em) == 1 or keys[1] in bounded:
            return True
    return False


@pytest.mark.parametrize(("resource_type", "query"), SEARCHES, ids=[q for _, q in SEARCHES])
def test_compiled_filters_touch_indexed_fields_only(resource_type: str, query: str) -> None:
    for f in filters(resource_type, query):
        for name, operand in walk(f):
            if name in RESIDUAL:
                continue
            if name in ROW_FIELDS:
                assert any(keys[0] == name or (name in ("id", "lu") and keys[:2] == ["type", name])
                           for keys in INDEX_KEYS) or name == "_id", name
                continue
            assert set(operand) == {"$elemMatch"}, (name, operand)
            assert indexed_elem_match(name, operand["$elemMatch"]), (name, operand, INDEX_KEYS)


@pytest_asyncio.fixture(scope="module")
async def store(mongo_server_uri: str) -> AsyncIterator[MongoStore]:
    opened = MongoStore(mongo_server_uri, database=f"t_idx_{uuid.uuid4().hex[:8]}")
    await opened.open()
    yield opened
    await opened.db.client.drop_database(opened.db.name)
    await opened.close()


@pytest.mark.mongo
@pytest.mark.parametrize(("resource_type", "query"), [
    ("Encounter", "_id=abc"),
    ("Encounter", "_id=abc,def"),
    ("Patient", "_lastUpdated=gt2024-01-01"),
    ("Patient", ""),
])
async def test_row_field_searches_use_an_index_on_the_wire_server(store: MongoStore, resource_type: str,
                                                                   query: str) -> None:
    params = [tuple(p.split("=", 1)) for p in query.split("&") if p]
    where = parse_search((resource_type,), params, REGISTRY).query.where  # type: ignore[arg-type]
    f = c.base_filter((resource_type,), c.compile_where(where))
    explained = await store.db.command("explain", {"find": RESOURCES, "filter": f})
    plan = str(explained["queryPlanner"]["winningPlan"])
    assert "USING INDEX" in plan and "SCAN resources" not in plan, plan


@pytest.mark.mongo
async def test_has_results_are_fetched_by_primary_key_on_the_wire_server(store: MongoStore) -> None:
    f = c.base_filter(("Patient",), c.has_filter(["Patient/a", "Patient/b"]))
    explained = await store.db.command("explain", {"find": RESOURCES, "filter": f})
    plan = str(explained["queryPlanner"]["winningPlan"])
    assert "USING INDEX" in plan and "SCAN resources" not in plan, plan

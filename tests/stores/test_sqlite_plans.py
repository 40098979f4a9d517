"""Every search that filters by a parameter is answered from an index on the embedded store,
proved from SQLite's own ``EXPLAIN QUERY PLAN`` (issue: "a test asserts it from the store's query
plan"), on an empty database and on one with data and ``ANALYZE`` statistics.

Selective searches are *driven* by an index (the resources are then fetched by primary key); the
few conditions no index can narrow on its own (``:missing``, ``:not``, ``:contains``, one-sided
date ranges) walk the resources of the searched type in result order with per-row index probes.
No plan ever scans a table.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
import pytest_asyncio

from server.search.index import Indexer
from server.search.parse import parse_criteria, parse_search
from server.search.registry import SearchRegistry
from server.stores.base import Version, Write
from server.stores.sqlite import SqliteStore
from server.stores.sqlite.compile import ESTIMATE_CAP
from server.stores.sqlite.page import compile_query, find_sql

REGISTRY = SearchRegistry()

DRIVEN: list[tuple[str, str, list[str]]] = [
    # (type, query, indexes the plan must use)
    ("Observation", "code=http://loinc.org|8480-6", ["idx_token_q0"]),
    ("Observation", "code=8480-6,8462-4", ["idx_token_q0"]),
    ("Patient", "identifier=urn:oid:2.16.156|110101", ["idx_token_q0"]),
    ("Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|1", ["idx_token_q0"]),
    ("Patient", "_tag=http://example.org|vip", ["idx_token_q0"]),
    ("Patient", "gender=male&_sort=birthdate", ["idx_token_q0", "SEARCH k USING INDEX idx_date_rid (rid=?)"]),
    ("Patient", "name=zha", ["idx_string_q0"]),
    ("Patient", "name:exact=Zhang", ["idx_string_q0"]),
    ("Observation", "date=ge2024-01-01T10:00:00Z&date=lt2024-01-01T11:00:00Z", ["idx_date_q0", "idx_date_long"]),
    ("Observation", "date=2024-01-01", ["idx_date_q0"]),
    ("Patient", "birthdate=1990", ["idx_date_q0"]),
    ("Observation", "subject=Patient/123", ["idx_reference_q0"]),
    ("Observation", "subject=http://other.org/fhir/Patient/1", ["idx_reference_q1"]),
    ("Observation", "subject:identifier=urn:x|1", ["idx_token_q0"]),
    ("Observation", "subject:Patient.identifier=urn:oid:2.16.156|110101", ["idx_reference_q0", "idx_token_q0"]),
    ("Observation", "subject:Patient.organization.name=peking", ["idx_reference_q0", "idx_string_q0"]),
    ("Patient", "_has:Observation:patient:code=8480-6", ["idx_token_q0", "idx_reference_rid",
                                                          "sqlite_autoindex_resources_1 (type=? AND id=?)"]),
    ("Organization", "_has:Patient:organization:_has:Observation:patient:code=8480-6",
     ["idx_token_q0", "idx_reference_rid"]),
    ("Patient", "_has:Observation:patient:performer:Practitioner.name=li", ["idx_string_q0", "idx_reference_q0"]),
    ("Encounter", "_id=abc", ["sqlite_autoindex_resources_1 (type=? AND id=?)"]),
    ("Patient", "_lastUpdated=gt2024-01-01", ["resources_type_lu"]),
    ("Observation", "value-quantity=5.4|http://unitsofmeasure.org|mg", ["idx_quantity_q1"]),
    ("Observation", "value-quantity=5.4", ["idx_quantity_q0"]),
    ("RiskAssessment", "probability=0.5", ["idx_number_q0"]),
    ("Observation", "code-value-quantity=http://loinc.org|8480-6$gt140", ["idx_composite_q0"]),
    ("ValueSet", "url=http://acme.org/vs/1", ["idx_uri_q0"]),
    ("ValueSet", "url:below=http://acme.org/", ["idx_uri_q0"]),
    ("ValueSet", "url:above=http://acme.org/vs/1/x", ["idx_uri_q0"]),
    ("Patient", "name=zha&_count=10&_total=accurate", ["idx_string_q0"]),
]

WALKED: list[tuple[str, str]] = [
    ("Patient", "gender:missing=true"),
    ("Observation", "code:not=8480-6"),
    ("Patient", "name:contains=han"),
    ("Observation", "date=gt2024-01-01"),
    ("Patient", ""),
    ("Patient", "_sort=-_lastUpdated"),
]

SCAN = re.compile(r"^SCAN (?!d\d|k\d+t\b|\(subquery)")
"""A full scan of a table (scans of the plan's own driver subqueries ``d<n>``/``k<n>t`` are fine)."""
TYPE_WALK = "USING INDEX sqlite_autoindex_resources_1 (type=?)"


async def _seed(store: SqliteStore) -> None:
    """A few hundred resources of several types, then ANALYZE, so the planner has statistics."""
    indexer = Indexer(REGISTRY)
    async with store.session() as session:
        for n in range(300):
            resources = [
                {"resourceType": "Patient", "id": f"p{n}", "gender": ["male", "female"][n % 2],
                 "name": [{"family": f"Zhang{n % 7}"}], "birthDate": f"19{50 + n % 50}-01-01",
                 "identifier": [{"system": "urn:oid:2.16.156", "value": str(110101 + n)}]},
                {"resourceType": "Observation", "id": f"o{n}", "status": "final",
                 "code": {"coding": [{"system": "http://loinc.org", "code": ["8480-6", "8462-4", "8310-5"][n % 3]}]},
                 "subject": {"reference": f"Patient/p{n}"}, "effectiveDateTime": f"2024-01-{1 + n % 28:02d}T10:00:00Z",
                 "valueQuantity": {"value": n, "system": "http://unitsofmeasure.org", "code": "mg"}},
            ]
            for r in resources:
                body = orjson.dumps(r)
                version = Version(r["resourceType"], r["id"], 1, 1_700_000_000_000_000 + n, False, "PUT", body)
                await session.write(Write(version, indexer.entries(r), None))
    with sqlite3.connect(store.path) as conn:
        conn.execute("ANALYZE")


@pytest_asyncio.fixture(params=["empty", "analyzed"], scope="module")
async def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path_factory.mktemp("plans"))
    await opened.open()
    if request.param == "analyzed":
        await _seed(opened)
    yield opened
    await opened.close()


@pytest_asyncio.fixture(scope="module")
async def analyzed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path_factory.mktemp("plans"))
    await opened.open()
    await _seed(opened)
    yield opened
    await opened.close()


def plan(store: SqliteStore, resource_type: str, query: str) -> list[str]:
    params = [tuple(p.split("=", 1)) for p in query.split("&") if p]
    request = parse_search((resource_type,), params, REGISTRY, strict=True)  # type: ignore[arg-type]
    return store.explain(request.query)


def assert_no_scan(lines: list[str]) -> None:
    scans = [line for line in lines if SCAN.match(line)]
    assert not scans, "\n".join(lines)


@pytest.mark.parametrize(("resource_type", "query", "indexes"), DRIVEN, ids=[q for _, q, _ in DRIVEN])
def test_selective_searches_are_driven_by_an_index(store: SqliteStore, resource_type: str, query: str,
                                                   indexes: list[str]) -> None:
    lines = plan(store, resource_type, query)
    text = "\n".join(lines)
    assert_no_scan(lines)
    for index in indexes:
        assert index in text, f"{index} not used:\n{text}"
    outer = [line for line in lines if line.startswith("SEARCH r ")]
    assert outer == ["SEARCH r USING INTEGER PRIMARY KEY (rowid=?)"], text


def test_the_fewest_rows_drive_a_conjunction(analyzed: SqliteStore) -> None:
    """``family=zhang1&gender=male`` is driven by the family (about 43 of 300 patients) and tests
    the gender row by row; the gender (150 of 300) does not drive, whatever the order."""
    for query in ("family=zhang1&gender=male", "gender=male&family=zhang1"):
        text = "\n".join(plan(analyzed, "Patient", query))
        assert "SEARCH idx_string USING COVERING INDEX idx_string_q0" in text, text
        assert re.search(r"SEARCH e\d+ USING INDEX idx_token_rid \(rid=\?\)", text), text


@pytest.mark.parametrize(("query", "walks"), [("code=8480-6", True), ("code=8480-6&_sort=date", False),
                                              ("code=8480-6&_total=accurate", True)])
def test_a_broad_search_in_the_default_order_walks_the_type(analyzed: SqliteStore, query: str, walks: bool) -> None:
    """When the driver has ESTIMATE_CAP hits or more, a page in the default order is found by
    walking the type (it stops at the first ``_count`` hits); a sorted search keeps the driver, and
    so does the COUNT of ``_total``."""
    params = [tuple(p.split("=", 1)) for p in query.split("&")]
    request = parse_search(("Observation",), params, REGISTRY, strict=True)  # type: ignore[arg-type]
    compiled = compile_query(request.query, lambda sql, cap: min(cap, ESTIMATE_CAP))
    with sqlite3.connect(analyzed.path) as conn:
        lines = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + compiled.select.text, compiled.select.params)]
        assert_no_scan(lines)
        assert (TYPE_WALK in "\n".join(lines)) == walks, lines
        assert not any("TEMP B-TREE FOR ORDER BY" in line for line in lines) or not walks, lines
        if compiled.count is not None:
            counted = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + compiled.count.text, compiled.count.params)]
            assert "SEARCH r USING INTEGER PRIMARY KEY (rowid=?)" in counted, counted


@pytest.mark.parametrize(("resource_type", "query"), WALKED, ids=[q or "(none)" for _, q in WALKED])
def test_other_searches_walk_the_type_with_index_probes(store: SqliteStore, resource_type: str, query: str) -> None:
    lines = plan(store, resource_type, query)
    text = "\n".join(lines)
    assert_no_scan(lines)
    assert any(line.startswith("SEARCH r USING") and "(type=?" in line for line in lines), text
    probes = [line for line in lines if re.match(r"SEARCH e\d+ ", line)]
    assert all(re.search(r"USING (COVERING )?INDEX idx_\w+_rid \(rid=\?\)", p) for p in probes), text


@pytest.mark.parametrize("query", ["", "gender:missing=true", "name:contains=han"])
def test_next_pages_of_a_walk_seek_the_cursor(store: SqliteStore, query: str) -> None:
    """Keyset paging in the default order starts the walk at the cursor row, not at the start."""
    params = [tuple(p.split("=", 1)) for p in query.split("&") if p]
    request = parse_search(("Patient",), params, REGISTRY, strict=True)  # type: ignore[arg-type]
    compiled = compile_query(replace(request.query, after=("Patient", "p7")))
    with sqlite3.connect(store.path) as conn:
        lines = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + compiled.select.text, compiled.select.params)]
    assert "SEARCH r USING INDEX sqlite_autoindex_resources_1 (type=? AND id>?)" in lines, lines


@pytest.mark.parametrize("criteria", ["identifier=urn:oid:2.16.156|110101", "name=zhang&birthdate=1990",
                                      "_id=p1"])
def test_conditional_matching_is_driven_by_an_index(store: SqliteStore, criteria: str) -> None:
    sql = find_sql("Patient", parse_criteria("Patient", criteria, REGISTRY), 2)
    with sqlite3.connect(Path(store.path)) as conn:
        lines = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql.text, sql.params)]
    assert_no_scan(lines)
    assert TYPE_WALK not in "\n".join(lines)


@pytest.mark.parametrize("counts, chosen", [({"tag": 20_000, "patient": 150}, "patient"),
                                             ({"tag": 40, "patient": 150}, "tag"),
                                             ({"tag": 150, "patient": 150}, "tag"),
                                             ({"tag": 9_000, "patient": 8_000}, "tag")])
def test_drivers_are_counted_only_about_as_far_as_the_fewest(counts: dict[str, int], chosen: str) -> None:
    """Of an And's driver candidates the one with the fewest rows drives (ties, also at the cap: the
    better rank, then the first written); they are counted to growing caps, none far past the fewest."""
    from server.search.model import And, FieldTest, Match
    from server.stores.sqlite.compile import FIRST_COUNT, Compiler, Sql

    asked: dict[str, int] = {}

    def estimate(sql: Sql, cap: int) -> int:
        name = "tag" if "Patient._tag" in sql.params else "patient"
        asked[name] = max(asked.get(name, 0), cap)
        return min(counts[name], cap)

    tag = Match("token", "_tag", (FieldTest("system", "eq", "urn:s"), FieldTest("code", "eq", "a")))
    patient = Match("reference", "patient", (FieldTest("ref_type", "eq", "Patient"), FieldTest("ref_id", "eq", "p")))
    driver = Compiler(estimate).driver(And((tag, patient)), ("Patient",))
    assert driver is not None and driver.covers is (patient if chosen == "patient" else tag)
    fewest = min(min(counts.values()), ESTIMATE_CAP)
    assert max(asked.values()) <= max(FIRST_COUNT, min(fewest * 4, ESTIMATE_CAP))


def test_recent_driver_counts_are_reused_as_estimates_only_as_far_as_they_are_known() -> None:
    from server.stores.sqlite.store import DriverCounts

    counts = DriverCounts(ttl=60)
    exact, bound = ("SELECT 1", ("a",)), ("SELECT 2", ("b",))
    counts.put(exact, 157, 256)  # counted to 256, found 157: exact
    counts.put(bound, 256, 256)  # counted to 256, all there: at least 256
    assert counts.get(exact, 64) == 64 and counts.get(exact, 5000) == 157
    assert counts.get(bound, 64) == 64 and counts.get(bound, 256) == 256
    assert counts.get(bound, 1024) is None  # not known that far: counted again
    assert counts.get(("SELECT 3", ()), 64) is None
    stale = DriverCounts(ttl=-1)  # already too old
    stale.put(exact, 157, 256)
    assert stale.get(exact, 64) is None

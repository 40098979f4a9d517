"""The MongoDB store against a live server (nx-27017 unless a real one is configured).

Covers the Store/Session contract of server/stores/base.py: versions and compare-and-set
(http://hl7.org/fhir/R4/http.html#concurrency), history order and paging
(http://hl7.org/fhir/R4/http.html#history), search over hand-made index entries for every table
and comparison (http://hl7.org/fhir/R4/search.html), chains and ``_has``
(http://hl7.org/fhir/R4/search.html#chaining), ``_sort`` with missing values last, keyset paging,
session rollback on both the transaction and the compensation path, and the conditional-create
race (http://hl7.org/fhir/R4/http.html#ccreate) that :meth:`Session.lock` makes safe.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Sequence

import orjson
import pytest
import pytest_asyncio

from server.errors import Contention, InvalidSearch, PayloadTooLarge, StoreUnavailable
from server.search.model import (
    Always,
    And,
    Chain,
    Condition,
    Entry,
    FieldTest,
    Has,
    Match,
    Missing,
    Not,
    Or,
    Query,
    ResourceTest,
    SortKey,
)
from server.stores.base import HistoryQuery, Session, Version, VersionConflict, Write
from server.stores.mongo import MongoStore
from server.stores.mongo import session as session_module
from server.stores.mongo.schema import LOCKS

pytestmark = pytest.mark.mongo

MODES = {"detected": None, "compensation": False, "transaction": True}
_clock = itertools.count(1_700_000_000_000_000, 1_000)


@pytest_asyncio.fixture(scope="module")
async def stores(mongo_server_uri: str) -> AsyncIterator[dict[str, MongoStore]]:
    opened: dict[str, MongoStore] = {}
    for mode, flag in MODES.items():
        store = MongoStore(mongo_server_uri, database=f"t_{mode}_{uuid.uuid4().hex[:8]}", use_transactions=flag)
        await store.open()
        opened[mode] = store
    yield opened
    for store in opened.values():
        await store.db.client.drop_database(store.db.name)
        await store.close()


@pytest.fixture
def store(stores: dict[str, MongoStore]) -> MongoStore:
    return stores["detected"]


def new_version(type_: str, id_: str, version: int = 1, *, deleted: bool = False, **content: object) -> Version:
    body = None
    if not deleted:
        body = orjson.dumps({"resourceType": type_, "id": id_, "meta": {"versionId": str(version)}, **content})
    return Version(type_, id_, version, next(_clock), deleted, "DELETE" if deleted else "PUT", body)


async def put(
    store: MongoStore,
    type_: str,
    id_: str,
    entries: Sequence[Entry] = (),
    *,
    version: int = 1,
    expected: int | None = None,
    deleted: bool = False,
    **content: object,
) -> Version:
    v = new_version(type_, id_, version, deleted=deleted, **content)
    async with store.session() as s:
        await s.write(Write(v, entries, expected))
    return v


def uid(prefix: str = "r") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# --- versions -----------------------------------------------------------------------------------


async def test_create_update_read_vread(store: MongoStore) -> None:
    id_ = uid()
    v1 = await put(store, "Patient", id_, active=True)
    v2 = await put(store, "Patient", id_, version=2, expected=1, active=False)
    assert await store.read("Patient", id_) == v2
    assert await store.vread("Patient", id_, 1) == v1
    assert await store.vread("Patient", id_, 2) == v2
    assert await store.vread("Patient", id_, 3) is None
    assert await store.read("Patient", uid()) is None
    assert await store.read("Observation", id_) is None


@pytest.mark.parametrize(
    ("version", "expected", "current"),
    [
        (3, 1, 2),  # stale expected version
        (3, None, 2),  # must not exist, but does
        (2, 2, 2),  # a new version must be greater than the current one
        (3, 5, 2),  # expected version from the future
    ],
)
async def test_version_conflicts(store: MongoStore, version: int, expected: int | None, current: int) -> None:
    id_ = uid()
    await put(store, "Patient", id_)
    await put(store, "Patient", id_, version=2, expected=1)
    with pytest.raises(VersionConflict) as raised:
        await put(store, "Patient", id_, version=version, expected=expected)
    assert raised.value.current == current
    assert (await store.read("Patient", id_)).version == 2  # type: ignore[union-attr]


async def test_update_of_absent_resource_conflicts(store: MongoStore) -> None:
    with pytest.raises(VersionConflict) as raised:
        await put(store, "Patient", uid(), version=2, expected=1)
    assert raised.value.current is None


async def test_delete_then_create_again(store: MongoStore) -> None:
    id_ = uid()
    token = [Entry("token", "identifier", ("urn:t", id_, None))]
    where = Match("token", "identifier", (FieldTest("code", "eq", id_),))
    await put(store, "Patient", id_, token)
    gone = await put(store, "Patient", id_, version=2, expected=1, deleted=True)
    assert await store.read("Patient", id_) == gone
    assert gone.body is None
    assert (await store.search(Query(("Patient",), where))).rows == []
    back = await put(store, "Patient", id_, token, version=3, expected=None)  # allowed over a deletion
    assert await store.read("Patient", id_) == back
    assert [r.id for r in (await store.search(Query(("Patient",), where))).rows] == [id_]
    versions = await store.history(HistoryQuery("Patient", id_))
    assert [(v.version, v.deleted) for v in versions] == [(3, False), (2, True), (1, False)]


async def test_body_round_trips_byte_for_byte(store: MongoStore) -> None:
    body = orjson.dumps(
        {
            "resourceType": "Basic",
            "zeta": 1,
            "alpha": [1.5, 2, -3e-7, 9_007_199_254_740_993, True, False],
            "名字": '李雷 \u00e9\u0301 \U0001f600 "quoted" \\ \n',
            "nested": [{"b": {"$where": "literal", "a.b": 1}}, [], {}],
        }
    )
    v = Version("Basic", uid(), 1, next(_clock), False, "POST", body)
    async with store.session() as s:
        await s.write(Write(v, [], None))
    got = await store.read("Basic", v.id)
    assert got is not None and got.body == body
    assert list(orjson.loads(got.body)) == ["resourceType", "zeta", "alpha", "名字", "nested"]


async def test_oversized_resource_is_refused(store: MongoStore) -> None:
    id_ = uid()
    with pytest.raises(PayloadTooLarge):
        await put(store, "Binary", id_, data="x" * (17 * 1024 * 1024))
    assert await store.read("Binary", id_) is None


# --- history ------------------------------------------------------------------------------------


async def test_history_order_since_at_and_paging(store: MongoStore) -> None:
    kind = uid("H")  # a type of its own, so type-level history sees only this test
    a, b = await put(store, kind, "a"), await put(store, kind, "b")
    a2 = await put(store, kind, "a", version=2, expected=1)
    b2 = await put(store, kind, "b", version=2, expected=1, deleted=True)
    a3 = await put(store, kind, "a", version=3, expected=2)
    newest_first = [a3, b2, a2, b, a]
    assert await store.history(HistoryQuery(kind)) == newest_first
    assert await store.history(HistoryQuery(kind, "a")) == [a3, a2, a]
    assert await store.history(HistoryQuery(kind, since=a2.last_updated)) == [a3, b2, a2]
    assert await store.history(HistoryQuery(kind, count=2)) == [a3, b2]
    assert await store.history(HistoryQuery(kind, count=0)) == []
    system = await store.history(HistoryQuery(count=500))
    assert [v for v in system if v.type == kind] == newest_first
    paged: list[Version] = []
    before = None
    while True:
        page = await store.history(HistoryQuery(kind, count=2, before=before))
        if not page:
            break
        paged += page
        last = page[-1]
        before = (last.last_updated, last.type, last.id, last.version)
    assert paged == newest_first
    # the version current at each instant, deletions included, newest first
    assert await store.history(HistoryQuery(kind, at=a2.last_updated)) == [a2, b]
    assert await store.history(HistoryQuery(kind, at=b2.last_updated)) == [b2, a2]
    assert await store.history(HistoryQuery(kind, at=a.last_updated - 1)) == []
    assert await store.history(HistoryQuery(kind, at=a3.last_updated, count=1)) == [a3]
    assert await store.history(HistoryQuery(kind, "b", at=a3.last_updated)) == [b2]
    first = await store.history(HistoryQuery(kind, at=a3.last_updated, count=1))
    cursor = (first[0].last_updated, kind, first[0].id, first[0].version)
    assert await store.history(HistoryQuery(kind, at=a3.last_updated, before=cursor)) == [b2]
    assert await store.history(HistoryQuery(kind, at=a3.last_updated, since=a3.last_updated)) == [a3]


# --- search -------------------------------------------------------------------------------------

G = "http://hl7.org/fhir/administrative-gender"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"

DATASET: dict[tuple[str, str], list[Entry]] = {
    ("Patient", "pa"): [
        Entry("string", "family", ("zhang", "Zhang")),
        Entry("token", "gender", (G, "male", None)),
        Entry("token", "identifier", ("urn:a", "1", None)),
        Entry("date", "birthdate", (100, 199)),
        Entry("number", "n", (5.0, 5.0)),
        Entry("quantity", "q", (4.5, 5.5, UCUM, "mg")),
        Entry("uri", "u", ("http://x.org/a/b",)),
        Entry("composite", "c", ("male|zhang", None, None)),
        Entry("composite", "cq", ("1234-5", 4.5, 5.5)),
        Entry("reference", "org", ("Organization", "o1", None)),
    ],
    ("Patient", "pb"): [
        Entry("string", "family", ("zhao", "Zhao")),
        Entry("token", "gender", (G, "female", None)),
        Entry("token", "identifier", ("urn:a", "2", None)),
        Entry("token", "identifier", ("urn:b", "1", None)),
        Entry("date", "birthdate", (200, 299)),
        Entry("number", "n", (10.0, 10.0)),
        Entry("quantity", "q", (9.0, 11.0, UCUM, "kg")),
        Entry("uri", "u", ("http://x.org/a",)),
        Entry("reference", "org", (None, None, "http://elsewhere.org/Organization/9")),
    ],
    ("Patient", "pc"): [
        Entry("string", "family", ("li", "Li")),
        Entry("string", "family", ("lin", "Lin")),
        Entry("token", "gender", (None, None, "unknown gender")),
        Entry("reference", "org", ("Organization", "o2", None)),
    ],
    ("Patient", "pd"): [],
    ("Organization", "o1"): [Entry("string", "name", ("acme", "ACME"))],
    ("Organization", "o2"): [Entry("string", "name", ("beta", "Beta"))],
    ("Observation", "ob1"): [
        Entry("reference", "subject", ("Patient", "pa", None)),
        Entry("token", "code", (LOINC, "1234-5", None)),
    ],
    ("Observation", "ob2"): [
        Entry("reference", "subject", ("Patient", "pc", None)),
        Entry("token", "code", (LOINC, "9999-9", None)),
    ],
    ("Observation", "ob3"): [
        Entry("reference", "subject", ("Group", "g1", None)),
        Entry("token", "code", (LOINC, "1234-5", None)),
    ],
}


@pytest_asyncio.fixture(scope="module")
async def dataset(mongo_server_uri: str) -> AsyncIterator[MongoStore]:
    """A database of its own holding only :data:`DATASET`, so expectations are exact."""
    store = MongoStore(mongo_server_uri, database=f"t_search_{uuid.uuid4().hex[:8]}")
    await store.open()
    for (type_, id_), entries in DATASET.items():
        await put(store, type_, id_, entries)
    # a deleted patient whose old entries must never match
    await put(store, "Patient", "pe", DATASET[("Patient", "pa")])
    await put(store, "Patient", "pe", version=2, expected=1, deleted=True)
    yield store
    await store.db.client.drop_database(store.db.name)
    await store.close()


def m(table: str, param: str, *tests: tuple[str, str, object]) -> Match:
    return Match(table, param, tuple(FieldTest(*t) for t in tests))  # type: ignore[arg-type]


ACME = m("string", "name", ("value", "eq", "acme"))
CODE_1234 = m("token", "code", ("code", "eq", "1234-5"))

SEARCH_CASES: list[tuple[str, Condition, set[str]]] = [
    ("string eq", m("string", "family", ("value", "eq", "zhang")), {"pa"}),
    ("string prefix", m("string", "family", ("value", "prefix", "zh")), {"pa", "pb"}),
    ("string prefix any entry", m("string", "family", ("value", "prefix", "lin")), {"pc"}),
    ("string contains", m("string", "family", ("value", "contains", "ha")), {"pa", "pb"}),
    ("string exact", m("string", "family", ("exact", "eq", "Zhang")), {"pa"}),
    ("string exact is case-sensitive", m("string", "family", ("exact", "eq", "zhang")), set()),
    ("token code", m("token", "gender", ("code", "eq", "male")), {"pa"}),
    ("token system|code", m("token", "gender", ("system", "eq", G), ("code", "eq", "female")), {"pb"}),
    ("token wrong system", m("token", "gender", ("system", "eq", "urn:x"), ("code", "eq", "female")), set()),
    ("token in", m("token", "gender", ("code", "in", ("male", "female", "other"))), {"pa", "pb"}),
    ("token same entry", m("token", "identifier", ("system", "eq", "urn:b"), ("code", "eq", "2")), set()),
    (
        "token in with system",
        m("token", "identifier", ("system", "eq", "urn:a"), ("code", "in", ("1", "2"))),
        {"pa", "pb"},
    ),
    ("token code any system", m("token", "identifier", ("code", "eq", "1")), {"pa", "pb"}),
    ("token no system", m("token", "gender", ("system", "eq", None)), {"pc"}),
    ("token text", m("token", "gender", ("text", "contains", "unknown")), {"pc"}),
    ("date overlap", m("date", "birthdate", ("lo", "le", 150), ("hi", "ge", 150)), {"pa"}),
    ("date gt", m("date", "birthdate", ("lo", "gt", 199)), {"pb"}),
    ("date lt", m("date", "birthdate", ("hi", "lt", 200)), {"pa"}),
    ("number eq", m("number", "n", ("lo", "eq", 5.0)), {"pa"}),
    ("number eq int", m("number", "n", ("lo", "eq", 10)), {"pb"}),
    ("number ge", m("number", "n", ("lo", "ge", 6.0)), {"pb"}),
    ("quantity", m("quantity", "q", ("code", "eq", "mg"), ("lo", "le", 5.0), ("hi", "ge", 5.0)), {"pa"}),
    ("quantity other unit", m("quantity", "q", ("code", "eq", "kg"), ("lo", "le", 5.0)), set()),
    ("uri eq", m("uri", "u", ("value", "eq", "http://x.org/a")), {"pb"}),
    ("uri below", m("uri", "u", ("value", "prefix", "http://x.org/a")), {"pa", "pb"}),
    ("composite", m("composite", "c", ("key", "eq", "male|zhang")), {"pa"}),
    ("composite range", m("composite", "cq", ("key", "eq", "1234-5"), ("lo", "le", 5.0), ("hi", "ge", 5.0)), {"pa"}),
    ("composite out of range", m("composite", "cq", ("key", "eq", "1234-5"), ("lo", "gt", 5.0)), set()),
    ("reference local", m("reference", "org", ("ref_type", "eq", "Organization"), ("ref_id", "eq", "o1")), {"pa"}),
    ("reference url", m("reference", "org", ("url", "eq", "http://elsewhere.org/Organization/9")), {"pb"}),
    ("reference id in", m("reference", "org", ("ref_id", "in", ("o1", "o2"))), {"pa", "pc"}),
    ("missing", Missing("date", "birthdate", True), {"pc", "pd"}),
    ("present", Missing("date", "birthdate", False), {"pa", "pb"}),
    ("not", Not(m("token", "gender", ("code", "eq", "male"))), {"pb", "pc", "pd"}),
    ("or", Or((m("string", "family", ("value", "eq", "zhang")), m("number", "n", ("lo", "ge", 10)))), {"pa", "pb"}),
    (
        "and",
        And((m("string", "family", ("value", "prefix", "zh")), m("token", "gender", ("code", "eq", "female")))),
        {"pb"},
    ),
    ("not or", Not(Or((Missing("date", "birthdate", True), m("token", "gender", ("code", "eq", "male"))))), {"pb"}),
    ("id in", ResourceTest("id", "in", ("pa", "pc", "zz")), {"pa", "pc"}),
    ("id eq", ResourceTest("id", "eq", "pd"), {"pd"}),
    ("always", Always(), {"pa", "pb", "pc", "pd"}),
    ("chain", Chain("org", "Organization", ACME), {"pa"}),
    ("chain any target", Chain("org", "Organization", Always()), {"pa", "pc"}),
    ("chain nothing", Chain("org", "Organization", m("string", "name", ("value", "eq", "none"))), set()),
    ("has", Has("Observation", "subject", CODE_1234), {"pa"}),
    ("not has", Not(Has("Observation", "subject", CODE_1234)), {"pb", "pc", "pd"}),
    ("has any", Has("Observation", "subject", Always()), {"pa", "pc"}),
    ("has and chain", And((Has("Observation", "subject", Always()), Chain("org", "Organization", ACME))), {"pa"}),
    ("injection: operator string", m("string", "family", ("value", "eq", "$where")), set()),
    ("injection: regex metacharacters", m("string", "family", ("value", "contains", ".*")), set()),
]


@pytest.mark.parametrize(("where", "expected"), [c[1:] for c in SEARCH_CASES], ids=[c[0] for c in SEARCH_CASES])
async def test_search_patients(dataset: MongoStore, where: Condition, expected: set[str]) -> None:
    result = await dataset.search(Query(("Patient",), where, count=50, total="accurate"))
    assert {r.id for r in result.rows} == expected
    assert result.total == len(expected)
    assert all(r.type == "Patient" and not r.deleted for r in result.rows)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (Query(("Observation",), Chain("subject", "Patient", Chain("org", "Organization", ACME))), ["ob1"]),
        (Query(("Observation", "Organization"), Always(), count=50), ["ob1", "ob2", "ob3", "o1", "o2"]),
        (Query((), ResourceTest("type", "eq", "Organization")), ["o1", "o2"]),
        (Query(("Organization",), Has("Patient", "org", Has("Observation", "subject", CODE_1234))), ["o1"]),
    ],
)
async def test_search_across_types(dataset: MongoStore, query: Query, expected: list[str]) -> None:
    got = await dataset.search(query)
    assert sorted(r.id for r in got.rows) == sorted(expected)


LITERALS = ["中文", "中", "a.b", "a*c", "ab", "a\\b", "(x)", "$where", "a\U0010ffff", "é"]


@pytest.mark.parametrize(
    ("op", "needle"),
    [("prefix", n) for n in ("中", "a", "a.", "a*", "a\\", "(", "$", "a\U0010ffff")]
    + [("contains", n) for n in (".", "*", "\\", "b", "文", "x)", "$")],
)
async def test_text_operators_match_literally_on_the_server(
    stores: dict[str, MongoStore], op: str, needle: str
) -> None:
    store = stores["compensation"]
    kind = "Literal"
    if (await store.search(Query((kind,), Always(), count=0, total="accurate"))).total == 0:
        for i, text in enumerate(LITERALS):
            await put(store, kind, f"l{i}", [Entry("string", "name", (text, text))])
    found = await store.search(Query((kind,), m("string", "name", ("value", op, needle)), count=50))
    expected = {f"l{i}" for i, t in enumerate(LITERALS) if (t.startswith(needle) if op == "prefix" else needle in t)}
    assert {r.id for r in found.rows} == expected


async def test_search_rejects_document_values(dataset: MongoStore) -> None:
    with pytest.raises(InvalidSearch):
        await dataset.search(Query(("Patient",), m("string", "family", ("value", "eq", {"$ne": None}))))


async def test_search_totals_and_empty_pages(dataset: MongoStore) -> None:
    everyone = Query(("Patient",), Always(), count=0, total="accurate")
    assert await dataset.search(everyone) == await dataset.search(everyone)
    result = await dataset.search(everyone)
    assert (result.rows, result.total, result.next_after) == ([], 4, None)
    estimate = await dataset.search(Query(("Patient",), Always(), count=2, total="estimate"))
    assert (len(estimate.rows), estimate.total) == (2, 4)
    assert (await dataset.search(Query(("Patient",), Always()))).total is None


ASC = SortKey("date", "birthdate", "lo")
DESC = SortKey("date", "birthdate", "hi", descending=True)
FAMILY = SortKey("string", "family", "value")
FAMILY_DESC = SortKey("string", "family", "value", descending=True)
ID_DESC = SortKey("resource", "id", "id", descending=True)

SORTS: list[tuple[str, tuple[SortKey, ...], list[str]]] = [
    ("default: type, id", (), ["pa", "pb", "pc", "pd"]),
    ("date asc, missing last", (ASC,), ["pa", "pb", "pc", "pd"]),
    ("date desc by max, missing last", (DESC,), ["pb", "pa", "pc", "pd"]),
    ("string asc by min", (FAMILY,), ["pc", "pa", "pb", "pd"]),
    ("string desc by max", (FAMILY_DESC,), ["pb", "pa", "pc", "pd"]),
    ("id desc", (ID_DESC,), ["pd", "pc", "pb", "pa"]),
    ("missing key then tie-break by id desc", (ASC, ID_DESC), ["pa", "pb", "pd", "pc"]),
    ("two parameter keys", (SortKey("number", "n", "hi", descending=True), FAMILY), ["pb", "pa", "pc", "pd"]),
]


@pytest.mark.parametrize(("keys", "expected"), [s[1:] for s in SORTS], ids=[s[0] for s in SORTS])
@pytest.mark.parametrize("count", [1, 3, 10])
async def test_sort_and_keyset_pages(
    dataset: MongoStore, keys: tuple[SortKey, ...], expected: list[str], count: int
) -> None:
    seen: list[str] = []
    after = None
    for _ in range(10):
        page = await dataset.search(Query(("Patient",), Always(), keys, count=count, after=after))
        seen += [r.id for r in page.rows]
        after = page.next_after
        if after is None:
            break
    assert seen == expected


async def test_keyset_paging_has_no_gaps_or_duplicates_while_writes_happen(store: MongoStore) -> None:
    kind = uid("K")
    values = {f"r{i:02d}": (None if i % 4 == 0 else (i * 37) % 11) for i in range(24)}

    def entries(value: int | None) -> list[Entry]:
        return [] if value is None else [Entry("number", "rank", (float(value), float(value)))]

    for id_, value in values.items():
        await put(store, kind, id_, entries(value))
    keys = (SortKey("number", "rank", "lo"),)
    seen: list[str] = []
    after = None
    for step in itertools.count():
        page = await store.search(Query((kind,), Always(), keys, count=5, after=after))
        seen += [r.id for r in page.rows]
        # concurrent traffic: new resources anywhere in the order, and updates that keep the key
        await put(store, kind, f"new{step}", entries(step % 11 if step % 2 else None))
        touched = f"r{(step * 7) % 24:02d}"
        current = await store.read(kind, touched)
        assert current is not None
        await put(store, kind, touched, entries(values[touched]), version=current.version + 1, expected=current.version)
        after = page.next_after
        if after is None:
            break
    assert len(seen) == len(set(seen)), "a row was returned twice"
    assert set(values) <= set(seen), "a row that existed throughout was skipped"


# --- sessions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["compensation", "transaction"])
async def test_session_reads_its_own_writes(stores: dict[str, MongoStore], mode: str) -> None:
    store = stores[mode]
    id_ = uid()
    where = Match("token", "identifier", (FieldTest("code", "eq", id_),))
    async with store.session() as s:
        v = new_version("Patient", id_)
        await s.write(Write(v, [Entry("token", "identifier", ("urn:t", id_, None))], None))
        assert await s.read("Patient", id_) == v
        assert await s.find("Patient", where, 10) == [id_]
        assert await s.find("Patient", where, 0) == []
    assert await store.read("Patient", id_) == v


class Boom(Exception):
    pass


@pytest.mark.parametrize("mode", ["compensation", "transaction"])
async def test_rollback_leaves_nothing(stores: dict[str, MongoStore], mode: str) -> None:
    store = stores[mode]
    kind = uid("R")
    old = [Entry("token", "tag", ("urn:t", "old", None))]
    kept = await put(store, kind, "kept", old)
    doomed = await put(store, kind, "doomed", old)
    key = f"{kind}?tag=new"
    with pytest.raises(Boom):
        async with store.session() as s:
            await s.lock(key)
            await s.write(Write(new_version(kind, "fresh"), [Entry("token", "tag", ("urn:t", "new", None))], None))
            await s.write(Write(new_version(kind, "kept", 2), [Entry("token", "tag", ("urn:t", "new", None))], 1))
            await s.write(Write(new_version(kind, "kept", 3), [Entry("token", "tag", ("urn:t", "newer", None))], 2))
            await s.write(Write(new_version(kind, "doomed", 2, deleted=True), [], 1))
            raise Boom
    assert await store.read(kind, "fresh") is None
    assert await store.history(HistoryQuery(kind, "fresh")) == []
    assert await store.read(kind, "kept") == kept
    assert await store.read(kind, "doomed") == doomed
    assert await store.history(HistoryQuery(kind)) == [doomed, kept]
    tagged = await store.search(Query((kind,), Match("token", "tag", (FieldTest("code", "eq", "old"),))))
    assert sorted(r.id for r in tagged.rows) == ["doomed", "kept"]
    for code in ("new", "newer"):
        found = await store.search(Query((kind,), Match("token", "tag", (FieldTest("code", "eq", code),))))
        assert found.rows == []
    assert await store.db[LOCKS].find_one({"_id": f"lock {key}"}) is None


@pytest.mark.parametrize("mode", ["compensation", "transaction"])
async def test_conflict_in_a_session_undoes_its_earlier_writes(stores: dict[str, MongoStore], mode: str) -> None:
    store = stores[mode]
    id_ = uid()
    await put(store, "Patient", id_)
    with pytest.raises(VersionConflict):
        async with store.session() as s:
            await s.write(Write(new_version("Patient", f"{id_}-new"), [], None))
            await s.write(Write(new_version("Patient", id_, 2), [], None))  # exists already
    assert await store.read("Patient", f"{id_}-new") is None


async def test_detection_matches_the_deployment(store: MongoStore) -> None:
    hello = await store.db.client.admin.command("hello")
    replicated = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
    # a replica set or mongos has isolated transactions; standalone mongod and nx-27017 do not
    assert store.transactions is replicated


async def test_concurrent_conditional_creates_make_one_resource(store: MongoStore) -> None:
    ident = uid("mrn")
    where = Match("token", "identifier", (FieldTest("system", "eq", "urn:mrn"), FieldTest("code", "eq", ident)))

    async def conditional_create() -> bool:
        async with store.session() as s:
            await s.lock(f"Patient?identifier=urn:mrn|{ident}")
            if await s.find("Patient", where, 2):
                return False
            await asyncio.sleep(0.005)  # the work between match and write (validation, ids) widens the race
            entry = Entry("token", "identifier", ("urn:mrn", ident, None))
            await s.write(Write(new_version("Patient", uid()), [entry], None))
            return True

    created = await asyncio.gather(*(conditional_create() for _ in range(64)))
    assert sum(created) == 1
    assert len((await store.search(Query(("Patient",), where, count=10))).rows) == 1


async def test_lock_takes_over_an_expired_lease(store: MongoStore) -> None:
    key = uid("k")
    await store.db[LOCKS].insert_one({"_id": f"lock {key}", "owner": "crashed", "expires": 0})
    async with store.session() as s:
        await asyncio.wait_for(s.lock(key), 2)
        lease = await store.db[LOCKS].find_one({"_id": f"lock {key}"})
        assert lease is not None and lease["owner"] != "crashed"
    assert await store.db[LOCKS].find_one({"_id": f"lock {key}"}) is None


async def test_busy_lock_times_out_with_contention(store: MongoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock wait that runs out is a Contention (409, re-run by the request), never a plain Conflict."""
    monkeypatch.setattr(session_module, "LOCK_WAIT_S", 0.2)
    key = uid("k")
    async with store.session() as holder:
        await holder.lock(key)
        await holder.lock(key)  # re-entrant within one session
        with pytest.raises(Contention):
            async with store.session() as waiter:
                await waiter.lock(key)
    async with store.session() as later:
        await asyncio.wait_for(later.lock(key), 2)


async def test_long_sessions_renew_their_leases(store: MongoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "LOCK_TTL_S", 0.3)
    key = uid("k")
    async with store.session() as s:
        await s.lock(key)
        await asyncio.sleep(0.35)  # past the original expiry
        await s.write(Write(new_version("Basic", uid()), [], None))  # renews before writing
        lease = await store.db[LOCKS].find_one({"_id": f"lock {key}"})
        assert lease is not None and lease["expires"] > session_module._now_ms()


async def test_lock_waits_for_the_holder(store: MongoStore) -> None:
    key = uid("k")
    order: list[str] = []

    async def hold(s: Session) -> None:
        await asyncio.sleep(0.1)
        order.append("holder done")

    async with store.session() as first:
        await first.lock(key)
        waiter = asyncio.create_task(_lock_and_log(store, key, order))
        await hold(first)
    await asyncio.wait_for(waiter, 5)
    assert order == ["holder done", "waiter locked"]


async def _lock_and_log(store: MongoStore, key: str, order: list[str]) -> None:
    async with store.session() as s:
        await s.lock(key)
        order.append("waiter locked")


# --- operations ---------------------------------------------------------------------------------


async def test_stats_and_ping(stores: dict[str, MongoStore]) -> None:
    store = stores["compensation"]
    kind = uid("S")
    await put(store, kind, "a")
    await put(store, kind, "b")
    await put(store, kind, "b", version=2, expected=1, deleted=True)
    stats = await store.stats()
    assert stats["resources"][kind] == 1
    assert stats["versions"] >= 3
    assert await store.ping() is True


async def test_unreachable_server() -> None:
    store = MongoStore("mongodb://127.0.0.1:9/yidang?serverSelectionTimeoutMS=200&connectTimeoutMS=200")
    assert await store.ping() is False
    with pytest.raises(StoreUnavailable):
        await store.open()
    with pytest.raises(StoreUnavailable):
        store.session()

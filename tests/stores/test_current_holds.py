"""``Store.current_holds`` on both stores: a condition decided on the entries the store holds for a
resource's current version (how reads decide visibility without re-indexing the body). Its answer is
either None (not the current version, deleted, or a store that leaves it to the body) or exactly what
a search with the same condition finds; the embedded store always answers for the current version.
"""

from __future__ import annotations

import uuid

import pytest

from server.fhir.json import dumps
from server.search.model import And, Condition, Entry, FieldTest, Match, Missing, Not, Or, Query, ResourceTest
from server.stores.base import Store, Version, Write

LU = 1_767_225_600_000_000
TAG = "urn:yidang:test-source"


def tagged(id_: str, version: int, institution: str, category: str) -> Write:
    body = {"resourceType": "Basic", "id": id_, "meta": {"versionId": str(version),
                                                         "tag": [{"system": TAG, "code": institution}]}}
    entries = [Entry("token", "_tag", (TAG, institution, None)), Entry("token", "code", (None, category, None))]
    return Write(Version("Basic", id_, version, LU + version, False, "PUT", dumps(body)), entries,
                 None if version == 1 else version - 1)


def tag_is(code: str) -> Match:
    return Match("token", "_tag", (FieldTest("system", "eq", TAG), FieldTest("code", "eq", code)))


def code_is(code: str) -> Match:
    return Match("token", "code", (FieldTest("code", "eq", code),))


async def two_versions(store: Store, prefix: str) -> str:
    """A new Basic: version 1 from institution B (code vital), version 2 from A (code lab)."""
    id_ = f"{prefix}{uuid.uuid4().hex[:12]}"
    async with store.session() as session:
        await session.write(tagged(id_, 1, "B", "vital"))
    async with store.session() as session:
        await session.write(tagged(id_, 2, "A", "lab"))
    return id_


CONDITIONS: list[tuple[str, Condition]] = [
    ("own tag (one seek)", tag_is("A")),
    ("other tag", tag_is("B")),
    ("code only (no system: walks the entries)", code_is("lab")),
    ("tag or code", Or((tag_is("B"), code_is("lab")))),
    ("tag and not code", And((tag_is("A"), Not(code_is("lab"))))),
    ("missing parameter", Missing("token", "status", True)),
    ("last updated", ResourceTest("last_updated", "ge", LU + 2)),
]


@pytest.mark.parametrize("name, where", CONDITIONS, ids=[c[0] for c in CONDITIONS])
async def test_agrees_with_search_on_the_current_version(store: Store, name: str, where: Condition) -> None:
    id_ = await two_versions(store, "h")
    found = {row.id for row in (await store.search(Query(("Basic",), And((ResourceTest("id", "eq", id_), where)),
                                                         count=10))).rows}
    got = await store.current_holds("Basic", id_, 2, where)
    if store.kind == "sqlite":
        assert got is not None
    assert got is None or got == (id_ in found)
    assert await store.current_holds("Basic", id_, 1, where) is None  # not the current version
    assert await store.current_holds("Basic", "no-such-id", 1, where) is None


async def test_no_answer_for_a_deleted_resource(store: Store) -> None:
    id_ = f"d{uuid.uuid4().hex[:12]}"
    async with store.session() as session:
        await session.write(tagged(id_, 1, "A", "lab"))
    async with store.session() as session:
        await session.write(Write(Version("Basic", id_, 2, LU + 9, True, "DELETE", None), [], 1))
    assert await store.current_holds("Basic", id_, 2, tag_is("A")) is None
    assert await store.current_holds("Basic", id_, 1, tag_is("A")) is None


def test_the_embedded_store_seeks_a_pinned_value_and_walks_the_rest() -> None:
    from server.stores.sqlite.compile import holds_sql

    assert "INDEXED BY idx_token_q0" in holds_sql("Basic", "x", 1, tag_is("A")).text
    assert "INDEXED BY idx_token_rid" in holds_sql("Basic", "x", 1, code_is("lab")).text
    sql = holds_sql("Basic", "x", 3, Or((tag_is("A"), code_is("lab"))))
    assert sql.params[-3:] == ["Basic", "x", 3] and sql.text.count("EXISTS") == 2


@pytest.mark.parametrize("name, where", CONDITIONS, ids=[c[0] for c in CONDITIONS])
async def test_read_holding_reads_and_decides_as_current_holds(store: Store, name: str, where: Condition) -> None:
    id_ = await two_versions(store, "r")
    version, decided = await store.read_holding("Basic", id_, where)
    assert version == await store.read("Basic", id_)
    assert decided == await store.current_holds("Basic", id_, 2, where)
    assert await store.read_holding("Basic", "no-such-id", where) == (None, None)
    async with store.session() as session:
        await session.write(Write(Version("Basic", id_, 3, LU + 9, True, "DELETE", None), [], 2))
    version, decided = await store.read_holding("Basic", id_, where)
    assert version is not None and version.deleted and version.version == 3 and decided is None

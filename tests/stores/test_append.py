"""``Session.append`` on both stores: brand-new resources stored in bulk (the audit writer's batches)
are read, searched and listed in history exactly like ones stored through ``Session.write``; an id
that exists (stored before, or twice in one batch) is refused with ``VersionConflict`` and, the
session rolled back, nothing of the batch is stored."""

from __future__ import annotations

import uuid

import pytest

from server.fhir.json import dumps, load_stored
from server.search.model import And, Entry, FieldTest, Match, Query, ResourceTest
from server.stores.base import HistoryQuery, Store, Version, VersionConflict, Write

LU = 1_767_225_600_000_000


def tag() -> str:
    """A token value no other test uses (the store fixture is shared by the module)."""
    return f"t{uuid.uuid4().hex[:12]}"


def basic(id_: str, code: str, n: int, *, dates: int = 1) -> Write:
    body = {"resourceType": "Basic", "id": id_, "code": {"coding": [{"system": "urn:t", "code": code}]},
            "meta": {"versionId": "1"}}
    entries = [Entry("token", "code", ("urn:t", code, None)), Entry("token", "number", (None, str(n), None))]
    entries += [Entry("date", "created", (LU + n + d * 10**9, LU + n + d * 10**9)) for d in range(dates)]
    return Write(Version("Basic", id_, 1, LU + n, False, "POST", dumps(body)), entries, None)


def by_code(code: str, *more: object) -> Query:
    where = Match("token", "code", (FieldTest("code", "eq", code),))
    return Query(("Basic",), And((where, *more)) if more else where, count=100)  # type: ignore[arg-type]


async def ids(store: Store, query: Query) -> set[str]:
    return {row.id for row in (await store.search(query)).rows}


async def test_appended_resources_are_read_searched_and_in_history(store: Store) -> None:
    code = tag()
    writes = [basic(f"{code}-{n}", code, n) for n in range(30)]
    async with store.session() as session:
        await session.append(writes)
    for write in writes:
        found = await store.read("Basic", write.version.id)
        assert found is not None and found.version == 1 and load_stored(found.body or b"")["id"] == write.version.id
        assert await store.vread("Basic", write.version.id, 1) is not None
        assert [v.version for v in await store.history(HistoryQuery("Basic", write.version.id))] == [1]
    assert await ids(store, by_code(code)) == {w.version.id for w in writes}
    assert await ids(store, by_code(code, Match("token", "number", (FieldTest("code", "eq", "7"),)))) == {f"{code}-7"}
    assert await ids(store, by_code(code, ResourceTest("last_updated", "ge", LU + 28))) == {f"{code}-28", f"{code}-29"}


async def test_append_and_write_index_alike(store: Store) -> None:
    """One resource through ``write``, one through ``append``, in one session and after: the same
    searches find both, including several dates of one parameter (SQLite's hull rows)."""
    code = tag()
    async with store.session() as session:
        await session.write(basic(f"{code}-w", code, 1, dates=3))
        await session.append([basic(f"{code}-a", code, 1, dates=3)])
    async with store.session() as session:
        await session.append([basic(f"{code}-b", code, 2, dates=3)])
        await session.write(basic(f"{code}-v", code, 2, dates=3))
    both = {f"{code}-w", f"{code}-a", f"{code}-b", f"{code}-v"}
    assert await ids(store, by_code(code)) == both
    late = Match("date", "created", (FieldTest("lo", "ge", LU + 2 * 10**9),))
    assert await ids(store, by_code(code, late)) == both
    early = Match("date", "created", (FieldTest("hi", "le", LU + 1),))
    assert await ids(store, by_code(code, early)) == {f"{code}-w", f"{code}-a"}


@pytest.mark.parametrize("where", ["stored", "batch"])
async def test_an_existing_id_is_refused_and_nothing_is_stored(store: Store, where: str) -> None:
    code = tag()
    taken = f"{code}-taken"
    if where == "stored":
        async with store.session() as session:
            await session.append([basic(taken, code, 0)])
        batch = [basic(f"{code}-{n}", code, n) for n in range(1, 5)] + [basic(taken, code, 9)]
    else:
        batch = [basic(taken, code, 0)] + [basic(f"{code}-{n}", code, n) for n in range(1, 5)] + [basic(taken, code, 9)]
    with pytest.raises(VersionConflict):
        async with store.session() as session:
            await session.append(batch)
    assert await ids(store, by_code(code)) == ({taken} if where == "stored" else set())
    for n in range(1, 5):
        assert await store.read("Basic", f"{code}-{n}") is None
    if where == "stored":
        found = await store.read("Basic", taken)
        assert found is not None and found.last_updated == LU  # the first one, untouched


async def test_an_id_deleted_before_is_not_fresh(store: Store) -> None:
    code = tag()
    gone = f"{code}-gone"
    async with store.session() as session:
        await session.append([basic(gone, code, 0)])
    async with store.session() as session:
        await session.write(Write(Version("Basic", gone, 2, LU + 5, True, "DELETE", None), (), 1))
    with pytest.raises(VersionConflict):
        async with store.session() as session:
            await session.append([basic(gone, code, 6)])


async def test_an_empty_batch_and_ids_read_in_the_session(store: Store) -> None:
    code = tag()
    async with store.session() as session:
        await session.append([])
        assert await session.read("Basic", f"{code}-1") is None  # seen by the session first
        await session.append([basic(f"{code}-1", code, 1), basic(f"{code}-2", code, 2)])
        found = await session.read("Basic", f"{code}-2")
        assert found is not None and found.version == 1
    assert await ids(store, by_code(code)) == {f"{code}-1", f"{code}-2"}

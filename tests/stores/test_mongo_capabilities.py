"""MongoDB capability detection (server/stores/mongo/capabilities.py, issue 12 §1 and §4).

The store probes the server once at open and compiles the efficient query forms only where the
server answered its probe correctly. Checked here on the test server (nx-27017 unless
``YIDANG_TEST_MONGODB_URI`` names a real deployment): the detected flags agree with what the server
actually answers when a store is forced to each set of forms, the detected store answers the
searches right, the probe leaves nothing behind, one INFO line says what was found, and forcing
works by constructor argument and by setting. The efficient forms' exact shape for a capable
server is asserted at the compile level (tests/stores/test_mongo_compile.py).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from bson import json_util
from pymongo.errors import OperationFailure

from server.app import make_store
from server.search.model import And, Chain, FieldTest, Has, Match
from server.settings import Settings
from server.stores.mongo import MongoStore, reads
from server.stores.mongo import compile as c
from server.stores.mongo.capabilities import EFFICIENT, FALLBACK, FLAGS, PROBE, Capabilities, detect, server_name
from server.stores.mongo.schema import PROBE as SCHEMA_PROBE
from tests.conftest import make_client
from tests.http import test_search_reference, test_search_uri
from tests.http.searching import load, search_ids

pytestmark = pytest.mark.mongo

FORMS = ("detect", "efficient", "fallback")

SEARCHES: list[tuple[str, str]] = [
    # queries whose compiled form differs between the efficient and the fallback forms
    ("/ValueSet", f"url:above={test_search_uri.ACME}/123/_history/5"),
    ("/ValueSet", "url:above=http://acme.org/other/ValueSet/9/x"),
    ("/Observation", "subject.name=alpha"),
    ("/Observation", "subject:Patient.name=alpha,beta"),
    ("/Observation", "subject:Patient.organization.name=peking"),
    ("/Observation", "subject=pb,pa"),
    ("/Patient", "organization.name=peking&_has:Observation:subject:code=Y"),
]


@pytest_asyncio.fixture(scope="module")
async def stores(mongo_server_uri: str) -> AsyncIterator[dict[str, MongoStore]]:
    """Three stores on one database: forms detected, forced efficient, forced fallback."""
    database = f"t_caps_{uuid.uuid4().hex[:8]}"
    opened: dict[str, MongoStore] = {}
    for forms in FORMS:
        store = MongoStore(mongo_server_uri, database=database, capabilities=forms)
        await store.open()
        opened[forms] = store
    async with make_client(opened["detect"]) as client:
        await load(client, [*test_search_uri.RESOURCES, *test_search_reference.RESOURCES])
    yield opened
    await opened["detect"].db.client.drop_database(database)
    for store in opened.values():
        await store.close()


async def _answers(store: MongoStore) -> list[list[str]]:
    async with make_client(store) as client:
        return [sorted(await search_ids(client, path, query)) for path, query in SEARCHES]


async def test_detection_names_the_server_and_decides_every_flag(stores: dict[str, MongoStore]) -> None:
    found = stores["detect"].capabilities
    build = await stores["detect"].db.command("buildInfo")
    assert found.server == server_name(build) and "forced" not in found.server
    assert found.transactions == stores["detect"].transactions  # reused, not probed twice
    if "nx" in str(build.get("process", "")):  # nx-27017 gets every efficient probe wrong
        assert found == Capabilities(server=found.server)


async def test_the_detected_flags_are_what_the_server_answers(stores: dict[str, MongoStore]) -> None:
    right = await _answers(stores["fallback"])  # the forms every server answers
    expected = [sorted(ids) for ids in _expected()]
    assert right == expected
    assert await _answers(stores["detect"]) == expected
    efficient = await _answers(stores["efficient"])
    # a server whose probe failed gets the efficient forms wrong (nx-27017 returns nothing for $in
    # inside $elemMatch): that is why they are compiled only where the probe passed
    if stores["detect"].capabilities.in_elem_match:
        assert efficient == expected
    else:
        assert efficient != expected


def _expected() -> list[set[str]]:
    tables = {**dict(test_search_uri.CASES), **dict(test_search_reference.OBSERVATIONS),
              **dict(test_search_reference.PATIENTS)}
    return [tables[query] for _, query in SEARCHES]


async def test_forced_forms_keep_the_detected_transactions(stores: dict[str, MongoStore]) -> None:
    detected = stores["detect"]
    for name, flags in (("efficient", EFFICIENT), ("fallback", FALLBACK)):
        caps = stores[name].capabilities
        assert caps.in_elem_match == flags.in_elem_match and caps.lookup_arrays == flags.lookup_arrays
        assert caps.transactions == detected.transactions == stores[name].transactions
        assert caps.server.endswith("forms forced")


async def test_forms_forced_by_setting_and_by_value(mongo_server_uri: str) -> None:
    store = make_store(Settings(store="mongo", mongodb_uri=mongo_server_uri, mongodb_query_forms="efficient",
                                mongodb_database=f"t_caps_{uuid.uuid4().hex[:8]}"))
    assert isinstance(store, MongoStore)
    await store.open()
    try:
        assert store.capabilities.in_elem_match
    finally:
        await store.db.client.drop_database(store.db.name)
        await store.close()
    custom = MongoStore(mongo_server_uri, database=f"t_caps_{uuid.uuid4().hex[:8]}",
                        capabilities=Capabilities(lookup_arrays=True))
    await custom.open()
    try:
        assert custom.capabilities.lookup_arrays and not custom.capabilities.in_elem_match
    finally:
        await custom.db.client.drop_database(custom.db.name)
        await custom.close()
    with pytest.raises(ValueError, match="capabilities"):
        MongoStore(mongo_server_uri, capabilities="fastest")


async def test_the_probe_leaves_nothing_and_logs_one_line(mongo_server_uri: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    store = MongoStore(mongo_server_uri, database=f"t_caps_{uuid.uuid4().hex[:8]}")
    with caplog.at_level(logging.INFO, logger="server.stores.mongo"):
        await store.open()
    try:
        assert await store.db[PROBE].count_documents({}) == 0
        lines = [r.getMessage() for r in caplog.records if "MongoDB capabilities of" in r.getMessage()]
        assert len(lines) == 1 and "\n" not in lines[0]
        assert all(f"{flag}=" in lines[0] for flag in FLAGS) and store.capabilities.server in lines[0]
    finally:
        await store.db.client.drop_database(store.db.name)
        await store.close()


# --- without a server -------------------------------------------------------------------------


@pytest.mark.parametrize(("build", "name"), [
    ({"version": "7.0.0", "process": "nx_27017"}, "nx-27017 (reports MongoDB 7.0.0)"),
    ({"version": "7.0.14", "gitVersion": "abc"}, "MongoDB 7.0.14"),
    ({"version": "6.0.1", "process": "ferretdb"}, "ferretdb (reports MongoDB 6.0.1)"),
    ({}, "MongoDB ?"),
])
def test_server_name(build: dict[str, Any], name: str) -> None:
    assert server_name(build) == name


class _Refusing:
    """A database on which every probe fails."""

    def __getitem__(self, name: str) -> _Refusing:
        return self

    async def command(self, *args: object, **kwargs: object) -> dict[str, Any]:
        raise OperationFailure("not allowed", 13)

    async def create_indexes(self, *args: object, **kwargs: object) -> None:
        raise OperationFailure("not allowed", 13)


async def test_a_probe_that_cannot_run_means_the_forms_every_server_answers() -> None:
    found = await detect(_Refusing(), transactions=True)  # type: ignore[arg-type]
    assert found == Capabilities(transactions=True, server="unknown server (OperationFailure)")
    assert FALLBACK.describe().count("=no") == len(FLAGS)


def test_the_probe_collection_is_the_schema_one() -> None:
    assert PROBE == SCHEMA_PROBE


@pytest.mark.parametrize("caps", [EFFICIENT, FALLBACK], ids=["efficient", "fallback"])
def test_a_plan_shows_how_many_ids_a_sub_query_found_in_either_form(caps: Capabilities) -> None:
    chain = Chain("subject", "Patient", Match("string", "family", (FieldTest("value", "eq", "x"),)))
    has = Has("Observation", "subject", Match("token", "code", (FieldTest("code", "eq", "y"),)))
    found: dict[Chain | Has, c.Filter] = {chain: c.chain_filter(chain, ["secret-1", "secret-2"], caps),
                                          has: c.has_filter(["Patient/secret-3"])}
    shown = json_util.dumps(list(reads._shown(And((chain, has)), found).values()))
    assert "secret" not in shown
    assert "<2 Patient resources found by a sub-query>" in shown
    assert "<1 resources it points at found by a sub-query>" in shown
    none: dict[Chain | Has, c.Filter] = {chain: c.NEVER, has: c.NEVER}
    assert "<0 Patient resources" in json_util.dumps(list(reads._shown(And((chain, has)), none).values()))

"""A sharded cluster, resident by resident (issue 12 §3; design in server/stores/mongo/sharding.py).

No ``mongod`` and no mongos run here, so the routing is checked on the compiled queries: every
search that names a patient (``patient=``/``subject=``, compartment search, ``$everything``,
``Patient?_id=``) must carry an equality or ``$in`` on the shard key ``sk`` that mongos targets,
and a query shape that loses it is caught. The same routed filters then run on nx-27017 (the store
forced to its "behind mongos" mode) and must return what the unrouted ones return; writes there keep
``sk`` right through updates that move a resource to another resident, and deletions.
``yidang mongo setup`` is run against nx-27017 (non-sharded part) and checked by its emitted
commands (``--sharded --dry-run``, ``--zones``).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import bson
import pytest
import pytest_asyncio
from pymongo import MongoClient
from typer.testing import CliRunner

from profiles.definitions import core
from server.cli import app
from server.search.compartment import Compartment, compartment, membership
from server.search.index import Indexer
from server.search.model import And, Condition, Or, Query, ResourceTest
from server.search.parse import parse_search
from server.search.registry import SearchRegistry
from server.stores.base import Version, Write
from server.stores.mongo import MongoStore, reads, sharding
from server.stores.mongo.capabilities import EFFICIENT, FALLBACK, Capabilities
from server.stores.mongo.schema import HISTORY, RESOURCES
from server.stores.mongo.sharding import SHARED, SK, ZoneError, parse_zones, shard_key, shard_targets
from tests.conftest import database_uri
from tests.paths import SAMPLES

YIDANG = Path(sys.executable).with_name("yidang")
REGISTRY = SearchRegistry()
INDEXER = Indexer(REGISTRY)
_FOUND = compartment(core(), "Patient")
assert _FOUND is not None
PATIENT: Compartment = _FOUND
ROUTED = [Capabilities(sharded=True), Capabilities(in_elem_match=True, array_equality=True, lookup_arrays=True,
                                                   transactions=True, sharded=True)]


def key_of(resource: dict[str, Any]) -> str:
    return shard_key(resource["resourceType"], resource["id"], INDEXER.entries(resource))


def obs(id_: str, subject: str | None, performer: Sequence[str] = ()) -> dict[str, Any]:
    r: dict[str, Any] = {"resourceType": "Observation", "id": id_, "status": "final",
                         "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}}
    if subject:
        r["subject"] = {"reference": subject}
    if performer:
        r["performer"] = [{"reference": p} for p in performer]
    return r


# --- the shard key ------------------------------------------------------------------------------

KEYS = [
    ("a patient is its own resident", {"resourceType": "Patient", "id": "p1"}, "Patient/p1"),
    ("observation of one resident", obs("o1", "Patient/p1"), "Patient/p1"),
    ("performed by the same resident", obs("o2", "Patient/p1", ["Patient/p1"]), "Patient/p1"),
    ("performed by another resident", obs("o3", "Patient/p1", ["Patient/p2"]), SHARED),
    ("about a group: no resident", obs("o4", "Group/g1"), "Observation/o4"),
    ("performed by a practitioner", obs("o5", "Patient/p1", ["Practitioner/d1"]), "Patient/p1"),
    ("no compartment at all", {"resourceType": "Organization", "id": "org1", "name": "x"}, "Organization/org1"),
    ("a patient linked to a duplicate", {"resourceType": "Patient", "id": "p3",
                                         "link": [{"other": {"reference": "Patient/p4"}, "type": "replaces"}]}, SHARED),
    ("a group of residents", {"resourceType": "Group", "id": "g1", "type": "person", "actual": True,
                              "member": [{"entity": {"reference": "Patient/p1"}},
                                         {"entity": {"reference": "Patient/p2"}}]}, SHARED),
    ("an encounter", {"resourceType": "Encounter", "id": "e1", "status": "finished",
                      "class": {"code": "AMB"}, "subject": {"reference": "Patient/p7"}}, "Patient/p7"),
    ("terminology", {"resourceType": "CodeSystem", "id": "cs", "status": "active", "content": "complete"},
     "CodeSystem/cs"),
]


@pytest.mark.parametrize(("resource", "expected"), [(r, k) for _, r, k in KEYS], ids=[n for n, _, _ in KEYS])
def test_shard_key_is_the_resident(resource: dict[str, Any], expected: str) -> None:
    assert key_of(resource) == expected


def test_observation_patient_parameter_is_an_alias_of_subject() -> None:
    assert {"subject", "patient", "performer"} <= sharding.resident_params("Observation")
    assert sharding.resident_params("Organization") == frozenset()


def test_stored_shard_key_from_the_reference_entries_matches_the_written_one() -> None:
    from server.stores.mongo.schema import current_document

    for _, resource, expected in KEYS:
        v = Version(resource["resourceType"], resource["id"], 1, 0, False, "POST", json.dumps(resource).encode())
        doc = current_document(v, INDEXER.entries(resource))
        assert doc[SK] == expected
        assert sharding.stored_shard_key(doc) == expected


@pytest.mark.slow
def test_synthea_residents_measured() -> None:
    """Resident-keyed, shared and own-keyed documents, sizes and documents per resident on the
    Synthea bundles of the samples (the figures of the sharding docstring; ``pytest -s`` prints them)."""
    from server.stores.mongo.schema import current_document, history_document

    kinds: dict[str, int] = {"resident": 0, "shared": 0, "own": 0}
    sizes: list[int] = []
    per_resident: list[tuple[int, int]] = []
    bundles = sorted((SAMPLES / "synthea").glob("*.json.gz"))
    for bundle in bundles:
        entries = json.loads(gzip.decompress(bundle.read_bytes()))["entry"]
        local = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in entries}
        text = json.dumps([e["resource"] for e in entries])
        for url, key in local.items():  # what a transaction does with its urn:uuid references
            text = text.replace(f'"{url}"', f'"{key}"')
        count = size = 0
        for r in json.loads(text):
            v = Version(r["resourceType"], r["id"], 1, 0, False, "POST", json.dumps(r).encode())
            doc = current_document(v, INDEXER.entries(r))
            k = doc[SK]
            kind = "shared" if k == SHARED else "resident" if k.startswith("Patient/") else "own"
            kinds[kind] += 1
            sizes.append(len(bson.encode(doc)))
            if kind == "resident":
                count += 1
                size += sizes[-1] + len(bson.encode(history_document(v)))
        per_resident.append((count, size))
    counts = sorted(n for n, _ in per_resident)
    print(f"\n{len(bundles)} Synthea bundles: {kinds}; current document {sum(sizes) // len(sizes)} B on average; "
          f"per resident median {counts[len(counts) // 2]} documents, at most {counts[-1]}, at most "
          f"{max(b for _, b in per_resident)} B with history")
    assert kinds["shared"] == 0
    assert kinds["resident"] >= 0.95 * sum(kinds.values())


# --- routing of compiled queries ----------------------------------------------------------------


def parsed(type_: str, query: str) -> Condition:
    return parse_search((type_,), parse_qsl(query), REGISTRY).query.where


def compartment_search(type_: str | None, owner: str, query: str = "") -> tuple[tuple[str, ...], Condition]:
    types = (type_,) if type_ else PATIENT.types()
    within = membership(PATIENT, owner, types)
    if query and type_:
        return types, And((within, parsed(type_, query)))
    return types, within


def everything(owner: str, types: tuple[str, ...] | None = None, since: bool = False) -> tuple[tuple[str, ...],
                                                                                                  Condition]:
    types = types or PATIENT.types()
    where = membership(PATIENT, owner, types)
    if since:
        where = And((where, ResourceTest("last_updated", "ge", 1_700_000_000_000_000)))
    return types, where


PATIENT_SCOPED: list[tuple[str, tuple[str, ...], Condition, set[str]]] = [
    ("Observation?patient=Patient/1", ("Observation",), parsed("Observation", "patient=Patient/1"), {"Patient/1"}),
    ("Observation?subject=Patient/1", ("Observation",), parsed("Observation", "subject=Patient/1"), {"Patient/1"}),
    ("Observation?subject:Patient=1", ("Observation",), parsed("Observation", "subject:Patient=1"), {"Patient/1"}),
    ("Observation?subject=Patient/1,Patient/2", ("Observation",),
     parsed("Observation", "subject=Patient/1,Patient/2"), {"Patient/1", "Patient/2"}),
    ("Observation?patient=Patient/1&code=8867-4&_sort=-date", ("Observation",),
     parsed("Observation", "patient=Patient/1&code=8867-4"), {"Patient/1"}),
    ("Observation?performer=Patient/1", ("Observation",), parsed("Observation", "performer=Patient/1"), {"Patient/1"}),
    ("Encounter?patient=Patient/1", ("Encounter",), parsed("Encounter", "patient=Patient/1"), {"Patient/1"}),
    ("Condition?patient=Patient/1&clinical-status=active", ("Condition",),
     parsed("Condition", "patient=Patient/1&clinical-status=active"), {"Patient/1"}),
    ("MedicationRequest?subject=Patient/1", ("MedicationRequest",),
     parsed("MedicationRequest", "subject=Patient/1"), {"Patient/1"}),
    ("Patient?_id=1", ("Patient",), parsed("Patient", "_id=1"), {"Patient/1"}),
    ("Patient/1/Observation", *compartment_search("Observation", "1"), {"Patient/1"}),
    ("Patient/1/Observation?code=8867-4", *compartment_search("Observation", "1", "code=8867-4"), {"Patient/1"}),
    ("Patient/1/Encounter", *compartment_search("Encounter", "1"), {"Patient/1"}),
    ("Patient/1/Patient", *compartment_search("Patient", "1"), {"Patient/1"}),
    ("Patient/1/*", *compartment_search(None, "1"), {"Patient/1"}),
    ("Patient/1/$everything", *everything("1"), {"Patient/1"}),
    ("Patient/1/$everything?_since=…", *everything("1", since=True), {"Patient/1"}),
    ("Patient/1/$everything?_type=Observation,Encounter", *everything("1", ("Observation", "Encounter")),
     {"Patient/1"}),
]


@pytest.mark.parametrize("caps", ROUTED, ids=["fallback-forms", "efficient-forms"])
@pytest.mark.parametrize(("types", "where", "residents"), [(t, w, r) for _, t, w, r in PATIENT_SCOPED],
                         ids=[n for n, _, _, _ in PATIENT_SCOPED])
def test_every_query_naming_a_patient_carries_the_shard_key(types: tuple[str, ...], where: Condition,
                                                             residents: set[str], caps: Capabilities) -> None:
    f = reads.search_filter(types, where, {}, caps)
    assert shard_targets(f) == frozenset({*residents, SHARED}), f


SCATTER = [
    ("Observation?code=8867-4", ("Observation",), parsed("Observation", "code=8867-4")),
    ("Observation?patient=1 (may be a Group)", ("Observation",), parsed("Observation", "patient=1")),
    ("Organization?name=x", ("Organization",), parsed("Organization", "name=x")),
    ("Observation?subject=Group/1", ("Observation",), parsed("Observation", "subject=Group/1")),
    ("Observation?subject=Patient/1 or code (one branch names no patient)", ("Observation",),
     Or((parsed("Observation", "subject=Patient/1"), parsed("Observation", "code=8867-4")))),
    ("Patient/$everything (no patient)", PATIENT.types(), membership(PATIENT, None, PATIENT.types())),
]


@pytest.mark.parametrize(("types", "where"), [(t, w) for _, t, w in SCATTER], ids=[n for n, _, _ in SCATTER])
def test_queries_naming_no_patient_are_scatter_gather(types: tuple[str, ...], where: Condition) -> None:
    assert shard_targets(reads.search_filter(types, where, {}, ROUTED[0])) is None


def test_the_check_catches_a_query_shape_that_lost_its_shard_key() -> None:
    types, where, _ = PATIENT_SCOPED[0][1:]
    assert shard_targets(reads.search_filter(types, where, {}, FALLBACK)) is None  # routing off: caught
    assert shard_targets(reads.search_filter(types, where, {}, EFFICIENT)) is None
    routed = reads.search_filter(types, where, {}, ROUTED[0])
    assert shard_targets({"$or": [routed, {"type": {"$eq": "Observation"}}]}) is None  # one branch unrouted
    assert shard_targets({"$and": [{"x": 1}, routed]}) == frozenset({"Patient/1", SHARED})
    assert shard_targets({SK: {"$gte": "Patient/1"}}) is None  # a range is not targeted (hashed key)


# --- zones ------------------------------------------------------------------------------------------

BAD_ZONES = [
    ("not json", "{", "not JSON"),
    ("empty", "{}", "non-empty"),
    ("no shards", '{"z": {"districts": ["110101"]}}', "'shards'"),
    ("bad code", '{"z": {"shards": ["s1"], "districts": ["11010"]}}', "GB/T 2260"),
    ("overlap", '{"a": {"shards": ["s1"], "districts": ["1101"]}, "b": {"shards": ["s2"], "districts": ["110105"]}}',
     "overlaps"),
]


@pytest.mark.parametrize(("text", "message"), [(t, m) for _, t, m in BAD_ZONES], ids=[n for n, _, _ in BAD_ZONES])
def test_zones_file_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ZoneError, match=message):
        parse_zones(text)


def test_zone_ranges_cover_the_residents_of_a_district() -> None:
    (zone,) = parse_zones('{"dongcheng": {"shards": ["shard1"], "districts": ["110101"]}}')
    ((low, high),) = sharding.zone_ranges(zone)
    assert low <= "Patient/110101000123" < high
    assert not low <= "Patient/110102000123" < high
    assert not low <= SHARED < high


# --- yidang mongo setup -----------------------------------------------------------------------------

runner = CliRunner()


def test_setup_sharded_dry_run_emits_the_sharding_commands() -> None:
    out = runner.invoke(app, ["mongo", "setup", "--sharded", "--dry-run",
                              "--mongodb-uri", "mongodb://mongos:27017/region"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert 'admin.runCommand({"enableSharding": "region"})' in out.output
    assert 'admin.runCommand({"shardCollection": "region.resources", "key": {"sk": "hashed"}})' in out.output
    assert 'admin.runCommand({"shardCollection": "region.history", "key": {"sk": "hashed"}})' in out.output
    assert 'admin.runCommand({"shardCollection": "region.ids", "key": {"_id": "hashed"}})' in out.output
    drop = next(i for i, line in enumerate(lines) if line.startswith("drop unique index type_1_id_1 of resources"))
    create = next(i for i, line in enumerate(lines) if '"createIndexes": "resources"' in line)
    shard = next(i for i, line in enumerate(lines) if '"shardCollection": "region.resources"' in line)
    assert drop < create < shard  # a unique index not prefixed by sk would make shardCollection fail
    assert '"unique": true' not in lines[create] and '{"name": "sk_hashed", "key": {"sk": "hashed"}}' in lines[create]


def test_setup_with_zones_shards_by_ranges_of_district_codes(tmp_path: Path) -> None:
    zones = tmp_path / "zones.json"
    zones.write_text(json.dumps({"dongcheng": {"shards": ["shard1"], "districts": ["110101"]},
                                 "xicheng": {"shards": ["shard2"], "districts": ["110102"]}}))
    out = runner.invoke(app, ["mongo", "setup", "--sharded", "--zones", str(zones), "--dry-run"])
    assert out.exit_code == 0, out.output
    assert 'admin.runCommand({"shardCollection": "yidang.resources", "key": {"sk": 1}})' in out.output
    assert 'admin.runCommand({"addShardToZone": "shard1", "zone": "dongcheng"})' in out.output
    assert ('admin.runCommand({"updateZoneKeyRange": "yidang.resources", "min": {"sk": "Patient/110101"}, '
            '"max": {"sk": "Patient/110102"}, "zone": "dongcheng"})') in out.output
    assert ('admin.runCommand({"updateZoneKeyRange": "yidang.history", "min": {"sk": "Patient/110102"}, '
            '"max": {"sk": "Patient/110103"}, "zone": "xicheng"})') in out.output


@pytest.mark.parametrize(("args", "message"), [
    (["--zones", "zones.json", "--dry-run"], "zones need --sharded"),
    (["--sharded", "--zones", "missing.json", "--dry-run"], "missing.json"),
    ([], "--dry-run"),
], ids=["zones-without-sharded", "missing-zones-file", "no-uri"])
def test_setup_refuses_bad_arguments(args: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
                                     tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("YIDANG_MONGODB_URI", raising=False)
    (tmp_path / "zones.json").write_text('{"z": {"shards": ["s"], "districts": ["11"]}}')
    out = runner.invoke(app, ["mongo", "setup", *args])
    assert out.exit_code == 2
    assert message in out.output


def setup_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(YIDANG), "mongo", "setup", *args], capture_output=True, text=True, timeout=120,
                          check=False)


def test_setup_against_the_server_is_idempotent_and_fills_in_missing_shard_keys(mongo_server_uri: str) -> None:
    uri = database_uri(mongo_server_uri, f"t_setup_{uuid.uuid4().hex[:8]}")
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    db = client.get_default_database()
    try:
        # a document written before sk existed
        db[RESOURCES].insert_one({"_id": "Observation/old", "type": "Observation", "id": "old", "version": 1,
                                  "deleted": False, "reference": [{"p": "subject", "ref_type": "Patient",
                                                                   "ref_id": "p9", "url": None}]})
        db[HISTORY].insert_one({"_id": "Observation/old/1", "rid": "Observation/old", "type": "Observation",
                                "id": "old", "version": 1})
        first = setup_cli("--mongodb-uri", uri)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "create collection resources" in first.stdout
        assert "sk filled in: 1 resources, 1 history versions" in first.stdout
        assert "shardCollection" not in first.stdout
        second = setup_cli("--mongodb-uri", uri)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "sk filled in: 0 resources, 0 history versions" in second.stdout
        assert {"resources", "history", "locks", "journal", "ids", "probe"} <= set(db.list_collection_names())
        by_key = {tuple(i["key"]): i for i in db[RESOURCES].index_information().values()}  # nx renames them
        assert by_key[(("type", 1), ("id", 1))].get("unique")
        assert (db[RESOURCES].find_one({"_id": "Observation/old"}) or {})[SK] == "Patient/p9"
        assert (db[HISTORY].find_one({"_id": "Observation/old/1"}) or {})[SK] == "Patient/p9"
    finally:
        client.drop_database(db.name)
        client.close()


def test_setup_reports_an_unreachable_server() -> None:
    done = setup_cli("--mongodb-uri", "mongodb://127.0.0.1:1/x?serverSelectionTimeoutMS=200")
    assert done.returncode == 1
    assert done.stderr.startswith("error: ")


# --- the routed filters on a server ---------------------------------------------------------------


@pytest_asyncio.fixture(scope="module")
async def stores(mongo_server_uri: str) -> AsyncIterator[dict[str, MongoStore]]:
    """The same data in a plain store and in one that routes like a store behind mongos
    (transactional sessions, so the ids claims run too)."""
    opened: dict[str, MongoStore] = {}
    for name, caps in (("plain", FALLBACK), ("routed", ROUTED[0])):
        store = MongoStore(mongo_server_uri, database=f"t_shard_{name}_{uuid.uuid4().hex[:8]}",
                           use_transactions=True, capabilities=caps)
        await store.open()
        opened[name] = store
    yield opened
    for store in opened.values():
        assert store._client is not None
        await store._client.drop_database(store.db.name)
        await store.close()


async def put(store: MongoStore, resource: dict[str, Any], version: int = 1) -> None:
    body = json.dumps(resource).encode()
    v = Version(resource["resourceType"], resource["id"], version, version * 1000, False, "PUT", body)
    async with store.session() as s:
        await s.write(Write(v, INDEXER.entries(resource), None if version == 1 else version - 1))


DATA: list[dict[str, Any]] = [
    {"resourceType": "Patient", "id": "1"},
    {"resourceType": "Patient", "id": "2"},
    {"resourceType": "Patient", "id": "3", "link": [{"other": {"reference": "Patient/1"}, "type": "seealso"}]},
    obs("a", "Patient/1"),
    obs("b", "Patient/2", ["Patient/1"]),  # in 1's compartment by performer only: shared
    obs("c", "Patient/2"),
    obs("d", "Group/g"),
    {"resourceType": "Encounter", "id": "e", "status": "finished", "class": {"code": "AMB"},
     "subject": {"reference": "Patient/1"}},
]


@pytest_asyncio.fixture(scope="module")
async def loaded(stores: dict[str, MongoStore]) -> dict[str, MongoStore]:
    for store in stores.values():
        for r in DATA:
            await put(store, r)
    return stores


async def found(store: MongoStore, types: tuple[str, ...], where: Condition) -> list[str]:
    result = await store.search(Query(types, where, count=100))
    return sorted(f"{v.type}/{v.id}" for v in result.rows)


@pytest.mark.parametrize(("types", "where"), [(t, w) for _, t, w, _ in PATIENT_SCOPED],
                         ids=[n for n, _, _, _ in PATIENT_SCOPED])
async def test_routed_searches_return_what_unrouted_ones_return(loaded: dict[str, MongoStore],
                                                                 types: tuple[str, ...], where: Condition) -> None:
    assert await found(loaded["routed"], types, where) == await found(loaded["plain"], types, where)


async def test_compartment_of_a_resident_includes_shared_members(loaded: dict[str, MongoStore]) -> None:
    types, where = everything("1")
    assert await found(loaded["routed"], types, where) == [
        "Encounter/e", "Observation/a", "Observation/b", "Patient/1", "Patient/3"]


async def test_writes_keep_the_shard_key_right_when_the_resident_changes(loaded: dict[str, MongoStore]) -> None:
    store = loaded["routed"]
    resources, history, ids = store.db[RESOURCES], store.db[HISTORY], store.db[sharding.IDS]
    await put(store, obs("m", "Patient/1"))
    assert (await resources.find_one({"_id": "Observation/m"}) or {})[SK] == "Patient/1"
    await put(store, obs("m", "Patient/2"), version=2)  # subject re-pointed: the document moves
    assert (await resources.find_one({"_id": "Observation/m"}) or {})[SK] == "Patient/2"
    assert [d[SK] async for d in history.find({"rid": "Observation/m"}, sort=[("version", 1)])] == [
        "Patient/1", "Patient/2"]
    assert (await ids.find_one({"_id": "Observation/m"}) or {})[SK] == "Patient/2"
    types, where = compartment_search("Observation", "2")
    assert "Observation/m" in await found(store, types, where)
    assert "Observation/m" not in await found(store, *compartment_search("Observation", "1"))
    deletion = Version("Observation", "m", 3, 3000, True, "DELETE", None)
    async with store.session() as s:
        await s.write(Write(deletion, (), 2))
    assert (await resources.find_one({"_id": "Observation/m"}) or {})[SK] == "Patient/2"  # stays where it was
    assert (await history.find_one({"_id": "Observation/m/3"}) or {})[SK] == "Patient/2"

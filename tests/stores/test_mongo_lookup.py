"""The "test each candidate" side of a chain/``_has`` as an aggregation ``$lookup`` (servers whose
``$lookup`` returns real arrays: ``capabilities.lookup_arrays``). nx-27017 returns the joined array
as a JSON string, so it cannot run these pipelines: they are checked here as documents, against
MongoDB's ``$lookup`` semantics (an array ``localField`` matches a document whose ``foreignField``
equals any element; an array ``foreignField`` matches when any element equals the local value)."""

from __future__ import annotations

from server.search.model import And, Chain, FieldTest, Has, Match, Or
from server.stores.mongo import compile as c
from server.stores.mongo import reads
from server.stores.mongo.capabilities import EFFICIENT, FALLBACK

NAME = Match("string", "name", (FieldTest("value", "prefix", "common"),))
CODE = Match("token", "code", (FieldTest("code", "eq", "rare"),))
INNER = {"type": {"$eq": "Patient"}, "deleted": {"$eq": False}, "string": {"$elemMatch": {"p": {"$eq": "name"}}}}


def test_a_chain_joins_the_ids_its_reference_entries_name_to_the_targets_id() -> None:
    chain = Chain("subject", "Patient", NAME)
    stages, stands_for = c.lookup_stages(chain, 0, INNER, "resources")
    assert stages == [
        {"$addFields": {"_sq0k": {"$map": {
            "input": {"$filter": {"input": {"$ifNull": ["$reference", []]}, "as": "e", "cond": {"$and": [
                {"$eq": ["$$e.p", "subject"]}, {"$eq": ["$$e.ref_type", "Patient"]}]}}},
            "as": "e", "in": "$$e.ref_id"}}}},
        {"$lookup": {"from": "resources", "localField": "_sq0k", "foreignField": "id",
                     "pipeline": [{"$match": INNER}, {"$limit": 1}, {"$project": {"_id": 1}}], "as": "_sq0"}},
    ]
    assert stands_for == {"_sq0": {"$ne": []}}


def test_a_has_joins_the_sources_refs_to_param_and_this_resource() -> None:
    has = Has("Observation", "subject", CODE)
    stages, stands_for = c.lookup_stages(has, 1, INNER, "resources")
    assert stages[0] == {"$addFields": {"_sq1k": {"$concat": ["subject|", "$_id"]}}}
    assert stages[1]["$lookup"]["localField"] == "_sq1k" and stages[1]["$lookup"]["foreignField"] == "refs"
    assert stages[1]["$lookup"]["pipeline"][0] == {"$match": INNER}
    assert stands_for == {"_sq1": {"$ne": []}}


def test_a_page_sorts_the_candidates_before_joining_and_stops_at_the_limit() -> None:
    stages, stands_for = c.lookup_stages(Chain("subject", "Patient", NAME), 0, INNER, "resources")
    full = c.and_({"type": {"$eq": "Observation"}}, stands_for)
    page = c.lookup_page({"type": {"$eq": "Observation"}}, [("type", 1), ("id", 1)], stages, full, 21,
                         {"id": 1, "sort": 1})
    assert [next(iter(s)) for s in page] == ["$match", "$sort", "$addFields", "$lookup", "$match", "$limit",
                                             "$project"]
    assert page[1] == {"$sort": {"type": 1, "id": 1}} and page[4] == {"$match": full} and page[5] == {"$limit": 21}
    assert c.lookup_count({"type": {"$eq": "Observation"}}, stages, full)[-2:] == [{"$match": full},
                                                                                   {"$count": "n"}]


def test_the_full_filter_tests_the_join_wherever_the_node_sits() -> None:
    """Under OR the joined field stands for the chain like a resolved filter does."""
    chain = Chain("subject", "Patient", NAME)
    _, stands_for = c.lookup_stages(chain, 0, INNER, "resources")
    where = And((CODE,))
    f = reads.search_filter(("Observation",), Or((where, chain)), {chain: stands_for}, EFFICIENT)
    assert {"_sq0": {"$ne": []}} in f["$or"], f
    assert reads.search_filter(("Observation",), chain, {chain: stands_for}, FALLBACK)["_sq0"] == {"$ne": []}

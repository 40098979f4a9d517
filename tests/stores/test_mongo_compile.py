"""Pure tests of the MongoDB query compiler (server/stores/mongo/compile.py, order.py, errors.py).

No server: each case is a model value and the exact filter document it must become. Search
semantics: http://hl7.org/fhir/R4/search.html; the shapes avoided are listed in compile.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from bson.errors import InvalidDocument
from pymongo.errors import (
    AutoReconnect,
    DocumentTooLarge,
    DuplicateKeyError,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from server.errors import (
    Contention,
    FhirError,
    InvalidSearch,
    NotSupported,
    PayloadTooLarge,
    StoreUnavailable,
    Unprocessable,
)
from server.search.model import (
    Always,
    And,
    Chain,
    FieldTest,
    Has,
    Match,
    Missing,
    Not,
    Or,
    ResourceTest,
    SortKey,
)
from server.stores.mongo import compile as c
from server.stores.mongo import order
from server.stores.mongo.capabilities import EFFICIENT, FALLBACK, Capabilities
from server.stores.mongo.errors import map_errors, translate

G = "http://hl7.org/fhir/administrative-gender"


def em(table: str, **fields: object) -> dict:
    return {table: {"$elemMatch": fields}}


P = {"$eq": "p1"}

MATCH_CASES = [
    ("no tests", Match("token", "p1"), em("token", p=P)),
    ("eq", Match("token", "p1", (FieldTest("code", "eq", "a"),)), em("token", p=P, code={"$eq": "a"})),
    (
        "eq None means absent/null",
        Match("token", "p1", (FieldTest("system", "eq", None),)),
        em("token", p=P, system={"$eq": None}),
    ),
    (
        "two fields",
        Match("token", "p1", (FieldTest("system", "eq", G), FieldTest("code", "eq", "male"))),
        em("token", p=P, system={"$eq": G}, code={"$eq": "male"}),
    ),
    ("in of one", Match("token", "p1", (FieldTest("code", "in", ("a",)),)), em("token", p=P, code={"$eq": "a"})),
    (
        "in expands to $or of $elemMatch",
        Match("token", "p1", (FieldTest("code", "in", ("a", "b")),)),
        {"$or": [em("token", p=P, code={"$eq": "a"}), em("token", p=P, code={"$eq": "b"})]},
    ),
    (
        "in keeps the other tests in every branch",
        Match("token", "p1", (FieldTest("system", "eq", "s"), FieldTest("code", "in", ("a", "b")))),
        {
            "$or": [
                em("token", p=P, system={"$eq": "s"}, code={"$eq": "a"}),
                em("token", p=P, system={"$eq": "s"}, code={"$eq": "b"}),
            ]
        },
    ),
    (
        "two in lists: cross product",
        Match("token", "p1", (FieldTest("system", "in", ("s", "t")), FieldTest("code", "in", ("a", "b")))),
        {"$or": [em("token", p=P, system={"$eq": s}, code={"$eq": v}) for s in ("s", "t") for v in ("a", "b")]},
    ),
    (
        "in with duplicates",
        Match("token", "p1", (FieldTest("code", "in", ("a", "a")),)),
        em("token", p=P, code={"$eq": "a"}),
    ),
    ("empty in matches nothing", Match("token", "p1", (FieldTest("code", "in", ()),)), c.NEVER),
    (
        "eq and in intersect",
        Match("token", "p1", (FieldTest("code", "in", ("a", "b")), FieldTest("code", "eq", "b"))),
        em("token", p=P, code={"$eq": "b"}),
    ),
    (
        "disjoint eq tests match nothing",
        Match("token", "p1", (FieldTest("code", "eq", "a"), FieldTest("code", "eq", "b"))),
        c.NEVER,
    ),
    (
        "prefix is a half-open range",
        Match("string", "p1", (FieldTest("value", "prefix", "zh"),)),
        em("string", p=P, value={"$gte": "zh", "$lt": "zi"}),
    ),
    (
        "empty prefix: any string",
        Match("string", "p1", (FieldTest("value", "prefix", ""),)),
        em("string", p=P, value={"$gte": ""}),
    ),
    (
        "contains is an escaped regex",
        Match("string", "p1", (FieldTest("value", "contains", "a.b$"),)),
        em("string", p=P, value={"$regex": re.escape("a.b$")}),
    ),
    (
        "two contains: lookaheads",
        Match("string", "p1", (FieldTest("value", "contains", "a"), FieldTest("value", "contains", "b"))),
        em("string", p=P, value={"$regex": "^(?=[\\s\\S]*a)(?=[\\s\\S]*b)"}),
    ),
    (
        "range ops",
        Match("date", "p1", (FieldTest("lo", "ge", 10), FieldTest("hi", "lt", 20))),
        em("date", p=P, lo={"$gte": 10}, hi={"$lt": 20}),
    ),
    (
        "both bounds on one field",
        Match("date", "p1", (FieldTest("lo", "gt", 10), FieldTest("lo", "le", 20))),
        em("date", p=P, lo={"$gt": 10, "$lte": 20}),
    ),
    (
        "the stricter lower bound wins",
        Match("number", "p1", (FieldTest("lo", "ge", 5), FieldTest("lo", "ge", 7), FieldTest("lo", "gt", 7))),
        em("number", p=P, lo={"$gt": 7}),
    ),
    (
        "the stricter upper bound wins",
        Match("number", "p1", (FieldTest("hi", "le", 5), FieldTest("hi", "lt", 9), FieldTest("hi", "lt", 5))),
        em("number", p=P, hi={"$lt": 5}),
    ),
    (
        "eq plus range on one field",
        Match("quantity", "p1", (FieldTest("lo", "eq", 5.0), FieldTest("lo", "lt", 9.0))),
        em("quantity", p=P, lo={"$eq": 5.0, "$lt": 9.0}),
    ),
]


@pytest.mark.parametrize(
    ("cond", "expected"), [case[1:] for case in MATCH_CASES], ids=[case[0] for case in MATCH_CASES]
)
def test_match(cond: Match, expected: dict) -> None:
    assert c.compile_where(cond) == expected


INJECTION_CASES = [
    ("operator-looking string stays a value", FieldTest("code", "eq", "$where"), {"$eq": "$where"}),
    ("regex metacharacters in eq", FieldTest("code", "eq", ".*"), {"$eq": ".*"}),
    ("regex metacharacters in contains", FieldTest("code", "contains", ".*|^"), {"$regex": re.escape(".*|^")}),
    ("prefix with metacharacters", FieldTest("code", "prefix", "a*"), {"$gte": "a*", "$lt": "a+"}),
]


@pytest.mark.parametrize(
    ("test", "ops"), [case[1:] for case in INJECTION_CASES], ids=[case[0] for case in INJECTION_CASES]
)
def test_values_stay_literal(test: FieldTest, ops: dict) -> None:
    assert c.compile_where(Match("token", "p1", (test,))) == em("token", p=P, code=ops)


def test_operator_looking_param_stays_a_value() -> None:
    assert c.compile_where(Match("token", "$where")) == em("token", p={"$eq": "$where"})


REJECTED = [
    ("document value", Match("token", "p1", (FieldTest("code", "eq", {"$ne": None}),)), InvalidSearch),
    ("document in a list", Match("token", "p1", (FieldTest("code", "in", ({"$gt": ""},)),)), InvalidSearch),
    ("list value for eq", Match("token", "p1", (FieldTest("code", "eq", ["a"]),)), InvalidSearch),
    ("in needs a list", Match("token", "p1", (FieldTest("code", "in", "ab"),)), InvalidSearch),
    ("regex object", Match("token", "p1", (FieldTest("code", "eq", re.compile("a")),)), InvalidSearch),
    ("contains needs text", Match("string", "p1", (FieldTest("value", "contains", 5),)), InvalidSearch),
    ("NUL in contains", Match("string", "p1", (FieldTest("value", "contains", "a\x00"),)), InvalidSearch),
    ("field of another table", Match("token", "p1", (FieldTest("value", "eq", "a"),)), InvalidSearch),
    ("operator as field", Match("token", "p1", (FieldTest("$where", "eq", "a"),)), InvalidSearch),
    ("unknown table", Match("nope", "p1"), InvalidSearch),  # type: ignore[arg-type]
    ("unknown op", Match("token", "p1", (FieldTest("code", "regex", "a"),)), InvalidSearch),  # type: ignore[arg-type]
    ("incomparable bounds", Match("date", "p1", (FieldTest("lo", "ge", 1), FieldTest("lo", "ge", "x"))), InvalidSearch),
    ("unknown resource field", ResourceTest("meta", "eq", "x"), InvalidSearch),  # type: ignore[arg-type]
    (
        "too many alternatives",
        Match(
            "token",
            "p1",
            (
                FieldTest("system", "in", tuple(map(str, range(200)))),
                FieldTest("code", "in", tuple(map(str, range(200)))),
            ),
        ),
        NotSupported,
    ),
]


@pytest.mark.parametrize(("cond", "error"), [case[1:] for case in REJECTED], ids=[case[0] for case in REJECTED])
def test_rejected(cond: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        c.compile_where(cond)  # type: ignore[arg-type]


M_A = Match("token", "p1", (FieldTest("code", "eq", "a"),))
F_A = em("token", p=P, code={"$eq": "a"})
M_B = Match("string", "p2", (FieldTest("value", "eq", "b"),))
F_B = em("string", p={"$eq": "p2"}, value={"$eq": "b"})

STRUCTURE = [
    ("always", Always(), c.ALWAYS),
    ("missing", Missing("date", "p1", True), {"$nor": [em("date", p=P)]}),
    ("present", Missing("date", "p1", False), em("date", p=P)),
    ("not", Not(M_A), {"$nor": [F_A]}),
    ("not always", Not(Always()), c.NEVER),
    ("not never", Not(Match("token", "p1", (FieldTest("code", "in", ()),))), c.ALWAYS),
    ("and", And((M_A, M_B)), {"$and": [F_A, F_B]}),
    ("and drops always", And((M_A, Always())), F_A),
    ("empty and", And(()), c.ALWAYS),
    ("nested and flattens", And((M_A, And((M_B, M_A)))), {"$and": [F_A, F_B, F_A]}),
    ("and with never", And((M_A, Not(Always()))), c.NEVER),
    ("or", Or((M_A, M_B)), {"$or": [F_A, F_B]}),
    ("or with always", Or((M_A, Always())), c.ALWAYS),
    ("empty or", Or(()), c.NEVER),
    ("or drops never", Or((M_A, Not(Always()))), F_A),
    ("id eq", ResourceTest("id", "eq", "x"), {"id": {"$eq": "x"}}),
    ("id in", ResourceTest("id", "in", ("x", "y")), {"id": {"$in": ["x", "y"]}}),
    ("id in none", ResourceTest("id", "in", ()), c.NEVER),
    ("last updated", ResourceTest("last_updated", "ge", 5), {"lu": {"$gte": 5}}),
    ("type", ResourceTest("type", "eq", "Patient"), {"type": {"$eq": "Patient"}}),
]


@pytest.mark.parametrize(("cond", "expected"), [case[1:] for case in STRUCTURE], ids=[case[0] for case in STRUCTURE])
def test_structure(cond: object, expected: dict) -> None:
    assert c.compile_where(cond) == expected  # type: ignore[arg-type]


CHAIN = Chain("org", "Organization", Match("string", "name", (FieldTest("value", "eq", "acme"),)))
HAS = Has("Observation", "subject", M_A)


def test_subqueries_lists_outermost_chains_only() -> None:
    nested = Chain("subject", "Patient", And((CHAIN, M_A)))
    cond = And((M_B, Or((CHAIN, Not(HAS))), nested))
    assert c.subqueries(cond) == [CHAIN, HAS, nested]
    assert c.subqueries(M_A) == []


def test_chain_and_has_use_resolved_filters() -> None:
    resolved = {CHAIN: c.chain_filter(CHAIN, ["o1", "o2"]), HAS: c.has_filter(["Patient/a"])}
    assert c.compile_where(And((CHAIN, Not(HAS))), resolved) == {
        "$and": [
            {"refs": {"$in": ["org|Organization/o1", "org|Organization/o2"]}},
            {"$nor": [{"_id": {"$in": ["Patient/a"]}}]},
        ]
    }
    assert c.chain_filter(CHAIN, []) == c.NEVER
    assert c.has_filter([]) == c.NEVER
    with pytest.raises(ValueError, match="unresolved"):
        c.compile_where(CHAIN)


@pytest.mark.parametrize(
    ("types", "where", "expected"),
    [
        ((), c.ALWAYS, {"deleted": {"$eq": False}}),
        (("Patient",), F_A, {"deleted": {"$eq": False}, "type": {"$eq": "Patient"}, **F_A}),
        (("A", "B"), c.ALWAYS, {"deleted": {"$eq": False}, "type": {"$in": ["A", "B"]}}),
        (("A",), c.and_(F_A, F_A), {"deleted": {"$eq": False}, "type": {"$eq": "A"}, **F_A, "$and": [F_A]}),
        (("A",), c.NEVER, c.NEVER),
    ],
)
def test_base_filter(types: tuple[str, ...], where: dict, expected: dict) -> None:
    assert c.base_filter(types, where) == expected


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("a", "b"),
        ("ab", "ac"),
        ("", None),
        ("a\U0010ffff", "b"),
        ("\U0010ffff", None),
        ("\ud7ff", "\ue000"),
        ("中", "丮"),
    ],
)
def test_successor(prefix: str, expected: str | None) -> None:
    assert c.successor(prefix) == expected


CORPUS = ["a.b$", "(x", "[", "\\", "*", "+?", "x|y", "$where", "a b", "a\nb", "^a", "中文", "ab", "b"]


@pytest.mark.parametrize("needle", [*CORPUS, "a", ".", "\n"])
def test_contains_regex_matches_only_the_literal(needle: str) -> None:
    pattern = c.compile_where(Match("string", "p1", (FieldTest("value", "contains", needle),)))["string"]["$elemMatch"]
    found = [s for s in CORPUS if re.search(pattern["value"]["$regex"], s)]
    assert found == [s for s in CORPUS if needle in s]


@pytest.mark.parametrize("needle", ["a", "ab", "中", "\\", "$"])
def test_prefix_range_matches_exactly_the_prefixed(needle: str) -> None:
    ops = c.compile_where(Match("string", "p1", (FieldTest("value", "prefix", needle),)))["string"]["$elemMatch"][
        "value"
    ]
    found = [s for s in CORPUS if s >= ops["$gte"] and ("$lt" not in ops or s < ops["$lt"])]
    assert found == [s for s in CORPUS if s.startswith(needle)]


# --- order --------------------------------------------------------------------------------------

DATE_ASC = SortKey("date", "birthdate", "lo")
NAME_DESC = SortKey("string", "family", "value", descending=True)


def test_sort_fields() -> None:
    fields = order.sort_fields((DATE_ASC, NAME_DESC, SortKey("resource", "last_updated", "lu", True)))
    assert [(f.path, f.descending, f.missable) for f in fields] == [
        ("sort.birthdate.min", False, True),
        ("sort.family.max", True, True),
        ("lu", True, False),
        ("type", False, False),
        ("id", False, False),
    ]


@pytest.mark.parametrize(
    "key",
    [SortKey("resource", "meta", "x"), SortKey("token", "a.b", "code"), SortKey("token", "$where", "code")],
)
def test_sort_rejects_unknown_fields(key: SortKey) -> None:
    with pytest.raises(InvalidSearch):
        order.sort_fields((key,))


def test_sort_key_limit() -> None:
    with pytest.raises(NotSupported):
        order.sort_fields(tuple(SortKey("token", f"p{i}", "code") for i in range(order.MAX_PARAM_SORT_KEYS + 1)))


def test_sort_fields_do_not_repeat_a_tie_breaker() -> None:
    fields = order.sort_fields((SortKey("resource", "id", "id", descending=True),))
    assert [(f.path, f.descending) for f in fields] == [("id", True), ("type", False)]


def test_partitions() -> None:
    fields = order.sort_fields((DATE_ASC,))
    present, missing = order.partitions(fields)
    assert present.filter == {"sort.birthdate.min": {"$exists": True}}
    assert present.sort == [("sort.birthdate.min", 1), ("type", 1), ("id", 1)]
    assert missing.filter == {"sort.birthdate.min": {"$exists": False}}
    assert missing.sort == [("type", 1), ("id", 1)]
    assert len(order.partitions(order.sort_fields((DATE_ASC, NAME_DESC)))) == 4
    (only,) = order.partitions(order.sort_fields(()))
    assert only.filter == {} and only.sort == [("type", 1), ("id", 1)]


def test_after_filter_present_value() -> None:
    fields = order.sort_fields((DATE_ASC,))
    present, missing = order.partitions(fields)
    assert order.after_filter(fields, (5, "Patient", "x"), present.missing) == {
        "$or": [
            {"sort.birthdate.min": {"$gt": 5}},
            {"$and": [{"sort.birthdate.min": {"$eq": 5}}, {"type": {"$gt": "Patient"}}]},
            {"$and": [{"sort.birthdate.min": {"$eq": 5}}, {"type": {"$eq": "Patient"}}, {"id": {"$gt": "x"}}]},
        ]
    }
    assert order.after_filter(fields, (5, "Patient", "x"), missing.missing) == c.ALWAYS


def test_after_filter_missing_value_prunes_present_partition() -> None:
    fields = order.sort_fields((DATE_ASC,))
    present, missing = order.partitions(fields)
    assert order.after_filter(fields, (None, "Patient", "x"), present.missing) == c.NEVER
    assert order.after_filter(fields, (None, "Patient", "x"), missing.missing) == {
        "$or": [{"type": {"$gt": "Patient"}}, {"$and": [{"type": {"$eq": "Patient"}}, {"id": {"$gt": "x"}}]}]
    }


def test_after_filter_descending() -> None:
    fields = order.sort_fields((NAME_DESC,))
    present, _ = order.partitions(fields)
    assert order.after_filter(fields, ("m", "P", "x"), present.missing)["$or"][0] == {"sort.family.max": {"$lt": "m"}}


@pytest.mark.parametrize("after", [("P", "x"), (5, "P", "x", "extra"), ({"$gt": ""}, "P", "x"), (5, None, "x")])
def test_after_filter_rejects_malformed_cursors(after: tuple) -> None:
    fields = order.sort_fields((DATE_ASC,))
    with pytest.raises(InvalidSearch):
        order.after_filter(fields, after, (False, False, False))


def test_comparator_puts_missing_last_both_ways() -> None:
    docs: list[dict[str, Any]] = [
        {"type": "P", "id": "a"},
        {"type": "P", "id": "b", "sort": {"d": {"min": 2, "max": 9}}},
        {"type": "P", "id": "c", "sort": {"d": {"min": 1, "max": 3}}},
        {"type": "O", "id": "z"},
    ]
    asc = order.sort_fields((SortKey("date", "d", "lo"),))
    desc = order.sort_fields((SortKey("date", "d", "lo", descending=True),))
    assert [d["id"] for d in sorted(docs, key=order.comparator(asc))] == ["c", "b", "z", "a"]
    assert [d["id"] for d in sorted(docs, key=order.comparator(desc))] == ["b", "c", "z", "a"]
    assert order.cursor(asc, docs[1], 1) == (2, "P", "b")
    assert order.cursor(asc, docs[0], 1) == (None, "P", "a")


def test_before_filter() -> None:
    assert order.before_filter(None) == c.ALWAYS
    assert order.before_filter((10, "P", "x", 2)) == {
        "$or": [
            {"lu": {"$lt": 10}},
            {"$and": [{"lu": {"$eq": 10}}, {"type": {"$lt": "P"}}]},
            {"$and": [{"lu": {"$eq": 10}}, {"type": {"$eq": "P"}}, {"id": {"$lt": "x"}}]},
            {"$and": [{"lu": {"$eq": 10}}, {"type": {"$eq": "P"}}, {"id": {"$eq": "x"}}, {"version": {"$lt": 2}}]},
        ]
    }
    with pytest.raises(InvalidSearch):
        order.before_filter((10, "P"))  # type: ignore[arg-type]


# --- errors -------------------------------------------------------------------------------------

TRANSIENT = OperationFailure("WriteConflict", 112, {"errorLabels": ["TransientTransactionError"]})

ERRORS = [
    (ServerSelectionTimeoutError("no servers"), StoreUnavailable, 503),
    (AutoReconnect("reset"), StoreUnavailable, 503),
    (DocumentTooLarge("too big"), PayloadTooLarge, 413),
    (OperationFailure("BSONObjectTooLarge", 10334), PayloadTooLarge, 413),
    (TRANSIENT, Contention, 409),  # re-run by the request (server.interactions.retry)
    (DuplicateKeyError("E11000", 11000), Contention, 409),
    (InvalidDocument("bad key"), Unprocessable, 422),
    (OverflowError("MongoDB can only handle up to 8-byte ints"), Unprocessable, 422),
    (OperationFailure("boom", 2), FhirError, 500),
]


@pytest.mark.parametrize(
    ("exc", "kind", "status"), ERRORS, ids=[type(e[0]).__name__ + str(i) for i, e in enumerate(ERRORS)]
)
def test_error_table(exc: Exception, kind: type[FhirError], status: int) -> None:
    mapped = translate(exc)
    assert type(mapped) is kind
    assert mapped.status == status
    with pytest.raises(kind) as raised, map_errors():
        raise exc
    assert raised.value.__cause__ is exc


def test_transient_conflicts_carry_a_retry_hint() -> None:
    mapped = translate(TRANSIENT)
    assert mapped is not None and mapped.headers == {"Retry-After": "1"}


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(KeyError), map_errors():
        raise KeyError("x")
    with pytest.raises(InvalidSearch), map_errors():
        raise InvalidSearch("kept as is")


# --- a capable server (real MongoDB): the efficient forms of server/stores/mongo/capabilities.py --

EFFICIENT_CASES = [
    ("in is one $elemMatch with $in", Match("token", "p1", (FieldTest("code", "in", ("a", "b")),)),
     em("token", p=P, code={"$in": ["a", "b"]})),
    ("in keeps the other tests beside it",
     Match("token", "p1", (FieldTest("system", "eq", "s"), FieldTest("code", "in", ("a", "b")))),
     em("token", p=P, system={"$eq": "s"}, code={"$in": ["a", "b"]})),
    ("two in lists: two $in, no cross product",
     Match("token", "p1", (FieldTest("system", "in", ("s", "t")), FieldTest("code", "in", ("a", "b")))),
     em("token", p=P, system={"$in": ["s", "t"]}, code={"$in": ["a", "b"]})),
    ("in with duplicates", Match("token", "p1", (FieldTest("code", "in", ("a", "a")),)),
     em("token", p=P, code={"$eq": "a"})),
    ("empty in matches nothing", Match("token", "p1", (FieldTest("code", "in", ()),)), c.NEVER),
    ("in beside a range on the same field",
     Match("string", "p1", (FieldTest("value", "in", ("ab", "ac")), FieldTest("value", "prefix", "a"))),
     em("string", p=P, value={"$in": ["ab", "ac"], "$gte": "a", "$lt": "b"})),
]


@pytest.mark.parametrize(("cond", "expected"), [case[1:] for case in EFFICIENT_CASES],
                         ids=[case[0] for case in EFFICIENT_CASES])
def test_match_on_a_capable_server(cond: Match, expected: dict) -> None:
    assert c.compile_where(cond, caps=EFFICIENT) == expected


def test_no_alternatives_limit_without_branches() -> None:
    many = Match("token", "p1", (FieldTest("system", "in", tuple(map(str, range(200)))),
                                 FieldTest("code", "in", tuple(map(str, range(200))))))
    with pytest.raises(NotSupported):
        c.compile_where(many, caps=FALLBACK)
    found = c.compile_where(many, caps=EFFICIENT)["token"]["$elemMatch"]
    assert len(found["system"]["$in"]) == len(found["code"]["$in"]) == 200


def test_efficient_forms_need_only_the_in_elem_match_flag() -> None:
    cond = Match("token", "p1", (FieldTest("code", "in", ("a", "b")),))
    others = Capabilities(array_equality=True, lookup_arrays=True, transactions=True)
    assert c.compile_where(cond, caps=others) == c.compile_where(cond)
    assert "$or" in c.compile_where(cond) and "$or" not in c.compile_where(cond, caps=Capabilities(in_elem_match=True))


def test_chain_on_a_capable_server_uses_the_reference_entries() -> None:
    assert c.chain_filter(CHAIN, ["o1", "o2"], EFFICIENT) == {"reference": {"$elemMatch": {
        "p": {"$eq": "org"}, "ref_id": {"$in": ["o1", "o2"]}, "ref_type": {"$eq": "Organization"}}}}
    assert c.chain_filter(CHAIN, [], EFFICIENT) == c.NEVER
    assert c.chain_filter(CHAIN, ["o1"]) == {"refs": {"$in": ["org|Organization/o1"]}}

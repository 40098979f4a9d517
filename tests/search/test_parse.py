"""Parsing whole searches: http://hl7.org/fhir/R4/search.html (OR/AND, result parameters,
_include/_revinclude, _sort, _count, _total, _summary, _elements, _contained, _type, cursor,
strict vs lenient handling of unknown and declined parameters) and conditional criteria."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from server.errors import InvalidSearch, NotSupported
from server.search.model import (
    Always,
    And,
    FieldTest,
    Match,
    Or,
    ResourceTest,
    SortKey,
)
from server.search.parse import Include, SearchRequest, encode_cursor, parse_criteria, parse_search
from server.search.registry import SearchRegistry


def parse(registry: SearchRegistry, query: str, types: tuple[str, ...] = ("Observation",),
          **kwargs: object) -> SearchRequest:
    return parse_search(types, parse_qsl(query, keep_blank_values=True), registry, **kwargs)  # type: ignore[arg-type]


def code(value: str) -> Match:
    return Match("token", "code", (FieldTest("code", "eq", value),))


def test_comma_is_or_and_repetition_is_and(registry: SearchRegistry) -> None:
    where = parse(registry, "code=a,b&code=c").query.where
    assert where == And((Or((code("a"), code("b"))), code("c")))


def test_escaped_comma_is_part_of_the_value(registry: SearchRegistry) -> None:
    assert parse(registry, r"code=a\,b").query.where == code("a,b")


def test_no_criteria_is_always(registry: SearchRegistry) -> None:
    request = parse(registry, "")
    assert request.query.where == Always() and request.query.count == 20 and request.query.types == ("Observation",)


@pytest.mark.parametrize(("query", "expected"), [
    ("_id=a1", ResourceTest("id", "eq", "a1")),
    ("_id=a1,b-2.x", ResourceTest("id", "in", ("a1", "b-2.x"))),
    ("_lastUpdated=gt2020-01-01T00:00:00Z", ResourceTest("last_updated", "gt", 1577836800999999)),
    ("_lastUpdated=ge2020-01-01T00:00:00Z", Or((ResourceTest("last_updated", "gt", 1577836800999999),
                                                 And((ResourceTest("last_updated", "ge", 1577836800000000),
                                                      ResourceTest("last_updated", "le", 1577836800999999)))))),
])
def test_row_parameters(registry: SearchRegistry, query: str, expected: object) -> None:
    assert parse(registry, query).query.where == expected


@pytest.mark.parametrize(("query", "count"), [("_count=0", 0), ("_count=50", 50), ("_count=5000", 1000), ("", 20)])
def test_count(registry: SearchRegistry, query: str, count: int) -> None:
    assert parse(registry, query).query.count == count


@pytest.mark.parametrize(("query", "keys"), [
    ("_sort=date", (SortKey("date", "date", "lo"),)),
    ("_sort=-date", (SortKey("date", "date", "hi", True),)),
    ("_sort=status,-_lastUpdated,_id", (SortKey("token", "status", "code"),
                                         SortKey("resource", "last_updated", "last_updated", True),
                                         SortKey("resource", "id", "id"))),
    ("_sort=subject&_sort=value-quantity", (SortKey("reference", "subject", "ref"),
                                             SortKey("quantity", "value-quantity", "lo"))),
])
def test_sort(registry: SearchRegistry, query: str, keys: tuple[SortKey, ...]) -> None:
    assert parse(registry, query).query.sort == keys


def test_result_options(registry: SearchRegistry) -> None:
    request = parse(registry, "_total=accurate&_summary=count&_elements=status,code&_format=json&_pretty=true")
    assert request.query.total == "accurate"
    assert request.summary == "count"
    assert request.elements == ("status", "code")
    assert request.ignored == ()


@pytest.mark.parametrize(("query", "includes", "revincludes"), [
    ("_include=Observation:subject", (Include("Observation", "subject"),), ()),
    ("_include=Observation:subject:Patient", (Include("Observation", "subject", "Patient"),), ()),
    ("_include=*", (Include("*", "*"),), ()),
    ("_include:iterate=Patient:organization", (Include("Patient", "organization", None, True),), ()),
    ("_include:recurse=Patient:organization", (Include("Patient", "organization", None, True),), ()),
    ("_revinclude=Provenance:target", (), (Include("Provenance", "target", None, False, True),)),
    ("_revinclude:iterate=Provenance:target:Observation",
     (), (Include("Provenance", "target", "Observation", True, True),)),
])
def test_includes(registry: SearchRegistry, query: str, includes: tuple[Include, ...],
                  revincludes: tuple[Include, ...]) -> None:
    request = parse(registry, query)
    assert request.include == includes and request.revinclude == revincludes


def test_cursor_round_trip(registry: SearchRegistry) -> None:
    query = parse(registry, "_sort=-_lastUpdated,date", ("Observation",)).query
    token = encode_cursor([1577836800000000, None, "Observation", "a-1"], query)
    assert "=" not in token
    after = parse(registry, f"_sort=-_lastUpdated,date&_cursor={token}", ("Observation",)).query.after
    assert after == (1577836800000000, None, "Observation", "a-1")


@pytest.mark.parametrize("query", [
    "_sort=-_lastUpdated",  # another _sort
    "_sort=-_lastUpdated,code",  # a sort value of another type (token: text)
])
def test_cursor_of_another_search_is_rejected(registry: SearchRegistry, query: str) -> None:
    issued = parse(registry, "_sort=-_lastUpdated,date", ("Observation",)).query
    token = encode_cursor([1577836800000000, None, "Observation", "a-1"], issued)
    with pytest.raises(InvalidSearch) as e:
        parse(registry, f"{query}&_cursor={token}", ("Observation",))
    assert e.value.expression == ("_cursor",)
    with pytest.raises(InvalidSearch):  # the same sort on another type
        parse(registry, f"_sort=-_lastUpdated,date&_cursor={token}", ("Condition",))


def test_system_search_with_type(registry: SearchRegistry) -> None:
    request = parse(registry, "_type=Patient,Observation&_id=x&_sort=-_lastUpdated", ())
    assert request.query.types == ("Patient", "Observation")
    assert request.query.where == ResourceTest("id", "eq", "x")
    both = parse(registry, "_type=Patient,Practitioner&name=smith", ())
    assert both.query.where == Match("string", "name", (FieldTest("value", "prefix", "smith"),))


def test_chain_over_several_targets_is_or(registry: SearchRegistry) -> None:
    where = parse(registry, "subject.name=x").query.where
    assert isinstance(where, Or)
    assert sorted(c.target_type for c in where.items) == ["Location", "Patient"]  # type: ignore[union-attr]


@pytest.mark.parametrize(("query", "error", "name"), [
    ("_count=-1", InvalidSearch, "_count"),
    ("_count=ten", InvalidSearch, "_count"),
    ("_total=some", InvalidSearch, "_total"),
    ("_summary=maybe", InvalidSearch, "_summary"),
    ("_elements=a b", InvalidSearch, "_elements"),
    ("_sort=code-value-quantity", InvalidSearch, "_sort"),
    ("_sort:desc=date", InvalidSearch, "_sort"),
    ("_include=Observation", InvalidSearch, "_include"),
    ("_include=Observation:code", InvalidSearch, "_include"),
    ("_include=Nope:subject", InvalidSearch, "_include"),
    ("_include=Observation:subject:Medication", InvalidSearch, "_include"),
    ("_include=Patient:organization", InvalidSearch, "_include"),
    ("_include:deep=Observation:subject", InvalidSearch, "_include"),
    ("_cursor=!!!", InvalidSearch, "_cursor"),
    ("_cursor=e30", InvalidSearch, "_cursor"),
    ("_id=a/b", InvalidSearch, "_id"),
    ("_id:not=a", InvalidSearch, "_id"),
    ("_contained=maybe", InvalidSearch, "_contained"),
    ("_type=Patient", InvalidSearch, "_type"),
])
def test_malformed_result_parameters(registry: SearchRegistry, query: str, error: type[Exception],
                                     name: str) -> None:
    with pytest.raises(error) as caught:
        parse(registry, query, strict=True)
    assert caught.value.expression == (name,)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("query", "name", "error"), [
    ("nope=1", "nope", InvalidSearch),
    ("_text=fever", "_text", NotSupported),
    ("_content=fever", "_content", NotSupported),
    ("_filter=name eq x", "_filter", NotSupported),
    ("_list=42", "_list", NotSupported),
    ("_query=special", "_query", NotSupported),
    ("_contained=true", "_contained", NotSupported),
    ("_containedType=contained", "_containedType", NotSupported),
    ("_sort=nope", "_sort", InvalidSearch),
])
def test_unknown_and_declined(registry: SearchRegistry, query: str, name: str, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        parse(registry, query, strict=True)
    assert caught.value.expression == (name,)  # type: ignore[attr-defined]
    lenient = parse(registry, query + "&status=final")
    assert [n for n, _ in lenient.ignored] == [name]
    assert lenient.query.where == Match("token", "status", (FieldTest("code", "eq", "final"),))


def test_near_is_declined(registry: SearchRegistry) -> None:
    with pytest.raises(NotSupported):
        parse(registry, "near=42|-83|10|km", ("Location",), strict=True)
    assert parse(registry, "near=42|-83|10|km", ("Location",)).ignored[0][0] == "near"


def test_common_parameters_only_in_a_system_search(registry: SearchRegistry) -> None:
    assert parse(registry, "_tag=a|b", ()).query.where == Match(
        "token", "_tag", (FieldTest("system", "eq", "a"), FieldTest("code", "eq", "b")))
    with pytest.raises(InvalidSearch):
        parse(registry, "code=x", (), strict=True)


def test_criteria(registry: SearchRegistry) -> None:
    assert parse_criteria("Patient", "identifier=http://x|1", registry) == Match(
        "token", "identifier", (FieldTest("system", "eq", "http://x"), FieldTest("code", "eq", "1")))
    assert parse_criteria("Patient", "?name=a&_id=p1", registry) == And((
        Match("string", "name", (FieldTest("value", "prefix", "a"),)), ResourceTest("id", "eq", "p1")))
    assert parse_criteria("Patient", "", registry) == Always()
    assert parse_criteria("Patient", "birthdate=2020-01-01T00:00:00%2B08:00", registry) is not None


@pytest.mark.parametrize(("query", "error", "name"), [
    ("identifier=x&_count=1", InvalidSearch, "_count"),
    ("_sort=name", InvalidSearch, "_sort"),
    ("_include=Patient:organization", InvalidSearch, "_include"),
    ("nope=1", InvalidSearch, "nope"),
    ("name=", InvalidSearch, "name"),
    ("_text=x", NotSupported, "_text"),
])
def test_criteria_rejects(registry: SearchRegistry, query: str, error: type[Exception], name: str) -> None:
    with pytest.raises(error) as caught:
        parse_criteria("Patient", query, registry)
    assert caught.value.expression == (name,)  # type: ignore[attr-defined]

"""Date search: http://hl7.org/fhir/R4/search.html#date and #prefix (implicit ranges at each
precision, time zones, Period/Timing, every prefix), and ``_lastUpdated``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.errors import InvalidSearch
from server.search.index import Indexer
from server.search.model import FieldTest, Match
from server.search.registry import SearchRegistry
from server.search.types import date
from server.search.types.common import Options
from tests.search.evaluate import World, search_ids


def us(text: str) -> int:
    """µs since the epoch of an ISO instant (test oracle independent of the module)."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@pytest.mark.parametrize(("text", "lo", "hi"), [
    ("2020", "2020-01-01T00:00:00Z", "2020-12-31T23:59:59.999999Z"),
    ("2020-02", "2020-02-01T00:00:00Z", "2020-02-29T23:59:59.999999Z"),
    ("2021-02", "2021-02-01T00:00:00Z", "2021-02-28T23:59:59.999999Z"),
    ("2020-12-31", "2020-12-31T00:00:00Z", "2020-12-31T23:59:59.999999Z"),
    ("2020-01-01T10:00", "2020-01-01T10:00:00Z", "2020-01-01T10:00:59.999999Z"),
    ("2020-01-01T10:00:05", "2020-01-01T10:00:05Z", "2020-01-01T10:00:05.999999Z"),
    ("2020-01-01T10:00:05.5", "2020-01-01T10:00:05.5Z", "2020-01-01T10:00:05.599999Z"),
    ("2020-01-01T10:00:05.123Z", "2020-01-01T10:00:05.123Z", "2020-01-01T10:00:05.123999Z"),
    ("2020-01-01T10:00:00+08:00", "2020-01-01T02:00:00Z", "2020-01-01T02:00:00.999999Z"),
    ("2020-01-01T10:00:00-05:30", "2020-01-01T15:30:00Z", "2020-01-01T15:30:00.999999Z"),
    ("2020-01-01T10:00:00 08:00", "2020-01-01T02:00:00Z", "2020-01-01T02:00:00.999999Z"),
    ("1960-06-15", "1960-06-15T00:00:00Z", "1960-06-15T23:59:59.999999Z"),
])
def test_parse_range(text: str, lo: str, hi: str) -> None:
    assert date.parse_range(text) == (us(lo), us(hi))


@pytest.mark.parametrize("text", ["2020-13", "2020-02-30", "2020-01-01T24:00:00Z", "20", "2020-1-1",
                                  "January 2012", "2020-01-01T10", "2020-01-01T10:00:00+15:00", ""])
def test_parse_range_rejects(text: str) -> None:
    assert date.parse_range(text) is None


def test_open_period_bounds() -> None:
    assert date.value_ranges({"start": "2020"}, "Period") == [(us("2020-01-01T00:00:00Z"), date.MAX_US)]
    assert date.value_ranges({"end": "2020"}, "Period") == [(date.MIN_US, us("2020-12-31T23:59:59.999999Z"))]
    assert date.value_ranges({}, "Period") == []
    assert date.value_ranges("not a date", "string") == []


@pytest.fixture(scope="module")
def world(indexer: Indexer) -> World:
    w = World(indexer)
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    w.add({**obs, "id": "o1", "effectiveDateTime": "2020-01-15T10:00:00Z"})
    w.add({**obs, "id": "o2", "effectivePeriod": {"start": "2020-01-10", "end": "2020-01-20"}})
    w.add({**obs, "id": "o3", "effectiveDateTime": "2020"})
    w.add({**obs, "id": "o4", "effectivePeriod": {"start": "2021-06-01"}})
    w.add({**obs, "id": "o5", "effectiveInstant": "2019-12-31T23:59:59.999Z"})
    w.add({**obs, "id": "o6"})
    w.add({"resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order",
           "subject": {"reference": "Patient/p"}, "medicationCodeableConcept": {"text": "x"},
           "dosageInstruction": [{"timing": {"event": ["2020-03-01T08:00:00Z", "2020-03-02T08:00:00Z"]}}]})
    w.add({"resourceType": "Patient", "id": "p1", "birthDate": "1980-05"})
    w.add({"resourceType": "Patient", "id": "p2", "birthDate": "1980-05-17"}, last_updated=us("2021-01-01T00:00:00Z"))
    return w


@pytest.mark.parametrize(("query", "expected"), [
    ("date=2020-01-15", ["o1"]),
    ("date=eq2020-01-15", ["o1"]),
    ("date=2020-01", ["o1", "o2"]),
    ("date=2020", ["o1", "o2", "o3"]),
    ("date=ne2020", ["o4", "o5"]),
    ("date=gt2020-01-15", ["o2", "o3", "o4"]),
    ("date=lt2020-01-15", ["o2", "o3", "o5"]),
    ("date=ge2020-01-15", ["o1", "o2", "o3", "o4"]),
    ("date=le2020-01-15", ["o1", "o2", "o3", "o5"]),
    ("date=sa2020-12-31", ["o4"]),
    ("date=eb2020-01-01", ["o5"]),
    ("date=2020-01-15T10:00:00Z", ["o1"]),
    ("date=2020-01-15T18:00:00+08:00", ["o1"]),
    ("date=2020-01-15T10:00", ["o1"]),
    ("date=2019-12-31T23:59:59.999Z", ["o5"]),
    ("date=2019-12-31T23:59:59Z", ["o5"]),
    ("date=ge2020-01-01&date=lt2020-02-01", ["o1", "o2", "o3"]),  # the year 2020 overlaps both
    ("date=2021,2019", ["o5"]),
    ("date=2050", []),
    ("date=ge2050", ["o4"]),
    ("date:missing=true", ["o6"]),
])
def test_observation_dates(world: World, query: str, expected: list[str]) -> None:
    assert search_ids(world, ("Observation",), query) == expected


@pytest.mark.parametrize(("query", "expected"), [
    ("date=2020-03-02", ["m1"]),
    ("date=2020-03", ["m1"]),
    ("date=2020-03-03", []),
])
def test_timing_events(world: World, query: str, expected: list[str]) -> None:
    assert search_ids(world, ("MedicationRequest",), query) == expected


@pytest.mark.parametrize(("query", "expected"), [
    ("birthdate=1980-05", ["p1", "p2"]),
    ("birthdate=1980-05-17", ["p2"]),
    ("birthdate=1980", ["p1", "p2"]),
    ("birthdate=gt1980-05-16", ["p1", "p2"]),
    ("birthdate=sa1980-05-16", ["p2"]),
    ("_lastUpdated=gt2020", ["p2"]),
    ("_lastUpdated=2021-01-01", ["p2"]),
    ("_lastUpdated=lt2021-01-01", ["p1"]),
    ("_lastUpdated=ne2021-01-01T00:00:00Z", ["p1"]),
])
def test_patient_dates(world: World, query: str, expected: list[str]) -> None:
    assert search_ids(world, ("Patient",), query) == expected


def test_ap_uses_ten_percent_of_the_distance_to_now(world: World, registry: SearchRegistry) -> None:
    param = registry.get("Observation", "date")
    assert param is not None
    near = Options(now=us("2020-01-25T00:00:00Z"))  # 10 days away: 1 day (the minimum) either side
    cond = date.condition(param, None, "ap2020-01-15", near)
    assert world.search(("Observation",), cond) == ["o1", "o2", "o3"]
    far = Options(now=us("2030-01-15T00:00:00Z"))  # 10 years away: about a year either side
    cond = date.condition(param, None, "ap2020-01-15", far)
    assert world.search(("Observation",), cond) == ["o1", "o2", "o3", "o5"]
    assert isinstance(cond, Match)
    search_mid = (us("2020-01-15T00:00:00Z") + us("2020-01-15T23:59:59.999999Z")) // 2
    delta = (us("2030-01-15T00:00:00Z") - search_mid) // 10
    assert cond.tests == (FieldTest("lo", "le", us("2020-01-15T23:59:59.999999Z") + delta),
                          FieldTest("hi", "ge", us("2020-01-15T00:00:00Z") - delta))


@pytest.mark.parametrize(("query", "name"), [
    ("date=2020-13", "date"), ("date=xx2020", "date"), ("date=gt", "date"), ("date:exact=2020", "date"),
    ("date=2020-01-01T10", "date"), ("_lastUpdated=yesterday", "_lastUpdated"),
    ("_lastUpdated:missing=true", "_lastUpdated"),
])
def test_date_errors(world: World, query: str, name: str) -> None:
    with pytest.raises(InvalidSearch) as caught:
        search_ids(world, ("Observation",), query)
    assert caught.value.expression == (name,)

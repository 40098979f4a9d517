"""Grouping persons into transactions (profiles/datasets/delivery.py): size bound, shared and clashing entries."""

from __future__ import annotations

from typing import Any

from profiles.datasets.delivery import batches, combine


def _entry(url: str, value: str = "a") -> dict[str, Any]:
    return {"fullUrl": url, "resource": {"resourceType": "Basic", "id": value},
            "request": {"method": "POST", "url": "Basic"}}


def _person(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def test_persons_fill_a_batch_up_to_the_entry_bound() -> None:
    people = [_person(_entry(f"urn:uuid:{i}a"), _entry(f"urn:uuid:{i}b")) for i in range(5)]
    assert [len(group) for group in batches(people, batch_entries=4)] == [2, 2, 1]


def test_a_shared_identical_entry_counts_once_and_is_sent_once() -> None:
    org = _entry("urn:uuid:org")
    people = [_person(org, _entry(f"urn:uuid:{i}")) for i in range(3)]
    (group,) = list(batches(people, batch_entries=4))
    assert [e["fullUrl"] for e in combine(group)["entry"]] == ["urn:uuid:org", "urn:uuid:0", "urn:uuid:1",
                                                                "urn:uuid:2"]


def test_the_same_full_url_with_other_content_closes_the_batch() -> None:
    people = [_person(_entry("urn:uuid:x", "one")), _person(_entry("urn:uuid:y")), _person(_entry("urn:uuid:x", "two"))]
    groups = list(batches(people))
    assert [len(group) for group in groups] == [2, 1]
    assert [e["resource"]["id"] for g in groups for e in combine(g)["entry"]] == ["one", "a", "two"]


def test_a_person_larger_than_the_bound_is_a_batch_of_its_own() -> None:
    people = [_person(_entry("urn:uuid:s")), _person(*(_entry(f"urn:uuid:{i}") for i in range(6))),
              _person(_entry("urn:uuid:t"))]
    assert [len(group) for group in batches(people, batch_entries=4)] == [1, 1, 1]
    assert combine([people[1]]) is people[1]

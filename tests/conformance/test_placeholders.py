"""``${…}`` substitution: TestScript variables and Touchstone placeholders
(https://touchstone.aegis.net/touchstone/userguide/html/testscript-authoring/placeholders.html)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from conformance.runner.placeholders import Placeholders

NOW = datetime(2024, 1, 31, 10, 30, 0, tzinfo=timezone(timedelta(hours=8)))
VARIABLES = {"pid": "p-1", "born": "2020-02-29"}


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("Patient/${pid}", r"Patient/p-1"),
        ("${C6}", r"[A-Z]{6}"),
        ("${D9}", r"[0-9]{9}"),
        ("${CD14}", r"[A-Z0-9]{14}"),
        ("${UUID}", r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"),
        ("${UUID-NODASH}", r"[0-9a-f]{32}"),
        ("${CURRENTDATE}", r"2024-01-31"),
        ("${CURRENTDATE, d, -1}", r"2024-01-30"),
        ("${CURRENTDATE, M, 1}", r"2024-02-29"),
        ("${CURRENTDATE, y, -1, d, 1}", r"2023-02-01"),
        ("${CURRENTDATETIME, H, 2}", r"2024-01-31T12:30:00\+08:00"),
        ("${DATE, born, y, 1}", r"2021-02-28"),
        ("${unknown}", r"\$\{unknown\}"),
        ("${C21}", r"\$\{C21\}"),
    ],
)
def test_expand(text: str, pattern: str) -> None:
    placeholders = Placeholders(now=NOW, seed=7)
    assert re.fullmatch(pattern, placeholders.expand(text, VARIABLES.get))


def test_values_are_fixed_for_a_run_and_differ_between_runs() -> None:
    run = Placeholders(now=NOW)
    first = run.expand("${C8}|${D9}|${UUID}", VARIABLES.get)
    assert run.expand("${C8}|${D9}|${UUID}", VARIABLES.get) == first
    assert Placeholders(now=NOW).expand("${C8}|${D9}|${UUID}", VARIABLES.get) != first
    assert run.expand("${UUID-NODASH}", VARIABLES.get) == first.split("|")[2].replace("-", "")


def test_missing_tokens_are_reported_and_fixtures_expanded_deeply() -> None:
    run = Placeholders(now=NOW)
    missing: set[str] = set()
    run.expand("${nope} and ${pid}", VARIABLES.get, missing)
    assert missing == {"nope"}
    fixture = {"resourceType": "Patient", "identifier": [{"value": "${D6}"}], "birthDate": "${CURRENTDATE}",
               "active": True}
    expanded = run.expand_all(fixture, VARIABLES.get)
    assert re.fullmatch(r"[0-9]{6}", expanded["identifier"][0]["value"]) and expanded["birthDate"] == "2024-01-31"
    assert expanded["active"] is True


@pytest.mark.parametrize("text", ["${CURRENTDATE, d}", "${CURRENTDATE, q, 1}", "${CURRENTDATE, d, x}"])
def test_bad_date_offsets_raise(text: str) -> None:
    with pytest.raises(ValueError):
        Placeholders(now=NOW).expand(text, VARIABLES.get)

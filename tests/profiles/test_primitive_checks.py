"""Lexical checks of the R4 primitive types.

Spec: http://hl7.org/fhir/R4/datatypes.html#primitive (types and regexes),
http://hl7.org/fhir/R4/json.html#primitive (JSON kinds, no empty strings).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from profiles.definitions import core
from profiles.primitives import Check, primitive_checks, value_regex


@pytest.fixture(scope="module")
def checks() -> dict[str, Check]:
    return primitive_checks(core())


UUID = "urn:uuid:c757873d-ec9a-4326-a141-556f43239520"

VALID: list[tuple[str, Any]] = [
    ("boolean", True),
    ("boolean", False),
    ("integer", 0),
    ("integer", -2147483648),
    ("integer", 2147483647),
    ("positiveInt", 1),
    ("unsignedInt", 0),
    ("decimal", 1),
    ("decimal", -0.5),
    ("decimal", 1e-10),
    ("decimal", Decimal("1.50")),
    ("date", "2020"),
    ("date", "2020-01"),
    ("date", "2020-02-29"),
    ("dateTime", "2020"),
    ("dateTime", "2020-01-01"),
    ("dateTime", "2020-01-01T10:00:00Z"),
    ("dateTime", "2020-01-01T10:00:00.123+08:00"),
    ("instant", "2020-01-01T10:00:00Z"),
    ("instant", "2020-12-31T23:59:60.5-05:00"),
    ("time", "10:00:00"),
    ("time", "23:59:59.999"),
    ("id", "abc-1.2"),
    ("id", "a" * 64),
    ("code", "final"),
    ("code", "a b"),
    ("uri", "http://example.org/x"),
    ("uri", "urn:oid:1.2.3"),
    ("url", "https://example.org/fhir?x=1"),
    ("canonical", "http://hl7.org/fhir/ValueSet/x|4.0.1"),
    ("oid", "urn:oid:2.16.840.1.113883"),
    ("uuid", UUID),
    ("base64Binary", "aGVsbG8="),
    ("base64Binary", "aGVs\nbG8gd29y\r\nbGQ="),
    ("markdown", "# Title\n\n* item\ttab"),
    ("string", "张三"),
    ("string", "non\u00a0breaking"),
    ("string", " "),
    ("xhtml", '<div xmlns="http://www.w3.org/1999/xhtml"><p>x</p></div>'),
]

INVALID: list[tuple[str, Any, str]] = [
    ("boolean", "true", "structure"),
    ("boolean", 1, "structure"),
    ("integer", "1", "structure"),
    ("integer", True, "structure"),
    ("integer", 1.5, "value"),
    ("integer", 2147483648, "value"),
    ("integer", -2147483649, "value"),
    ("positiveInt", 0, "value"),
    ("unsignedInt", -1, "value"),
    ("decimal", "1.5", "structure"),
    ("decimal", True, "structure"),
    ("decimal", float("inf"), "value"),
    ("decimal", Decimal("NaN"), "value"),
    ("date", 2020, "structure"),
    ("date", "2020-13", "value"),
    ("date", "20200101", "value"),
    ("date", "2020-1-1", "value"),
    ("date", "2021-02-29", "value"),
    ("date", "2020-04-31", "value"),
    ("date", "2020-01-01T10:00:00Z", "value"),
    ("dateTime", "2020-01-01T10:00:00", "value"),
    ("dateTime", "2020-01-01T25:00:00Z", "value"),
    ("dateTime", "2020-01-01T10:00Z", "value"),
    ("dateTime", "2020-02-30T10:00:00Z", "value"),
    ("instant", "2020-01-01", "value"),
    ("instant", "2020-01-01T10:00:00", "value"),
    ("time", "10:00", "value"),
    ("time", "24:00:00", "value"),
    ("time", "10:00:00Z", "value"),
    ("id", "a" * 65, "value"),
    ("id", "a_b", "value"),
    ("id", "a b", "value"),
    ("code", " a", "value"),
    ("code", "a  b", "value"),
    ("code", "a ", "value"),
    ("code", 1, "structure"),
    ("uri", "a b", "value"),
    ("url", "http://x y", "value"),
    ("canonical", "x y", "value"),
    ("oid", "urn:oid:2.016", "value"),
    ("oid", "2.16.840", "value"),
    ("uuid", UUID.upper().replace("URN:UUID:", "urn:uuid:"), "value"),
    ("uuid", UUID[len("urn:uuid:"):], "value"),
    ("base64Binary", "abc", "value"),
    ("base64Binary", "ab!d", "value"),
    ("base64Binary", "ab cd", "value"),
    ("markdown", "\x0c", "value"),
    ("string", "\x0b", "value"),
    ("string", "x" * (1024 * 1024 + 1), "value"),
    ("xhtml", "<p>x</p>", "value"),
    ("xhtml", "<div>x</div>", "value"),
    ("xhtml", {"div": "x"}, "structure"),
]

EMPTY_STRING_TYPES = ["string", "code", "id", "uri", "url", "canonical", "markdown", "date", "dateTime",
                      "instant", "time", "base64Binary", "oid", "uuid"]


@pytest.mark.parametrize(("type_name", "value"), VALID)
def test_valid_values_pass(checks: dict[str, Check], type_name: str, value: Any) -> None:
    assert checks[type_name](value) is None


@pytest.mark.parametrize(("type_name", "value", "code"), INVALID)
def test_invalid_values_fail(checks: dict[str, Check], type_name: str, value: Any, code: str) -> None:
    problem = checks[type_name](value)
    assert problem is not None
    assert problem[0] == code
    assert type_name in problem[1] or "narrative" in problem[1]


@pytest.mark.parametrize("type_name", EMPTY_STRING_TYPES)
def test_empty_string_is_an_error(checks: dict[str, Check], type_name: str) -> None:
    problem = checks[type_name]("")
    assert problem is not None
    assert problem[0] == "value"
    assert "empty" in problem[1]


def test_every_primitive_type_has_a_check(checks: dict[str, Check]) -> None:
    assert set(checks) == set(core().primitive_types)


@pytest.mark.parametrize(("type_name", "fragment"), [("date", "[0-9]"), ("id", "{1,64}"), ("oid", "urn:oid:")])
def test_regexes_come_from_the_definitions(type_name: str, fragment: str) -> None:
    regex = value_regex(core(), type_name)
    assert regex is not None
    assert fragment in regex


def test_xhtml_has_no_regex() -> None:
    assert value_regex(core(), "xhtml") is None


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        ("base64Binary", "QUJD" * 50_000 + "!"),
        ("base64Binary", ("QUJD" * 19 + "\n") * 2_000 + "QU"),
        ("code", "ab " * 50_000 + " "),
        ("string", "x" * 200_000 + "\x0b"),
        ("uri", "x" * 200_000 + " "),
    ],
)
def test_long_invalid_values_fail_fast(checks: dict[str, Check], type_name: str, value: str) -> None:
    """The definition's base64Binary regex backtracks exponentially; the replacement must not."""
    start = time.perf_counter()
    assert checks[type_name](value) is not None
    assert time.perf_counter() - start < 0.5

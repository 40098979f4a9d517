"""The pure parsing functions of :mod:`server.fhir.json` and :mod:`profiles.numbers`: the byte-level
limit checks agree with a walk of the parsed tree (for any JSON, however it is spaced or escaped),
and numbers a float would change come back as written."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiles.fhirxml import from_xml, to_xml
from profiles.numbers import FhirDecimal, decimal_text, json_decimal
from server.errors import BadRequest
from server.fhir.json import (
    Limits,
    canonical,
    check_shape,
    dumps,
    load_stored,
    load_with_decimals,
    loads,
    restore_decimals,
)

UNLIMITED = Limits(max_depth=10**6, max_elements=10**9, max_array_length=10**9)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.text(alphabet=st.sampled_from('ab"\\{}[],:0.5e \n\u00e9'), max_size=6))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(alphabet="ab\"\\{[,:1", min_size=1, max_size=4), inner,
                                                 max_size=4)), max_leaves=40)


def shape(value: Any, level: int = 1) -> tuple[int, int, int]:
    """(values, depth, longest array) by walking, the definition the byte-level checks must meet."""
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, list):
        children = value
    else:
        return 1, 0, 0
    parts = [shape(c, level + 1) for c in children]
    return (1 + sum(p[0] for p in parts), max([level, *(p[1] for p in parts)]),
            max([len(value) if isinstance(value, list) else 0, *(p[2] for p in parts)]))


@settings(max_examples=300, deadline=None)
@given(values, st.booleans(), st.booleans())
def test_limits_are_exact_for_any_json(value: Any, indent: bool, ascii_only: bool) -> None:
    body = json.dumps(value, indent=2 if indent else None, ensure_ascii=ascii_only).encode()
    count, depth, longest = shape(value)
    assert loads(body, limits=Limits(max(depth, 1), count, max(longest, 1))) == orjson.loads(body)
    if depth > 1:
        with pytest.raises(BadRequest, match="max_depth"):
            loads(body, limits=Limits(depth - 1, count, max(longest, 1)))
    with pytest.raises(BadRequest, match="max_elements"):
        loads(body, limits=Limits(max(depth, 1), count - 1, max(longest, 1)))
    if longest > 1:
        with pytest.raises(BadRequest, match="max_array_length"):
            loads(body, limits=Limits(max(depth, 1), count, longest - 1))


@pytest.mark.parametrize("text", ["1.50", "0.010", "12345678901234567890.12", "1e2", "1E-7", "1e16", "100.00",
                                  "18446744073709551616", "-9223372036854775809", "0.30000000000000001"])
def test_numbers_a_float_would_change_come_back_as_written(text: str) -> None:
    body = f'{{"a":[{text}],"b":{{"c":{text}}}}}'.encode()
    data = loads(body)
    assert isinstance(data["a"][0], FhirDecimal) and data["a"][0].text == text
    assert dumps(data) == body
    assert dumps(load_stored(dumps(data))) == body
    stored, decimals = load_with_decimals(body)
    assert decimals == [["b", "c", text], ["a", 0, text]] or sorted(map(str, decimals)) == sorted(
        map(str, [["a", 0, text], ["b", "c", text]]))
    plain = orjson.loads(dumps(stored))  # what a store without such a number type holds
    assert dumps(restore_decimals(plain, decimals)) == body


def test_numbers_that_round_trip_stay_plain_and_fast() -> None:
    data = loads(b'{"a":[1,2.5,-0.25,100.0,-0.0,1e+16,9223372036854775807],"s":"1.50 and \\"2.50\\""}')
    assert all(type(v) in (int, float) for v in data["a"])
    assert load_with_decimals(orjson.dumps(data))[1] == []


def test_big_and_precise_numbers_inside_strings_are_left_alone() -> None:
    body = b'{"s":"[1.50, 1e2]","t":"\\\\","u":":12345678901234567890.12,"}'
    assert loads(body) == orjson.loads(body)
    assert type(loads(b'{"x":"\\"","y":1.5}')["y"]) is float


def test_more_than_34_significant_digits_is_refused() -> None:
    with pytest.raises(BadRequest, match="34 significant digits"):
        loads(b'{"a":1.' + b"1" * 40 + b"}")
    assert loads(b'{"a":1.' + b"1" * 32 + b"}")["a"].text == "1." + "1" * 32


@pytest.mark.parametrize(("body", "where"), [
    (b'{"resourceType":"Patient","":1}', "Patient"),
    (b'{"resourceType":"Patient","name":[{"":1}]}', "Patient.name[0]"),
    (b'{"a":{"" :1}}', "a"),
])
def test_an_empty_property_name_is_refused_with_its_path(body: bytes, where: str) -> None:
    with pytest.raises(BadRequest, match="empty name") as error:
        loads(body)
    assert error.value.issues[0].expression == (where,)


def test_keys_ending_in_escaped_quotes_or_backslashes_are_not_empty() -> None:
    for body in (b'{"a\\"":1}', b'{"\\\\":1}', b'{"x":"","y":""}', b'{"x":["",""]}'):
        assert loads(body) == orjson.loads(body)


def test_errors_of_the_json_itself_stay_errors() -> None:
    for body in (b"", b"  ", b"{", b'{"a":NaN}', b"[" * 2000 + b"]" * 2000):
        with pytest.raises(BadRequest):
            loads(body)
    with pytest.raises(BadRequest, match="max_depth"):
        loads(b"[" * 2000 + b"]" * 2000)


def test_check_shape_applies_the_same_limits_to_trees() -> None:
    check_shape({"resourceType": "Patient", "a": [[1, 2], {"b": 3}]}, limits=Limits(3, 8, 2))
    with pytest.raises(BadRequest, match="max_depth"):
        check_shape({"a": [[1]]}, limits=Limits(2, 100, 100))
    with pytest.raises(BadRequest, match="empty name"):
        check_shape({"a": [{"": 1}]})


def test_canonical_tells_precision_apart_but_not_key_order() -> None:
    assert canonical({"a": 1, "b": FhirDecimal("1.50")}) == canonical({"b": FhirDecimal("1.50"), "a": 1})
    assert canonical({"a": FhirDecimal("1.50")}) != canonical({"a": 1.5})


def test_fhir_decimal_behaves_as_its_float_and_prints_as_written() -> None:
    value = FhirDecimal("1.50")
    assert value == 1.5 and hash(value) == hash(1.5) and str(value) == "1.50" and f"{value}" == "1.50"
    assert value.to_decimal() == Decimal("1.50")
    with pytest.raises(ValueError):
        FhirDecimal("1.5.0")
    assert [decimal_text(Decimal(t)) for t in ("1E+2", "1.0E+2", "0.0010", "1E-7")] == ["1e2", "1.0e2", "0.0010",
                                                                                         "0.0000001"]
    assert type(json_decimal("1.5")) is float and json_decimal("1.50").text == "1.50"  # type: ignore[union-attr,attr-defined]


def test_xml_decimals_keep_their_lexical_form() -> None:
    xml = ('<Observation xmlns="http://hl7.org/fhir"><status value="final"/><code><text value="w"/></code>'
           '<valueQuantity><value value="1.50"/></valueQuantity></Observation>')
    resource = from_xml(xml.encode(), decimal=json_decimal)
    assert resource["valueQuantity"]["value"].text == "1.50"
    assert '<value value="1.50"/>' in to_xml(resource)
    assert b'"value":1.50' in dumps(resource)

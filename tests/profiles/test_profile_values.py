"""Value rules: fixed[x]/pattern[x] matching, minValue/maxValue comparison, narrative, attachments, ele-1.

http://hl7.org/fhir/R4/elementdefinition.html#fixed, #pattern, #minValue;
http://hl7.org/fhir/R4/narrative.html#xhtml; http://hl7.org/fhir/R4/datatypes.html#Attachment.
"""

from __future__ import annotations

from typing import Any

import pytest

from profiles.engine import ProfileEngine
from profiles.narrative import narrative_problems
from profiles.values import attachment_problem, compare, matches_fixed, matches_pattern

CODING = {"system": "http://loinc.org", "code": "1-1"}


@pytest.mark.parametrize(("expected", "actual", "fixed", "pattern"), [
    ("a", "a", True, True),
    ("a", "b", False, False),
    (1, 1.0, True, True),
    (True, 1, False, False),
    (CODING, CODING, True, True),
    (CODING, {**CODING, "display": "d"}, False, True),
    (CODING, {**CODING, "extension": [{"url": "x", "valueString": "y"}]}, True, True),
    ({"coding": [CODING]}, {"coding": [{"code": "z"}, {**CODING, "display": "d"}]}, False, True),
    ({"coding": [CODING]}, {"coding": [{"code": "z"}]}, False, False),
    ({"coding": [CODING, {"code": "b"}]}, {"coding": [{"code": "b"}, CODING]}, False, True),
    ({"text": "t"}, "t", False, False),
])
def test_fixed_is_exact_and_pattern_is_partial(expected: Any, actual: Any, fixed: bool, pattern: bool) -> None:
    assert matches_fixed(expected, actual) is fixed
    assert matches_pattern(expected, actual) is pattern


@pytest.mark.parametrize(("limit", "value", "sign"), [
    (("integer", 5), 6, 1),
    (("decimal", 5.5), 5.5, 0),
    (("date", "2020-01-01"), "2019-12-31", -1),
    (("dateTime", "2020-01-01"), "2020-01-01T10:00:00Z", None),
    (("Quantity", {"value": 1, "code": "kg"}), {"value": 999, "code": "g"}, -1),
    (("Quantity", {"value": 1, "code": "kg"}), {"value": 1, "code": "m"}, None),
    (("Quantity", {"value": 1, "code": "mg"}), {"value": 2, "unit": "mg"}, 1),
])
def test_limits_compare_by_type(limit: tuple[str, Any], value: Any, sign: int | None) -> None:
    assert compare(limit, value) == sign


@pytest.mark.parametrize(("xhtml", "problem"), [
    ('<div xmlns="http://www.w3.org/1999/xhtml"><p>ok <b>bold</b> &amp; <a href="#x">link</a></p></div>', None),
    ('<div xmlns="http://www.w3.org/1999/xhtml"><img src="x.png" alt="x"/></div>', None),
    ('<div xmlns="http://www.w3.org/1999/xhtml">a<script>alert(1)</script></div>', "<script>"),
    ('<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="x()">a</p></div>', "onclick"),
    ('<div xmlns="http://www.w3.org/1999/xhtml"><a href="javascript:x()">a</a></div>', "script url"),
    ('<div xmlns="http://www.w3.org/1999/xhtml">CPT&reg;</div>', "&reg;"),
    ('<div xmlns="http://www.w3.org/1999/xhtml">   </div>', "non-whitespace"),
    ('<div xmlns="http://www.w3.org/1999/xhtml"><form>x</form></div>', "<form>"),
])
def test_narrative_rules(xhtml: str, problem: str | None) -> None:
    found = narrative_problems(xhtml)
    if problem is None:
        assert found == []
    else:
        assert any(problem in p for p in found), found


@pytest.mark.parametrize(("attachment", "problem"), [
    ({"contentType": "text/plain", "data": "aGVscCBpJ20gYSBidWc=", "size": 14}, False),
    ({"contentType": "text/plain", "data": "aGVscCBpJ20gYSBidWc=", "size": 100}, True),
    ({"contentType": "text/plain", "size": 100}, False),
])
def test_attachment_size_must_match_the_data(attachment: dict[str, Any], problem: bool) -> None:
    assert (attachment_problem(attachment) is not None) is problem


@pytest.mark.parametrize(("patient", "expressions"), [
    ({"name": [{"id": "n"}]}, ["Patient.name[0]"]),
    ({"birthDate": "2000", "_birthDate": {"id": "b"}}, []),
    ({"_birthDate": {"id": "b"}}, ["Patient.birthDate"]),
    ({"name": [{"id": "n", "family": "x"}]}, []),
])
def test_ele_1_every_element_has_a_value_or_children(patient: dict[str, Any], expressions: list[str]) -> None:
    found = ProfileEngine(best_practice=None).validate({"resourceType": "Patient", **patient})
    assert [i.expression for i in found if i.message.startswith("ele-1")] == expressions

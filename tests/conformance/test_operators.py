"""Assert operators (http://hl7.org/fhir/R4/valueset-assert-operator-codes.html)."""

from __future__ import annotations

import pytest

from conformance.runner.asserts import AssertFailed, compare


@pytest.mark.parametrize(
    ("actual", "operator", "expected", "holds"),
    [
        (["200"], "equals", "200", True),
        (["201"], "equals", "200", False),
        ([], "equals", "200", False),
        (["x"], "equals", None, True),
        ([], "equals", None, False),
        (["201"], "notEquals", "200", True),
        (["200"], "notEquals", "200", False),
        ([], "notEquals", "200", True),
        (["204"], "in", "200,204", True),
        (["404"], "in", "200, 204", False),
        (["404"], "notIn", "200,204", True),
        (["200"], "notIn", "200,204", False),
        (["10"], "greaterThan", "9", True),
        (["9"], "greaterThan", "10", False),
        (["2024-02-01"], "greaterThan", "2024-01-31", True),
        (["9"], "lessThan", "10", True),
        (["11"], "lessThan", "10", False),
        ([], "empty", None, True),
        ([""], "empty", None, True),
        (["a"], "empty", None, False),
        (["a"], "notEmpty", None, True),
        ([], "notEmpty", None, False),
        (["application/fhir+xml"], "contains", "xml", True),
        (["application/fhir+json"], "contains", "xml", False),
        (["application/fhir+json"], "notContains", "xml", True),
        (["application/fhir+xml"], "notContains", "xml", False),
        (["a"], "sameAs", "a", False),
        (["a"], "in", None, False),
    ],
)
def test_compare(actual: list[str], operator: str, expected: str | None, holds: bool) -> None:
    if holds:
        compare(actual, operator, expected, "value")
    else:
        with pytest.raises(AssertFailed):
            compare(actual, operator, expected, "value")

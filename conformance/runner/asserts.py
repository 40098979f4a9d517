"""Evaluating ``TestScript…assert`` (http://hl7.org/fhir/R4/testscript-definitions.html#TestScript.setup.action.assert).

Each kind of check (``response``, ``responseCode``, ``contentType``, ``headerField``, ``resource``,
``expression``, ``path``, ``compareToSource…``, ``minimumId``, ``navigationLinks``,
``validateProfileId``, ``requestMethod``, ``requestURL``) yields the *actual* values; the
``operator`` then compares them with the expected ``value``. When a path or expression selects
several nodes, the first one is compared (XPath string-value semantics); ``empty``/``notEmpty``
look at all of them. A failed assert with ``warningOnly`` is a warning.
"""

from __future__ import annotations

from typing import Any

from conformance.runner import expressions, paths
from conformance.runner.context import RunContext, RunError
from conformance.runner.operations import MIME
from conformance.runner.results import Exchange, Outcome

RESPONSE_CODES = {
    "okay": 200, "created": 201, "noContent": 204, "notModified": 304, "bad": 400, "forbidden": 403,
    "notFound": 404, "methodNotAllowed": 405, "conflict": 409, "gone": 410, "preconditionFailed": 412,
    "unprocessable": 422,
}
FORMAT_FAMILIES = {
    "json": ("application/fhir+json", "application/json", "application/json+fhir"),
    "xml": ("application/fhir+xml", "application/xml", "application/xml+fhir", "text/xml"),
}


class AssertFailed(Exception):
    """Carries the message of a check that did not hold."""


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def compare(actual: list[str], operator: str, expected: str | None, what: str) -> None:
    """Raise :class:`AssertFailed` unless ``actual`` satisfies ``operator`` against ``expected``."""
    first = actual[0] if actual else None
    shown = f"{what} is {first!r}" if actual else f"{what} is absent"
    if operator == "empty":
        if any(a != "" for a in actual):
            raise AssertFailed(f"expected {what} to be empty, but {shown}")
        return
    if operator == "notEmpty" or (operator == "equals" and expected is None):
        if not any(a != "" for a in actual):
            raise AssertFailed(f"expected {what} to be present, but it is absent")
        return
    if expected is None:
        raise AssertFailed(f"operator {operator} needs a value to compare {what} with")
    if first is None:
        if operator in ("notEquals", "notIn", "notContains"):
            return
        raise AssertFailed(f"expected {what} {operator} {expected!r}, but {shown}")
    options = [o.strip() for o in expected.split(",")]
    ok: bool
    if operator == "equals":
        ok = first == expected
    elif operator == "notEquals":
        ok = first != expected
    elif operator == "in":
        ok = first in options
    elif operator == "notIn":
        ok = first not in options
    elif operator == "contains":
        ok = expected in first
    elif operator == "notContains":
        ok = expected not in first
    elif operator in ("greaterThan", "lessThan"):
        left, right = _number(first), _number(expected)
        pair: tuple[Any, Any] = (left, right) if left is not None and right is not None else (first, expected)
        ok = pair[0] > pair[1] if operator == "greaterThan" else pair[0] < pair[1]
    else:
        raise AssertFailed(f"operator {operator!r} is not known")
    if not ok:
        raise AssertFailed(f"expected {what} {operator} {expected!r}, but {shown}")


def _media(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _content_type(exchange: Exchange, expected: str, operator: str, request: bool) -> None:
    actual = _media(exchange.header("content-type", request=request))
    family = FORMAT_FAMILIES.get(expected, (MIME.get(expected, expected),))
    matches = actual in family
    if (operator in ("equals", "in", "contains")) != matches:
        word = "" if operator in ("equals", "in", "contains") else "not "
        raise AssertFailed(f"expected Content-Type {word}{expected} ({', '.join(family)}), got {actual or 'none'!r}")


def _minimum(minimum: Any, actual: Any, where: str) -> str | None:
    """Where ``actual`` lacks something ``minimum`` has (None if it has it all)."""
    if isinstance(minimum, dict):
        if not isinstance(actual, dict):
            return where
        for key, value in minimum.items():
            if where == "" and key in ("id", "meta"):
                continue  # assigned by the server
            missing = _minimum(value, actual.get(key), f"{where}.{key}" if where else key)
            if missing:
                return missing
        return None
    if isinstance(minimum, list):
        if not isinstance(actual, list):
            return where
        for index, item in enumerate(minimum):
            if all(_minimum(item, candidate, where) for candidate in actual):
                return f"{where}[{index}]"
        return None
    return None if minimum == actual else where


def _navigation(bundle: Any) -> None:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise AssertFailed("navigationLinks: the response is not a Bundle")
    links = {link.get("relation"): link.get("url") for link in bundle.get("link", [])}
    if not links.get("self"):
        raise AssertFailed("navigationLinks: the Bundle has no self link")
    bad = [r for r, url in links.items() if not str(url or "").startswith(("http://", "https://"))]
    if bad:
        raise AssertFailed(f"navigationLinks: link {bad[0]} has no absolute url")
    matches = [e for e in bundle.get("entry", []) if (e.get("search") or {}).get("mode", "match") == "match"]
    total = bundle.get("total")
    if isinstance(total, int) and total > len(matches) and "next" not in links:
        raise AssertFailed(f"navigationLinks: total is {total} but {len(matches)} entries and no next link")


def _values(ctx: RunContext, content: Any, *, expression: str | None, path: str | None) -> list[str]:
    if expression is not None:
        return [paths.text(v) for v in expressions.evaluate(ctx.expand_strict(expression, "expression"), content)]
    if path is not None:
        return [paths.text(v) for v in paths.evaluate(ctx.expand_strict(path, "path"), content)]
    return []


def check(ctx: RunContext, spec: dict[str, Any]) -> None:
    """Raise :class:`AssertFailed` (or :class:`RunError`) unless every check in ``spec`` holds."""
    request = spec.get("direction") == "request"
    source = spec.get("sourceId")
    exchange = ctx.exchange(source)
    needs_exchange = ("response", "responseCode", "headerField", "contentType", "requestMethod", "requestURL")
    if any(k in spec for k in needs_exchange) and exchange is None:
        raise RunError("there is no request/response to assert on")
    operator = spec.get("operator", "equals")
    expected = ctx.expand_strict(spec["value"], "value") if "value" in spec else None
    checked = False

    if "response" in spec:
        assert exchange is not None
        code = RESPONSE_CODES.get(spec["response"])
        if code is None:
            raise RunError(f"response code {spec['response']!r} is not known")
        compare([str(exchange.status)], operator, str(code), "the HTTP status")
        checked = True
    if "responseCode" in spec:
        assert exchange is not None
        compare([str(exchange.status)], operator, str(spec["responseCode"]), "the HTTP status")
        checked = True
    if "contentType" in spec:
        assert exchange is not None
        _content_type(exchange, spec["contentType"], operator, request)
        checked = True
    if "headerField" in spec:
        assert exchange is not None
        value = exchange.header(spec["headerField"], request=request)
        compare([] if value is None else [value], operator, expected, f"header {spec['headerField']}")
        checked = True
    if "requestMethod" in spec:
        assert exchange is not None
        compare([exchange.method.lower()], operator, spec["requestMethod"].lower(), "the request method")
        checked = True
    if "requestURL" in spec:
        assert exchange is not None
        compare([exchange.url], operator, ctx.expand_strict(spec["requestURL"], "requestURL"), "the request URL")
        checked = True

    needs_content = ("resource", "expression", "path", "compareToSourceId", "minimumId", "navigationLinks",
                     "validateProfileId")
    content = ctx.content(source, request=request) if any(k in spec for k in needs_content) else None
    if "resource" in spec:
        actual = content.get("resourceType") if isinstance(content, dict) else None
        compare([actual] if actual else [], operator, spec["resource"], "the resource type")
        checked = True
    if "compareToSourceId" in spec:
        other = ctx.content(spec["compareToSourceId"])
        other_expression = spec.get("compareToSourceExpression")
        other_path = spec.get("compareToSourcePath")
        if other_expression is None and other_path is None:
            raise RunError("compareToSourceId needs compareToSourceExpression or compareToSourcePath")
        wanted = _values(ctx, other, expression=other_expression, path=other_path)
        actual_values = _values(ctx, content, expression=spec.get("expression", other_expression),
                                path=spec.get("path", other_path) if "expression" not in spec else None)
        what = spec.get("expression") or spec.get("path") or other_expression or other_path
        compare(actual_values, operator, wanted[0] if wanted else "", str(what))
        checked = True
    elif "expression" in spec or "path" in spec:
        what = str(spec.get("expression") or spec.get("path"))
        actual_values = _values(ctx, content, expression=spec.get("expression"), path=spec.get("path"))
        if expected is None and operator in ("equals", "eval") and "expression" in spec:
            if actual_values != ["true"]:
                raise AssertFailed(f"expected {what} to be true, got {actual_values or 'nothing'}")
        else:
            compare(actual_values, "equals" if operator == "eval" else operator, expected, what)
        checked = True
    if "minimumId" in spec:
        missing = _minimum(ctx.fixture(spec["minimumId"]), content, "")
        if missing is not None:
            raise AssertFailed(f"minimumId {spec['minimumId']}: the response lacks {missing or 'the resource'}")
        checked = True
    if spec.get("navigationLinks") is True:
        _navigation(content)
        checked = True
    if "validateProfileId" in spec:
        _validate(ctx, spec["validateProfileId"], content)
        checked = True
    if not checked and "navigationLinks" not in spec:
        raise RunError("the assert has nothing to check")


def _validate(ctx: RunContext, profile_id: str, content: Any) -> None:
    profiles = {p.get("id"): p.get("reference") for p in ctx.script.resource.get("profile", [])}
    url = profiles.get(profile_id)
    if not url:
        raise RunError(f"validateProfileId {profile_id!r} names no TestScript.profile")
    if ctx.validator is None:
        raise RunError("no validator is configured for validateProfileId")
    if not isinstance(content, dict):
        raise AssertFailed(f"validateProfileId {profile_id}: there is no resource to validate")
    errors = ctx.validator(content, url)
    if errors:
        raise AssertFailed(f"does not conform to {url}: " + "; ".join(errors[:5]))


def outcome_of(spec: dict[str, Any], failed: bool) -> Outcome:
    if not failed:
        return "pass"
    return "warning" if spec.get("warningOnly") else "fail"

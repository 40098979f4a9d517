"""The checks one element definition makes on one value: fixed/pattern, limits, binding, invariants.

http://hl7.org/fhir/R4/elementdefinition.html lists what an ElementDefinition can demand of each
occurrence of its element; :func:`value_checks` applies those that concern the value itself (the
walk in :mod:`profiles.walker` handles cardinality, types, slicing and what lies below).
Messages name the element definition path and the profile, and say what was expected and what
was found, so a developer can fix the instance without reading the profile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from profiles.bindings import CodeResult, binding_verdict
from profiles.codes import INVARIANT, NOT_SUPPORTED, VALUE
from profiles.elements import Rule
from profiles.invariants import Env, Skipped
from profiles.issues import ERROR, INFORMATION, WARNING
from profiles.values import compare, describe, matches_fixed, matches_pattern

if TYPE_CHECKING:
    from profiles.walker import Item, Scope, Walk

ISSUE_SEVERITY = {"error": ERROR, "warning": WARNING, "information": INFORMATION}
GENERIC_TYPES = frozenset({"BackboneElement", "Element"})


def value_checks(walk: Walk, rule: Rule, item: Item, scope: Scope) -> None:
    """Everything ``rule`` says about ``item``'s value (invariants only when the walk runs them)."""
    value = item.value
    if rule.value_checks and value is not None:
        if rule.fixed is not None and not matches_fixed(rule.fixed[1], value):
            walk.report(ERROR, VALUE, f"{rule.path}: the value must be exactly {describe(rule.fixed[1])} "
                        f"({source(rule)}), found {describe(value)}", item.expression)
        if rule.pattern is not None and not matches_pattern(rule.pattern[1], value):
            walk.report(ERROR, VALUE, f"{rule.path}: the value must match the pattern {describe(rule.pattern[1])} "
                        f"({source(rule)}), found {describe(value)}", item.expression)
        if rule.max_length is not None and isinstance(value, str) and len(value) > rule.max_length:
            walk.report(ERROR, VALUE, f"{rule.path}: at most {rule.max_length} characters allowed ({source(rule)}), "
                        f"found {len(value)}", item.expression)
        if rule.min_value is not None:
            _limit(walk, rule, item, rule.min_value, -1)
        if rule.max_value is not None:
            _limit(walk, rule, item, rule.max_value, 1)
        if rule.binding is not None and rule.binding.strength in ("required", "extensible"):
            binding(walk, rule, item)
    if rule.invariants and (not scope.core or walk.engine.core_invariants):
        invariants(walk, rule, item, scope)


def source(rule: Rule) -> str:
    return f"profile {rule.profile}"


def _limit(walk: Walk, rule: Rule, item: Item, limit: tuple[str, Any], wrong_sign: int) -> None:
    sign = compare(limit, item.value)
    word = "at least" if wrong_sign < 0 else "at most"
    if sign is None:
        walk.report(ERROR, VALUE, f"{rule.path}: the value {describe(item.value)} cannot be compared with the limit "
                    f"{describe(limit[1])} ({source(rule)})", item.expression)
    elif sign == wrong_sign:
        walk.report(ERROR, VALUE, f"{rule.path}: the value must be {word} {describe(limit[1])} ({source(rule)}), "
                    f"found {describe(item.value)}", item.expression)


def invariants(walk: Walk, rule: Rule, item: Item, scope: Scope) -> None:
    engine = walk.engine
    env = Env(scope.resource, scope.root, lambda reference: walk.resolve(reference, scope))
    type_name = item.type
    type_path = type_name if type_name and type_name not in GENERIC_TYPES else rule.path.replace("[x]", "")
    for invariant in rule.invariants:
        if invariant.best_practice and engine.best_practice is None:
            continue
        outcome = engine.invariants.check(invariant, item.value, type_path, env, item.extra)
        if outcome is True:
            continue
        if isinstance(outcome, Skipped):
            walk.report(INFORMATION, NOT_SUPPORTED, f"invariant {invariant.key} was not checked: {outcome.reason}",
                        item.expression)
            continue
        severity = engine.best_practice if invariant.best_practice else ISSUE_SEVERITY.get(invariant.severity, ERROR)
        assert severity is not None
        walk.report(severity, INVARIANT, f"{invariant.key}: {invariant.human} [{invariant.expression}]",
                    item.expression)


def binding(walk: Walk, rule: Rule, item: Item) -> None:
    """Required: the code must be in the value set; extensible: a warning when it is not."""
    bound = rule.binding
    assert bound is not None
    terminology = walk.engine.terminology

    def answer(system: str | None, code: str, display: str | None) -> CodeResult:
        return terminology.check(bound.value_set, system, code, display)

    verdict = binding_verdict(rule.path, bound.value_set, bound.strength, item.type, item.value, answer)
    if verdict is not None:
        walk.report(*verdict, item.expression)

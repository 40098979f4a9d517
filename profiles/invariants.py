"""Invariants: the FHIRPath ``constraint.expression`` of element definitions, evaluated.

http://hl7.org/fhir/R4/conformance-rules.html#constraints: each constraint must evaluate to
``true`` on every instance of its element; ``false`` is a violation, reported with the
constraint's declared severity (ele-1 is an error, dom-6 a warning). An *empty* result is
accepted from fhirpathpy: it propagates empty through ``is``/``as`` on absent elements where the
reference engine answers false (ras-2 ``probability is decimal implies ...`` on a prediction
without probability), so empty there means "did not apply". The native implementations below
follow the reference engine exactly (per-1 comparing dates of different precision is a
violation).

Expressions are evaluated with fhirpathpy, compiled once per distinct expression and cached.
fhirpathpy lacks a few functions the FHIR specification adds to FHIRPath
(http://hl7.org/fhir/R4/fhirpath.html#functions); ``hasValue()``, ``htmlChecks()`` and
``resolve()`` are supplied here. An expression that needs another unavailable function
(``conformsTo()``, ``memberOf()``, ...) or does not parse is not evaluated: the caller gets a
:class:`Skipped` and reports it as information, so a profile author sees what was not checked.

A handful of invariants sit on (nearly) every element or resource of the core definitions —
ele-1, ext-1, the dom-* rules, ref-1, per-1 and friends — and fhirpathpy needs tens of
microseconds for each; they are implemented natively below, keyed by key *and* exact
expression text so that a profile redefining a key with different text still goes to FHIRPath.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fhirpathpy import apply_parsed_path
from fhirpathpy.engine.invocations import invocation_registry
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser import parse

from profiles.elements import Invariant
from profiles.narrative import NO_CONTENT, narrative_problems
from profiles.regional_invariants import NATIVE as REGIONAL_NATIVE

R4_MODEL = models["r4"]
UCUM = "http://unitsofmeasure.org"


@dataclass(slots=True)
class Env:
    """What an expression can see besides its focus: ``%resource``, ``%rootResource`` and ``resolve()``."""

    resource: dict[str, Any]
    root: dict[str, Any]
    resolve: Callable[[str], dict[str, Any] | None] = field(default=lambda reference: None)


@dataclass(frozen=True, slots=True)
class Skipped:
    """An invariant that could not be evaluated, and why."""

    reason: str


Native = Callable[[Any, Env], bool | None]
"""A native invariant: True (holds), False (violated) or None (empty result, also a violation)."""

_local = threading.local()


# -- FHIR-specific FHIRPath functions for fhirpathpy ------------------------------------------

def _has_value(data: list[Any]) -> list[bool]:
    return [len(data) == 1 and data[0] is not None and not isinstance(data[0], dict | list)]


def _html_checks(data: list[Any]) -> list[bool]:
    return [all(isinstance(d, str) and not narrative_problems(d) for d in data)]


def _resolve(data: list[Any]) -> list[Any]:
    env: Env | None = getattr(_local, "env", None)
    found: list[Any] = []
    if env is None:
        return found
    for item in data:
        reference = item.get("reference") if isinstance(item, dict) else item
        if isinstance(reference, str):
            target = env.resolve(reference)
            if target is not None:
                found.append(ResourceNode.create_node(target, target.get("resourceType")))
    return found


USER_FUNCTIONS: dict[str, dict[str, Any]] = {
    "hasValue": {"fn": _has_value, "arity": {0: []}},
    "htmlChecks": {"fn": _html_checks, "arity": {0: []}},
    "resolve": {"fn": _resolve, "arity": {0: []}},
}
AVAILABLE = frozenset(invocation_registry) | frozenset(USER_FUNCTIONS)
OPTIONS = {"userInvocationTable": USER_FUNCTIONS, "traceFn": lambda label, value: None}


def _function_names(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        if node.get("type") == "Functn":
            children = node.get("children") or [{}]
            name = children[0].get("text")
            if isinstance(name, str):
                out.add(name)
        for child in node.get("children") or ():
            _function_names(child, out)
    return out


# -- native invariants ---------------------------------------------------------------------

def _children(value: Any, name: str) -> list[Any]:
    found = value.get(name) if isinstance(value, dict) else None
    if found is None:
        return []
    return found if isinstance(found, list) else [found]


def _has_choice(value: Any, stem: str) -> bool:
    return isinstance(value, dict) and any(k.startswith(stem) and k[len(stem):][:1].isupper() for k in value)


def _ele_1(value: Any, env: Env) -> bool:
    if isinstance(value, dict):
        return any(k != "id" for k in value)
    return value is not None


def _ext_1(value: Any, env: Env) -> bool:
    return ("extension" in value) != _has_choice(value, "value") if isinstance(value, dict) else True


def _dom_2(value: Any, env: Env) -> bool:
    return not any(isinstance(c, dict) and "contained" in c for c in _children(value, "contained"))


def _dom_4(value: Any, env: Env) -> bool:
    for contained in _children(value, "contained"):
        meta = contained.get("meta") if isinstance(contained, dict) else None
        if isinstance(meta, dict) and ("versionId" in meta or "lastUpdated" in meta):
            return False
    return True


def _dom_5(value: Any, env: Env) -> bool:
    for contained in _children(value, "contained"):
        meta = contained.get("meta") if isinstance(contained, dict) else None
        if isinstance(meta, dict) and "security" in meta:
            return False
    return True


def _dom_6(value: Any, env: Env) -> bool:
    text = value.get("text") if isinstance(value, dict) else None
    return isinstance(text, dict) and "div" in text


def _ref_1(value: Any, env: Env) -> bool:
    """ref-1, except that ``#`` alone — the container itself (references.html#contained) — is accepted."""
    reference = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(reference, str) or not reference.startswith("#") or reference == "#":
        return True
    return any(isinstance(c, dict) and c.get("id") == reference[1:] for c in _children(env.root, "contained"))


def _empty_or_exists(first: str, second: str) -> Native:
    def check(value: Any, env: Env) -> bool:
        return not isinstance(value, dict) or first not in value or second in value
    return check


def _obs_6(value: Any, env: Env) -> bool:
    return not isinstance(value, dict) or "dataAbsentReason" not in value or not _has_choice(value, "value")


def _per_1(value: Any, env: Env) -> bool | None:
    if not isinstance(value, dict):
        return True
    start, end = value.get("start"), value.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return True
    return date_less_or_equal(start, end)


def _point(value: str) -> tuple[datetime, int] | None:
    """A date/dateTime/instant as (UTC instant of its start, precision: 0=year ... 5=second+)."""
    try:
        if len(value) == 4:
            return datetime(int(value), 1, 1, tzinfo=UTC), 0
        if len(value) == 7:
            return datetime(int(value[:4]), int(value[5:7]), 1, tzinfo=UTC), 1
        if len(value) == 10:
            return datetime(int(value[:4]), int(value[5:7]), int(value[8:10]), tzinfo=UTC), 2
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC), 5


def date_less_or_equal(start: str, end: str) -> bool | None:
    """FHIRPath ``start <= end`` for dates/dateTimes: None (empty) when precision makes it undecidable.

    http://hl7.org/fhirpath/N1/#datetime-equality: values of different precision compare at the
    common precision; if they are equal there, the result is empty.
    """
    a, b = _point(start), _point(end)
    if a is None or b is None:
        return None
    if a[1] == b[1]:
        return a[0] <= b[0]
    common = min(a[1], b[1])
    cut_a, cut_b = _truncate(a[0], common), _truncate(b[0], common)
    if cut_a != cut_b:
        return cut_a < cut_b
    return None


def _truncate(moment: datetime, precision: int) -> tuple[int, ...]:
    fields = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    return fields[: precision + 1]


def _obs_7(value: Any, env: Env) -> bool:
    """No component may repeat the Observation's own code while the Observation has a value."""
    if not isinstance(value, dict) or not _has_choice(value, "value"):
        return True
    code = env.resource.get("code")
    own = _children(code, "coding") if isinstance(code, dict) else []
    for component in _children(value, "component"):
        component_code = component.get("code") if isinstance(component, dict) else None
        if isinstance(component_code, dict) and any(c in own for c in _children(component_code, "coding")):
            return False
    return True


def _txt_1(value: Any, env: Env) -> bool:
    """Only the allowed XHTML (txt-2's missing content is reported by txt-2 alone, so one problem is one issue)."""
    return isinstance(value, str) and all(p == NO_CONTENT for p in narrative_problems(value))


def _txt_2(value: Any, env: Env) -> bool:
    """Some non-whitespace content (a narrative that does not parse is txt-1's problem)."""
    return isinstance(value, str) and NO_CONTENT not in narrative_problems(value)


def _dom_3(value: Any, env: Env) -> bool:
    from profiles.references import unreferenced_contained

    return not unreferenced_contained(value) if isinstance(value, dict) else True


NATIVE: dict[tuple[str, str], Native] = {
    ("ele-1", "hasValue() or (children().count() > id.count())"): _ele_1,
    ("ext-1", "extension.exists() != value.exists()"): _ext_1,
    ("dom-2", "contained.contained.empty()"): _dom_2,
    ("dom-3", "contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants().as(canonical) "
     "| %resource.descendants().as(uri) | %resource.descendants().as(url))) or descendants().where(reference = '#')"
     ".exists() or descendants().where(as(canonical) = '#').exists() or descendants().where(as(canonical) = '#')"
     ".exists()).not()).trace('unmatched', id).empty()"): _dom_3,
    ("dom-4", "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()"): _dom_4,
    ("dom-5", "contained.meta.security.empty()"): _dom_5,
    ("dom-6", "text.`div`.exists()"): _dom_6,
    ("ref-1", "reference.startsWith('#').not() or (reference.substring(1).trace('url') in "
     "%rootResource.contained.id.trace('ids'))"): _ref_1,
    ("per-1", "start.hasValue().not() or end.hasValue().not() or (start <= end)"): _per_1,
    ("qty-3", "code.empty() or system.exists()"): _empty_or_exists("code", "system"),
    ("cpt-2", "value.empty() or system.exists()"): _empty_or_exists("value", "system"),
    ("att-1", "data.empty() or contentType.exists()"): _empty_or_exists("data", "contentType"),
    ("obs-6", "dataAbsentReason.empty() or value.empty()"): _obs_6,
    ("obs-7", "value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists()).empty()"):
        _obs_7,
    ("txt-1", "htmlChecks()"): _txt_1,
    ("txt-2", "htmlChecks()"): _txt_2,
    **REGIONAL_NATIVE,
}


SYSTEM_TYPE_TEST = re.compile(
    r"\b(is|as|ofType\()\s*(?:System\.)?(Boolean|String|Integer|Decimal|DateTime|Date|Time)\b")
"""``x is Boolean``: a FHIR boolean *is* a System.Boolean (http://hl7.org/fhirpath/N1/#types), but fhirpathpy
only matches the FHIR type name, so System type names in type tests are rewritten to the FHIR ones."""
FHIR_NAMES = {"Boolean": "boolean", "String": "string", "Integer": "integer", "Decimal": "decimal",
              "DateTime": "dateTime", "Date": "date", "Time": "time"}


def _fhir_type_test(match: re.Match[str]) -> str:
    return f"{match.group(1)} {FHIR_NAMES[match.group(2)]}" if match.group(1) != "ofType(" else \
        f"ofType({FHIR_NAMES[match.group(2)]}"


class Invariants:
    """Evaluates constraints, compiling each distinct expression once."""

    def __init__(self) -> None:
        self._compiled: dict[str, Any] = {}
        self._lock = threading.Lock()

    def compiled(self, expression: str) -> Any:
        """The parsed expression, or a :class:`Skipped` saying why it cannot be evaluated."""
        found = self._compiled.get(expression)
        if found is None:
            try:
                parsed = parse(expression)
            except Exception as error:  # fhirpathpy raises bare Exception on syntax errors
                found = Skipped(f"the expression does not parse: {error}")
            else:
                missing = sorted(_function_names(parsed, set()) - AVAILABLE)
                if not missing and SYSTEM_TYPE_TEST.search(expression):
                    parsed = parse(SYSTEM_TYPE_TEST.sub(_fhir_type_test, expression))
                found = Skipped("it uses " + ", ".join(f"{m}()" for m in missing) + ", which this validator "
                                "does not implement") if missing else parsed
            with self._lock:
                self._compiled[expression] = found
        return found

    def check(self, invariant: Invariant, value: Any, type_path: str, env: Env,
              extension: Any = None, variables: dict[str, Any] | None = None) -> bool | Skipped:
        """Whether ``value`` (the focus, typed by ``type_path``) satisfies ``invariant``; ``variables`` adds
        to the environment (``%extension`` for an extension's context invariants)."""
        native = NATIVE.get((invariant.key, invariant.expression))
        if native is not None:
            return native(value, env) is True
        parsed = self.compiled(invariant.expression)
        if isinstance(parsed, Skipped):
            return parsed
        focus = ResourceNode.create_node(value, type_path, extension)
        variables = {"resource": env.resource, "rootResource": env.root, "ucum": UCUM,
                     "sct": "http://snomed.info/sct", "loinc": "http://loinc.org", **(variables or {})}
        previous = getattr(_local, "env", None)
        _local.env = env
        try:
            result = apply_parsed_path(focus, parsed, variables, R4_MODEL, OPTIONS)
        except RecursionError:
            raise
        except Exception as error:  # fhirpathpy raises bare Exception for runtime type errors
            return Skipped(f"evaluation failed: {error}")
        finally:
            _local.env = previous
        return result == [True] or result == []

"""Terminology bindings: is a coded value in the value set an element is bound to?

http://hl7.org/fhir/R4/terminologies.html#strength: a *required* binding that is not met is an
error; an *extensible* one is a warning unless the concept is covered; *preferred* and *example*
bindings are guidance and are not checked. The membership question itself belongs to the
terminology service; the validator asks it through :class:`BindingChecker`, the one method
``terminology.service`` offers, so the two packages meet only at this Protocol.

Without the terminology service (or for tests) :class:`InlineChecker` answers from the
conformance resources in a :class:`~profiles.registry.ProfileRegistry`: codes a ValueSet lists in
``compose.include.concept`` or ``expansion.contains``, whole code systems whose CodeSystem
resource enumerates its concepts, and nested value sets. Anything else (filters, LOINC, SNOMED
CT) it answers honestly with "cannot tell" (``result=None``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from profiles.codes import CODE_INVALID, INFORMATIONAL
from profiles.issues import ERROR, INFORMATION, WARNING, Severity
from profiles.registry import ProfileRegistry, canonical_url

CACHE_LIMIT = 50_000
"""Answers kept per checker: bindings repeat (every Observation.status), terminology lookups are slow."""


class CodeResult(Protocol):
    """What a terminology check answers (``terminology.service.CodeCheck`` has these fields)."""

    @property
    def result(self) -> bool | None: ...

    @property
    def message(self) -> str: ...

    @property
    def display(self) -> str | None: ...


class BindingChecker(Protocol):
    """Value-set membership (``terminology.service.default_terminology()`` implements it)."""

    def check(self, valueset_url: str, system: str | None, code: str, display: str | None = None) -> CodeResult:
        """Whether (system, code) is in the value set; ``result=None`` means the checker cannot tell."""
        ...


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """The answer of the checkers defined here."""

    result: bool | None
    message: str
    display: str | None = None


class InlineChecker:
    """Membership from ValueSets and CodeSystems found in a registry, without a terminology server."""

    def __init__(self, registry: ProfileRegistry) -> None:
        self.registry = registry
        self._expansions: dict[str, tuple[frozenset[tuple[str | None, str]], bool] | None] = {}
        self._generation = registry.generation

    def check(self, valueset_url: str, system: str | None, code: str, display: str | None = None) -> CodeResult:
        if self._generation != self.registry.generation:
            self._expansions = {}
            self._generation = self.registry.generation
        expansion = self._expand(canonical_url(valueset_url), set())
        if expansion is None:
            return CodeCheck(None, f"the value set {valueset_url} is not available to check {code!r}")
        codes, complete = expansion
        if (system, code) in codes or (system is None and any(c == code for _, c in codes)):
            return CodeCheck(True, "")
        if not complete:
            return CodeCheck(None, f"the value set {valueset_url} uses rules this checker cannot evaluate, so "
                             f"{code!r} could not be checked")
        shown = f"{system}#{code}" if system else repr(code)
        return CodeCheck(False, f"{shown} is not in the value set {valueset_url}")

    def _expand(self, url: str, seen: set[str]) -> tuple[frozenset[tuple[str | None, str]], bool] | None:
        if url in self._expansions:
            return self._expansions[url]
        if url in seen:
            return frozenset(), False
        seen.add(url)
        value_set = self.registry.get(url)
        result: tuple[frozenset[tuple[str | None, str]], bool] | None = None
        if value_set is not None and value_set.get("resourceType") == "ValueSet":
            result = self._from_value_set(value_set, seen)
        self._expansions[url] = result
        return result

    def _from_value_set(self, value_set: dict[str, Any], seen: set[str]) -> tuple[frozenset[tuple[str | None, str]],
                                                                               bool]:
        codes: set[tuple[str | None, str]] = set()
        complete = True
        expansion = value_set.get("expansion")
        if isinstance(expansion, dict) and "contains" in expansion:
            codes.update(_contains(expansion.get("contains", ())))
            return frozenset(codes), "total" not in expansion or expansion.get("total") == len(codes)
        compose = value_set.get("compose") or {}
        for include in compose.get("include", ()):
            found, ok = self._include(include, seen)
            codes |= found
            complete = complete and ok
        for exclude in compose.get("exclude", ()):
            found, ok = self._include(exclude, seen)
            codes -= found
            complete = complete and ok
        return frozenset(codes), complete

    def _include(self, include: dict[str, Any], seen: set[str]) -> tuple[set[tuple[str | None, str]], bool]:
        system = include.get("system")
        codes: set[tuple[str | None, str]] = set()
        complete = True
        if include.get("filter"):
            complete = False
        elif "concept" in include:
            codes.update((system, c["code"]) for c in include["concept"] if isinstance(c, dict) and "code" in c)
        elif isinstance(system, str):
            code_system = self.registry.get(system)
            if code_system is not None and code_system.get("content", "complete") == "complete":
                codes.update((system, code) for code in _concepts(code_system.get("concept", ())))
            else:
                complete = False
        nested = include.get("valueSet", ())
        for url in nested:
            expansion = self._expand(canonical_url(url), seen)
            if expansion is None:
                complete = False
                continue
            found, ok = expansion
            complete = complete and ok
            codes = codes & set(found) if codes or isinstance(system, str) else codes | set(found)
        return codes, complete


def _concepts(concepts: Any) -> Iterator[str]:
    for concept in concepts or ():
        if isinstance(concept, dict) and "code" in concept:
            yield concept["code"]
            yield from _concepts(concept.get("concept"))


def _contains(contains: Any) -> Iterator[tuple[str | None, str]]:
    for item in contains or ():
        if isinstance(item, dict):
            if "code" in item and not item.get("abstract"):
                yield item.get("system"), item["code"]
            yield from _contains(item.get("contains"))


class CachedChecker:
    """Remembers a checker's answers, so a binding repeated in every resource is asked once."""

    def __init__(self, checker: BindingChecker, limit: int = CACHE_LIMIT) -> None:
        self.checker = checker
        self.limit = limit
        self._answers: dict[tuple[str, str | None, str, str | None], CodeResult] = {}
        self._lock = threading.Lock()

    def check(self, valueset_url: str, system: str | None, code: str, display: str | None = None) -> CodeResult:
        key = (valueset_url, system, code, display)
        found = self._answers.get(key)
        if found is None:
            found = self.checker.check(valueset_url, system, code, display)
            with self._lock:
                if len(self._answers) >= self.limit:
                    self._answers.clear()
                self._answers[key] = found
        return found

    def clear(self) -> None:
        self._answers = {}


class LayeredChecker:
    """Value sets added to the registry (an IG's, a tester's) first, then the terminology service.

    The service knows the specification's and the national value sets; a profile loaded with its
    own value sets must be checked against those even when the service has never seen them.
    """

    def __init__(self, registry: ProfileRegistry, service: BindingChecker) -> None:
        self.registry = registry
        self.inline = InlineChecker(registry)
        self.service = service

    def check(self, valueset_url: str, system: str | None, code: str, display: str | None = None) -> CodeResult:
        found = self.registry.get(valueset_url)
        if found is not None and found.get("resourceType") == "ValueSet":
            answer = self.inline.check(valueset_url, system, code, display)
            if answer.result is not None:
                return answer
        return self.service.check(valueset_url, system, code, display)


Answer = Callable[[str | None, str, str | None], CodeResult]
"""(system, code, display) -> membership in one bound value set (a checker's ``check`` with the url bound)."""
STRING_TYPES = frozenset({"string", "code", "id", "markdown", "uri", "url", "canonical", "oid", "uuid"})


def codings(type_name: str | None, value: Any) -> Iterator[tuple[str | None, str, str | None]]:
    """The (system, code, display) triples a coded value offers to a binding: a CodeableConcept's
    codings, a Coding's (or Quantity's) code, or a bare ``code`` primitive (no system). Codings whose
    parts are not strings are left to the structural stage (they are not even hashable)."""
    if type_name == "CodeableConcept" and isinstance(value, dict):
        found = value.get("coding")
        for coding in found if isinstance(found, list) else ():
            if _coded(coding):
                yield coding.get("system"), coding["code"], _text(coding.get("display"))
    elif type_name in ("Coding", "Quantity") and _coded(value):
        yield value.get("system"), value["code"], _text(value.get("display")) if type_name == "Coding" else None
    elif isinstance(value, str) and (type_name in STRING_TYPES or type_name is None):
        yield None, value, None


def _coded(coding: Any) -> bool:
    return (isinstance(coding, dict) and isinstance(coding.get("code"), str)
            and isinstance(coding.get("system"), str | None))


def _text(display: Any) -> str | None:
    return display if isinstance(display, str) else None


def binding_verdict(path: str, value_set: str, strength: str, type_name: str | None, value: Any,
                    answer: Answer) -> tuple[Severity, str, str] | None:
    """(severity, issue code, message) for a value of an element bound to ``value_set``, or None when it is fine.

    The one statement of http://hl7.org/fhir/R4/terminologies.html#strength that both the profile
    engine and the structural stage's required-binding table apply, so the two report the same
    issue for the same element: one coding in the value set is enough; a CodeableConcept without
    any code does not meet a required binding; when the checker cannot tell for every coding, that
    is only noted.
    """
    offered = list(codings(type_name, value))
    if not offered:
        if type_name == "CodeableConcept" and isinstance(value, dict) and strength == "required":
            return ERROR, CODE_INVALID, f"{path}: no code given, and a code from {value_set} is required"
        return None
    unknown: list[str] = []
    for system, code, display in offered:
        found = answer(system, code, display)
        if found.result is True:
            return None
        if found.result is None:
            unknown.append(found.message)
    if unknown and len(unknown) == len(offered):
        return INFORMATION, INFORMATIONAL, f"{path}: {unknown[0]}"
    shown = ", ".join(f"{s}#{c}" if s else repr(c) for s, c, _ in offered)
    if strength == "required":
        return (ERROR, CODE_INVALID, f"{path}: {shown} is not in the value set {value_set}, which this element is "
                "bound to (required)")
    return (WARNING, CODE_INVALID, f"{path}: {shown} is not in the value set {value_set} (extensible binding: use "
            "a code from it when one applies)")


def default_binding_checker(registry: ProfileRegistry) -> BindingChecker:
    """The terminology service (when installed) behind the registry's own value sets."""
    try:
        from terminology.service import default_terminology
    except ImportError:
        return InlineChecker(registry)
    return LayeredChecker(registry, default_terminology())

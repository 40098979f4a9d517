"""SearchParameter registry: (resource type, code) -> the parameter's definition for that type.

Built from the 1,375 R4 core SearchParameters (http://hl7.org/fhir/R4/searchparameter-registry.html)
plus SearchParameter resources created at run time, which become active at once. R4 expressions
are unions over several bases (``AllergyIntolerance.patient | CarePlan.subject.where(...) | ...``);
each :class:`ParamDef` carries only the branches of its own base, so the extractor never
evaluates another type's paths. Parameters on ``Resource``/``DomainResource`` (``_id``, ``_tag``,
``_lastUpdated`` ...) appear in every type's table.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from profiles.definitions import Definitions, core
from server.errors import Unprocessable
from server.search.extract import compile_expression
from server.search.fhirpath import FhirPathSyntax, split_union, tokenize

PARAM_TYPES = frozenset({"number", "date", "string", "token", "reference", "composite", "quantity", "uri",
                         "special"})
COMMON_BASES = ("Resource", "DomainResource")
NOT_DOMAIN = frozenset({"Bundle", "Binary", "Parameters"})
"""Resource types that derive from Resource directly, so ``DomainResource`` parameters (``_text``)
do not apply to them."""


@dataclass(frozen=True, slots=True)
class Component:
    """One part of a composite parameter: the component's own definition (for its type and
    value syntax) and the expression evaluated on each element the composite selects."""

    definition: str
    param: ParamDef
    expression: str


@dataclass(frozen=True, slots=True)
class ParamDef:
    """A search parameter as it applies to one base type."""

    url: str
    code: str
    type: str
    base: str
    expression: str | None
    """Only the union branches rooted at ``base`` (None for ``_text``/``_content``/``_query``)."""
    targets: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()
    modifiers: tuple[str, ...] = ()
    comparators: tuple[str, ...] = ()
    multiple_or: bool = True
    multiple_and: bool = True


def _root_name(branch: str) -> str | None:
    """The type name a union branch starts with (``(RiskAssessment.occurrence as dateTime)``)."""
    try:
        tokens = tokenize(branch)
    except FhirPathSyntax:
        return None
    for kind, text in tokens:
        if kind == "id":
            return text
        if text != "(":
            return None
    return None


def _split(expression: str | None, bases: Iterable[str]) -> dict[str, str | None]:
    bases = list(bases)
    if not expression:
        return dict.fromkeys(bases)
    branches = split_union(expression)
    out: dict[str, str | None] = {}
    for base in bases:
        mine = [b for b in branches if _root_name(b) == base]
        if not mine and len(bases) == 1:
            mine = branches
        out[base] = " | ".join(mine) if mine else None
    return out


def _defs(sp: dict[str, Any], resolve: Any) -> list[ParamDef]:
    """ParamDefs (one per base) of a SearchParameter resource; ``resolve(url, base)`` finds the
    ParamDef a composite component refers to."""
    code, kind, url = sp.get("code"), sp.get("type"), sp.get("url")
    if not isinstance(code, str) or not isinstance(url, str) or kind not in PARAM_TYPES:
        raise Unprocessable(f"SearchParameter {url!r} needs url, code and a known type")
    bases = sp.get("base") or []
    out: list[ParamDef] = []
    for base, expression in _split(sp.get("expression"), bases).items():
        components: list[Component] = []
        for comp in sp.get("component", ()) if kind == "composite" else ():
            target = resolve(comp.get("definition", ""), base)
            if target is None:
                raise Unprocessable(f"SearchParameter {url}: component {comp.get('definition')!r} is unknown "
                                    f"for {base}")
            components.append(Component(comp["definition"], target, comp.get("expression", "")))
        out.append(ParamDef(
            url=url, code=code, type=kind, base=base, expression=expression,
            targets=tuple(sp.get("target", ())), components=tuple(components),
            modifiers=tuple(sp.get("modifier", ())), comparators=tuple(sp.get("comparator", ())),
            multiple_or=sp.get("multipleOr", True), multiple_and=sp.get("multipleAnd", True),
        ))
    return out


class SearchRegistry:
    """Parameters by base type and code; thread-safe for the run-time ``add``/``remove``."""

    def __init__(self, definitions: Definitions | None = None,
                 search_parameters: Iterable[dict[str, Any]] | None = None) -> None:
        self.definitions = definitions or core()
        self._lock = threading.Lock()
        self._by_url: dict[str, list[ParamDef]] = {}
        self._core_urls: set[str] = set()
        self._tables: dict[str, dict[str, ParamDef]] = {}
        self.version = 0
        """Bumped on every change, so caches keyed on the registry can notice."""
        sps = list(search_parameters if search_parameters is not None else self.definitions.search_parameters())
        sps.sort(key=lambda sp: sp.get("type") == "composite")
        for sp in sps:
            self._by_url[sp["url"]] = _defs(sp, self._component)
            self._core_urls.add(sp["url"])
        self._core_defs: dict[str, list[ParamDef]] = dict(self._by_url)
        self._rebuild()

    def _component(self, url: str, base: str) -> ParamDef | None:
        for d in self._by_url.get(url, ()):
            if d.base == base or d.base in COMMON_BASES:
                return d
        return None

    def _rebuild(self) -> None:
        tables: dict[str, dict[str, ParamDef]] = {}
        for defs in self._by_url.values():
            for d in defs:
                tables.setdefault(d.base, {})[d.code] = d
        self._tables = tables
        self.version += 1

    def _checked(self, search_parameter: dict[str, Any]) -> list[ParamDef]:
        if search_parameter.get("resourceType") != "SearchParameter":
            raise Unprocessable("not a SearchParameter resource")
        defs = _defs(search_parameter, self._component)
        for d in defs:
            if not self.definitions.is_resource_type(d.base) and d.base not in COMMON_BASES:
                raise Unprocessable(f"SearchParameter {d.url}: base '{d.base}' is not a resource type")
            try:
                if d.expression:
                    compile_expression(d.expression, d.base)
                for c in d.components:
                    compile_expression(c.expression, d.base)
            except FhirPathSyntax as e:
                raise Unprocessable(f"SearchParameter {d.url}: invalid expression ({e})") from e
        return defs

    def check(self, search_parameter: dict[str, Any]) -> list[ParamDef]:
        """The ParamDefs :meth:`add` would activate, without activating them: raises
        :class:`~server.errors.Unprocessable` for a SearchParameter this server cannot index, so
        a create/update of one can be refused before anything is stored."""
        with self._lock:
            return self._checked(search_parameter)

    def add(self, search_parameter: dict[str, Any]) -> list[ParamDef]:
        """Activate a SearchParameter resource (replacing an earlier one with the same url)."""
        with self._lock:
            defs = self._checked(search_parameter)
            self._by_url[search_parameter["url"]] = defs
            self._rebuild()
        return defs

    def remove(self, url: str) -> None:
        """Deactivate a run-time SearchParameter; removing one that replaced a core parameter of
        the same url brings the core definition back (core parameters are never dropped)."""
        with self._lock:
            if url in self._core_urls:
                if self._by_url.get(url) is not self._core_defs.get(url):
                    self._by_url[url] = self._core_defs[url]
                    self._rebuild()
            elif url in self._by_url:
                del self._by_url[url]
                self._rebuild()

    def is_core(self, url: str) -> bool:
        """Whether ``url`` is one of the parameters the registry was built with."""
        return url in self._core_urls

    def get(self, resource_type: str, code: str) -> ParamDef | None:
        """The parameter ``code`` as it applies to ``resource_type`` (common ones included)."""
        found = self._tables.get(resource_type, {}).get(code)
        if found is None:
            found = self._tables.get("Resource", {}).get(code)
            if found is None and resource_type not in NOT_DOMAIN:
                found = self._tables.get("DomainResource", {}).get(code)
        return found

    def for_type(self, resource_type: str) -> dict[str, ParamDef]:
        """Every parameter of ``resource_type``: common ones first, the type's own override them."""
        out = dict(self._tables.get("Resource", {}))
        if resource_type not in NOT_DOMAIN and resource_type != "Resource":
            out.update(self._tables.get("DomainResource", {}))
        out.update(self._tables.get(resource_type, {}))
        return out

    def is_supported(self, param: ParamDef) -> bool:
        """Whether searching by ``param`` works here: not for ``special`` (``near``) and not for
        parameters without an expression (``_text``, ``_content``, ``_query``), which
        :func:`server.search.parse.parse_search` declines."""
        return param.type != "special" and param.expression is not None

    def all(self) -> list[ParamDef]:
        """Every ParamDef (one per SearchParameter and base)."""
        return [d for defs in self._by_url.values() for d in defs]

    def is_resource_type(self, name: str) -> bool:
        return self.definitions.is_resource_type(name)

"""The terminology service: CodeSystems, ValueSets and ConceptMaps by url, and their operations.

Resources come from the shipped package (:mod:`terminology.package`: R4 + Chinese tables) with
resources created through the API layered on top (:meth:`Terminology.add`). Each operation is
a method returning the FHIR ``Parameters`` (or expanded ``ValueSet``) the R4 operation defines,
so the HTTP layer can expose them one to one:

- ``CodeSystem/$lookup``       -> :meth:`Terminology.lookup`
- ``CodeSystem/$subsumes``     -> :meth:`Terminology.subsumes`
- ``*/$validate-code``         -> :meth:`Terminology.validate_code`
- ``ValueSet/$expand``         -> :meth:`Terminology.expand`
- ``ConceptMap/$translate``    -> :meth:`Terminology.translate`

Typed helpers serve the validator and search: :meth:`check` (binding checks, cached per value
set), :meth:`descendants` / :meth:`ancestors` (``:below`` / ``:above``), :meth:`translations`.

Caches: compiled code systems by url; evaluated value sets by url, each remembering every url it
read. :meth:`add` and :meth:`remove` drop the changed url and every value set that read it, so a
ValueSet or CodeSystem created through the API is used at once.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from functools import cache
from typing import Any

from terminology import expansion, parameters
from terminology.codesystem import CodeSystemView, Concept
from terminology.compose import Evaluated, evaluate
from terminology.conceptmap import Translation, translate_with
from terminology.errors import InvalidRequest, NotSupported, UnknownCode, UnknownResource, UnknownSystem
from terminology.membership import CodeCheck, Membership, Usable, judge_display
from terminology.package import KINDS, MapSummary, Package, default_package, summarize_map

_CYCLE = "cycle"


class Terminology:
    """CodeSystems, ValueSets and ConceptMaps by canonical url, with the R4 terminology operations."""

    def __init__(self, package: Package | None = None) -> None:
        self._package = package if package is not None else default_package()
        self._added: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self._views: dict[str, CodeSystemView | None] = {}
        self._evaluated: dict[str, Evaluated] = {}
        self._memberships: dict[str, Membership] = {}
        self._dependents: defaultdict[str, set[str]] = defaultdict(set)
        self._lock = threading.RLock()
        self.generation = 0
        """Bumped by every :meth:`add` and :meth:`remove`, for callers that keep what they derived."""

    # ---- resources -------------------------------------------------------------------------

    def resource(self, kind: str, url: str) -> dict[str, Any] | None:
        """The CodeSystem/ValueSet/ConceptMap with this url: API-created first, then the package."""
        url = url.split("|", 1)[0]
        return self._added[kind].get(url) or self._package.resource(kind, url)

    def add(self, resource: dict[str, Any]) -> None:
        """Use a CodeSystem/ValueSet/ConceptMap created or updated through the API (replaces same url)."""
        kind = resource.get("resourceType")
        if kind not in KINDS or not resource.get("url"):
            raise InvalidRequest("Only CodeSystem, ValueSet and ConceptMap resources with a url can be added")
        with self._lock:
            self._added[kind][resource["url"]] = resource
            self._invalidate(resource["url"])
            self.generation += 1

    def remove(self, url: str) -> None:
        """Forget an API-created resource (the packaged one with the same url, if any, shows again)."""
        with self._lock:
            for kind in KINDS:
                self._added[kind].pop(url, None)
            self._invalidate(url)
            self.generation += 1

    def _invalidate(self, url: str) -> None:
        self._views.pop(url, None)
        stack, seen = [url], set()
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            self._evaluated.pop(current, None)
            self._memberships.pop(current, None)
            stack.extend(self._dependents.pop(current, ()))

    def codesystem(self, url: str) -> CodeSystemView | None:
        """The compiled code system for a Coding.system uri, or None when not carried."""
        try:
            return self._views[url]
        except KeyError:
            pass
        with self._lock:
            resource = self.resource("CodeSystem", url)
            view = None
            if resource is not None and resource.get("content") not in ("supplement", "not-present"):
                view = CodeSystemView(resource)
            self._views[url] = view
            return view

    def _require_cs(self, system: str | None) -> CodeSystemView:
        if not system:
            raise InvalidRequest("A code system (system or url) is required")
        cs = self.codesystem(system)
        if cs is None:
            raise UnknownSystem(system)
        return cs

    def _concept_of(self, system: str, code: str) -> tuple[Concept | None, bool]:
        cs = self.codesystem(system)
        return (cs.get(code), cs.complete) if cs is not None else (None, False)

    # ---- value set evaluation (compose.Resolver) --------------------------------------------

    def published(self, url: str) -> dict[str, Any] | None:
        """The expansion published with R4, unless the value set was replaced through the API."""
        if url in self._added["ValueSet"]:
            return None
        return self._package.expansion(url)

    def evaluated(self, url: str, trail: tuple[str, ...] = ()) -> Evaluated | None:
        """The cached evaluation of the value set with this url (None when unknown)."""
        found = self._evaluated.get(url)
        if found is not None:
            return found
        if url in trail:
            cyclic = Evaluated(open_all=True)
            cyclic.notes.append(f"ValueSet {url!r} imports itself")
            return cyclic
        resource = self.resource("ValueSet", url)
        if resource is None:
            return None
        with self._lock:
            result = evaluate(resource, self, (*trail, url))
            self._evaluated[url] = result
            for dep in result.deps:
                self._dependents[dep].add(url)
            return result

    def _valueset(self, url: str | None, valueset: dict[str, Any] | None) -> tuple[dict[str, Any], Evaluated]:
        if valueset is not None:
            return valueset, evaluate(valueset, self, (valueset.get("url", ""),))
        if not url:
            raise InvalidRequest("A value set (url or valueSet) is required")
        found = self.evaluated(url.split("|", 1)[0])
        resource = self.resource("ValueSet", url)
        if found is None or resource is None:
            raise UnknownResource("ValueSet", url)
        return resource, found

    # ---- $lookup / $subsumes ---------------------------------------------------------------

    def lookup(self, system: str | None = None, code: str | None = None, version: str | None = None,
               properties: list[str] | None = None) -> dict[str, Any]:
        """``CodeSystem/$lookup``: display, designations, properties (incl. parent/child).

        Raises UnknownSystem / UnknownCode. ``version`` is accepted; we carry one version per system.
        """
        if not system or not code:
            raise InvalidRequest("$lookup needs system and code, or coding")
        cs = self._require_cs(system)
        concept = cs.get(code)
        if concept is None:
            raise UnknownCode(system, code, partial=not cs.complete)
        return parameters.lookup_result(cs, concept, properties)

    def display(self, system: str, code: str) -> str | None:
        """The preferred display of a code, or None when system or code is unknown."""
        concept, _ = self._concept_of(system, code)
        return concept.display if concept else None

    def subsumption(self, system: str, code_a: str, code_b: str) -> str:
        """equivalent | subsumes | subsumed-by | not-subsumed (raises UnknownSystem / UnknownCode)."""
        cs = self._require_cs(system)
        for code in (code_a, code_b):
            if cs.get(code) is None:
                raise UnknownCode(system, code)
        return cs.subsumes(code_a, code_b)

    def subsumes(self, system: str | None = None, code_a: str | None = None, code_b: str | None = None, *,
                 coding_a: dict[str, Any] | None = None, coding_b: dict[str, Any] | None = None) -> dict[str, Any]:
        """``CodeSystem/$subsumes`` with codeA/codeB (+ system) or codingA/codingB."""
        if coding_a is not None and coding_b is not None:
            if coding_a.get("system") != coding_b.get("system"):
                raise InvalidRequest("codingA and codingB must be from the same code system")
            system, code_a, code_b = coding_a.get("system"), coding_a.get("code"), coding_b.get("code")
        if not system or not code_a or not code_b:
            raise InvalidRequest("$subsumes needs system with codeA and codeB, or codingA and codingB")
        return parameters.subsumes_result(self.subsumption(system, code_a, code_b))

    def descendants(self, system: str, code: str) -> set[str] | None:
        """Codes below ``code`` (not itself) for ``:below``; None when the system is not carried."""
        cs = self.codesystem(system)
        return set(cs.descendants(code)) if cs is not None else None

    def ancestors(self, system: str, code: str) -> set[str] | None:
        """Codes above ``code`` (not itself) for ``:above``; None when the system is not carried."""
        cs = self.codesystem(system)
        return set(cs.ancestors(code)) if cs is not None else None

    # ---- $validate-code ----------------------------------------------------------------------

    def check(self, valueset_url: str, system: str | None, code: str, display: str | None = None) -> CodeCheck:
        """Is ``system#code`` in the value set? The validator's binding check (cached per value set)."""
        membership = self._memberships.get(valueset_url)
        if membership is None:
            membership = self._membership(valueset_url)
            if membership is None:
                return CodeCheck(None, f"Value set {valueset_url} is not known to this server")
        return membership.check(system, code, display)

    def enumerate(self, valueset_url: str) -> Usable | None:
        """The codes of a value set this server can list completely (None: unknown, or open-ended such
        as mimetypes or UCUM), for checks that must cost one set lookup (cached per value set)."""
        membership = self._memberships.get(valueset_url) or self._membership(valueset_url)
        return membership.usable() if membership is not None else None

    def _membership(self, url: str) -> Membership | None:
        found = self.evaluated(url.split("|", 1)[0])
        if found is None:
            return None
        with self._lock:
            membership = Membership(url, found, self._concept_of)
            self._memberships[url] = membership
            self._dependents[url.split("|", 1)[0]].add(url)
            return membership

    def check_code(self, system: str, code: str, display: str | None = None) -> CodeCheck:
        """Is ``code`` defined by code system ``system`` (CodeSystem/$validate-code)?"""
        cs = self.codesystem(system)
        if cs is None:
            return CodeCheck(None, f"Code system {system} is not carried by this server; {code!r} was not validated")
        concept = cs.get(code)
        if concept is None:
            if cs.complete:
                return CodeCheck(False, f"Unknown code {code!r} in code system {system}")
            return CodeCheck(None, f"Code {code!r} is not in this server's {cs.content} copy of code system {system}")
        if display is None:
            return CodeCheck(True, "", concept.display)
        return judge_display(system, concept.code, display, concept.display, concept.displays())

    def validate_code(self, *, url: str | None = None, valueset: dict[str, Any] | None = None,
                      codesystem: dict[str, Any] | None = None, system: str | None = None,
                      code: str | None = None, display: str | None = None, version: str | None = None,
                      coding: dict[str, Any] | None = None, codeable_concept: dict[str, Any] | None = None,
                      kind: str | None = None) -> dict[str, Any]:
        """``ValueSet/$validate-code`` and ``CodeSystem/$validate-code``.

        ``kind`` ("ValueSet"/"CodeSystem") says which; when None, ``valueset``/``codesystem``
        decide, then ``url`` is tried as a ValueSet and then as a CodeSystem, and without either
        the code is checked against ``system`` alone. A codeableConcept is valid when any coding is.
        A wrong display answers result false with a message (see :mod:`terminology.membership`).
        ``version`` is accepted; one version per code system is carried.
        """
        codings = self._codings(system, code, display, coding, codeable_concept)
        checks = [self._one(url, valueset, codesystem, kind, c) for c in codings]
        ok = [c for c in checks if c.result and c.display_valid is not False]
        if ok:
            return parameters.validate_result(True, ok[0].message, ok[0].display)
        unknown = [c for c in checks if c.result is None]
        chosen = unknown[0] if unknown else checks[0]
        result = None if unknown else False
        message = "; ".join(c.message for c in checks if c.message)
        return parameters.validate_result(result, message, chosen.display)

    @staticmethod
    def _codings(system: str | None, code: str | None, display: str | None, coding: dict[str, Any] | None,
                 codeable_concept: dict[str, Any] | None) -> list[dict[str, Any]]:
        if codeable_concept is not None:
            codings = [c for c in codeable_concept.get("coding", []) if c.get("code")]
        elif coding is not None:
            codings = [coding] if coding.get("code") else []
        elif code:
            codings = [{"system": system, "code": code, "display": display}]
        else:
            codings = []
        if not codings:
            raise InvalidRequest("$validate-code needs code (with system), coding or codeableConcept")
        return codings

    def _one(self, url: str | None, valueset: dict[str, Any] | None, codesystem: dict[str, Any] | None,
             kind: str | None, coding: dict[str, Any]) -> CodeCheck:
        system, code, display = coding.get("system"), coding["code"], coding.get("display")
        if codesystem is not None or kind == "CodeSystem":
            target = (codesystem or {}).get("url") or url or system
            if codesystem is not None:
                cs = CodeSystemView(codesystem)
                return Terminology._check_in(cs, target or "", code, display)
            return self.check_code(target or "", code, display)
        if valueset is not None:
            vs, evaluated_vs = self._valueset(None, valueset)
            return Membership(vs.get("url", "(inline)"), evaluated_vs, self._concept_of).check(system, code, display)
        if url and self.resource("ValueSet", url) is not None:
            return self.check(url, system, code, display)
        if url and kind is None and self.resource("CodeSystem", url) is not None:
            return self.check_code(url, code, display)
        if url:
            raise UnknownResource(kind or "ValueSet", url)
        if not system:
            raise InvalidRequest("$validate-code without a value set needs a system")
        return self.check_code(system, code, display)

    @staticmethod
    def _check_in(cs: CodeSystemView, system: str, code: str, display: str | None) -> CodeCheck:
        concept = cs.get(code)
        if concept is None:
            return CodeCheck(False if cs.complete else None, f"Unknown code {code!r} in code system {system}")
        if display is None:
            return CodeCheck(True, "", concept.display)
        return judge_display(system, code, display, concept.display, concept.displays())

    # ---- $expand -------------------------------------------------------------------------------

    def expand(self, url: str | None = None, valueset: dict[str, Any] | None = None, *, filter: str | None = None,
               count: int | None = None, offset: int | None = None, active_only: bool = False,
               include_designations: bool = False) -> dict[str, Any]:
        """``ValueSet/$expand``: the ValueSet with ``expansion`` (paged, text-filtered).

        Raises UnknownResource, NotSupported (needs a code system we do not carry and R4 published
        no expansion), TooCostly (too large without ``count``).
        """
        resource, evaluated_vs = self._valueset(url, valueset)
        label = resource.get("url", "(inline)")
        if evaluated_vs.external and not evaluated_vs.published:
            raise NotSupported(f"ValueSet {label} cannot be expanded here: it needs "
                               f"{', '.join(sorted(evaluated_vs.external))}, which this server does not carry")
        if (evaluated_vs.open_systems and not evaluated_vs.published) or (
                evaluated_vs.open_all and not evaluated_vs.entries):
            why = "; ".join(dict.fromkeys(evaluated_vs.notes)) or "its definition cannot be evaluated"
            raise NotSupported(f"ValueSet {label} cannot be expanded here: {why}")
        request = expansion.ExpandRequest(filter=filter, count=count, offset=offset, active_only=active_only,
                                          include_designations=include_designations)
        return expansion.render(resource, evaluated_vs, request)

    # ---- $translate ----------------------------------------------------------------------------

    def _map_summaries(self) -> list[MapSummary]:
        added = {url: summarize_map(cm) for url, cm in self._added["ConceptMap"].items()}
        return [*(m for m in self._package.maps() if m.url not in added), *added.values()]

    def translations(self, system: str | None, code: str, *, url: str | None = None,
                     conceptmap: dict[str, Any] | None = None, source: str | None = None,
                     target: str | None = None, target_system: str | None = None,
                     reverse: bool = False) -> list[Translation]:
        """Typed ``$translate``: every match from the chosen map, or from all maps that fit."""
        if conceptmap is not None:
            maps = [conceptmap]
        elif url:
            found = self.resource("ConceptMap", url)
            if found is None:
                raise UnknownResource("ConceptMap", url)
            maps = [found]
        else:
            maps = []
            for summary in self._map_summaries():
                ins, outs = (summary.targets, summary.sources) if reverse else (summary.sources, summary.targets)
                scope_in, scope_out = ((summary.target_scope, summary.source_scope) if reverse
                                       else (summary.source_scope, summary.target_scope))
                if system is not None and system not in ins:
                    continue
                if target_system is not None and target_system not in outs:
                    continue
                if (source is not None and scope_in != source) or (target is not None and scope_out != target):
                    continue
                cm = self.resource("ConceptMap", summary.url)
                if cm is not None:
                    maps.append(cm)
        found_matches: list[Translation] = []
        for cm in maps:
            found_matches.extend(translate_with(cm, system, code, target_system=target_system, reverse=reverse,
                                                resolve=lambda u: self.resource("ConceptMap", u)))
        return found_matches

    def translate(self, *, url: str | None = None, conceptmap: dict[str, Any] | None = None,
                  system: str | None = None, code: str | None = None, coding: dict[str, Any] | None = None,
                  codeable_concept: dict[str, Any] | None = None, source: str | None = None,
                  target: str | None = None, target_system: str | None = None,
                  reverse: bool = False) -> dict[str, Any]:
        """``ConceptMap/$translate`` forward or reverse: result + match list (equivalence, concept, source)."""
        codings = self._codings(system, code, None, coding, codeable_concept)
        matches: list[Translation] = []
        for c in codings:
            matches.extend(self.translations(c.get("system"), c["code"], url=url, conceptmap=conceptmap,
                                             source=source, target=target, target_system=target_system,
                                             reverse=reverse))
        message = None
        if not any(m.is_match for m in matches):
            label = ", ".join(f"{c.get('system')}#{c['code']}" for c in codings)
            message = f"No mapping found for {label}"
        return parameters.translate_result(matches, message)


@cache
def default_terminology() -> Terminology:
    """The process-wide terminology service over the shipped package."""
    return Terminology(default_package())

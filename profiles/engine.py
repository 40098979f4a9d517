"""The profile engine: validation against StructureDefinitions, after the structural stage.

One engine serves core validation and profile validation alike
(http://hl7.org/fhir/R4/validation.html): a resource that claims profiles (``meta.profile``) or is
given one explicitly is walked against each of them — their snapshots include everything the core
definition says — and a resource claiming none is walked against its core definition, which adds
to the structural stage the core invariants, required/extensible bindings, extension resolution
and reference target checks.

The engine owns what it compiles: StructureDefinitions compiled into rule trees on first use,
FHIRPath expressions parsed once, terminology answers cached. All of it is thrown away when the
:class:`~profiles.registry.ProfileRegistry` changes (its ``generation`` moves), so a profile or value
set uploaded through the API is used by the next validation.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable
from typing import Any

from profiles import vitals
from profiles.bindings import BindingChecker, CachedChecker, default_binding_checker
from profiles.definitions import FHIR_BASE
from profiles.elements import CompiledProfile, Rule, compile_profile
from profiles.invariants import Invariants
from profiles.issues import WARNING, Severity, ValidationIssue
from profiles.registry import ProfileRegistry, canonical_url
from profiles.walker import Walk

QuestionnaireResolver = Callable[[str], dict[str, Any] | None]
CodeSystemCheck = Callable[[str, str], bool | None]
"""(system, code) -> defined by the code system (True), not defined by one known in full (False), or cannot tell."""
"""Canonical url of a Questionnaire -> the Questionnaire, or None when it is not available."""
GENERIC_TYPES = frozenset({"BackboneElement", "Element"})
SPECIAL_TYPES = frozenset({"Reference", "Attachment"})
"""Types with checks of their own in the walk (reference targets, attachment size)."""
EXTENSION_NAMES = frozenset({"extension", "modifierExtension"})


class Plan:
    """How to walk below an item of one type of one rule, worked out once."""

    __slots__ = ("any_of", "checks", "inert", "owners", "special", "unknown")

    def __init__(self, checks: tuple[Rule, ...], owners: tuple[Rule, ...], any_of: tuple[str, ...] = (),
                 unknown: str | None = None, special: str | None = None) -> None:
        self.checks = checks
        """Root rules of the type (profile) whose value checks also apply (e.g. Quantity's qty-3)."""
        self.owners = owners
        """Rules whose children are walked: the rule's own, or its type's."""
        self.any_of = any_of
        """Several type profiles: the item must conform to one of them."""
        self.unknown = unknown
        """A type profile that is not available."""
        self.special = special
        self.inert: list[bool] = [False, False]
        """Nothing below needs checking, [with, without] invariants (set by :meth:`ProfileEngine.plan`)."""


def global_profiles(guides: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Resource type -> the profiles every resource of that type must conform to, by ``ImplementationGuide.global``."""
    out: dict[str, list[str]] = {}
    for guide in guides:
        entries = guide.get("global")
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, dict) and isinstance(entry.get("type"), str) and isinstance(entry.get("profile"), str):
                urls = out.setdefault(entry["type"], [])
                if entry["profile"] not in urls:
                    urls.append(entry["profile"])
    return out


class ProfileEngine:
    """Validates resources against the StructureDefinitions of a registry."""

    def __init__(self, registry: ProfileRegistry | None = None, *, terminology: BindingChecker | None = None,
                 core_invariants: bool = True, unknown_extensions: Severity = WARNING,
                 best_practice: Severity | None = WARNING, implied: bool = False,
                 questionnaires: QuestionnaireResolver | None = None) -> None:
        """
        ``core_invariants`` switches the core definitions' invariants off for resources that claim
        no profile (profiles' invariants always run); ``unknown_extensions`` is the severity of an
        extension whose definition cannot be found; ``best_practice`` the severity of invariants
        marked as best practice (dom-6 "should have narrative"; None skips them); ``implied``
        checks a resource against the profiles it must meet without claiming them
        (:meth:`implied_profiles`);
        ``questionnaires`` finds the Questionnaire a QuestionnaireResponse answers (default:
        Questionnaires in the registry).
        """
        self.registry = registry if registry is not None else ProfileRegistry()
        self.terminology = CachedChecker(terminology if terminology is not None
                                         else default_binding_checker(self.registry))
        self.invariants = Invariants()
        self.core_invariants = core_invariants
        self.unknown_extensions: Severity = unknown_extensions
        self.implied = implied
        self.code_systems: CodeSystemCheck | None = None
        """Whether a Coding's code is defined by its code system (set by :meth:`with_options`): True, False
        (a code system known in full lacks it: an error), None (cannot tell)."""
        self._vital_signs: dict[str, str] | None = None
        self._global: dict[str, list[str]] | None = None
        self.best_practice: Severity | None = best_practice
        self.questionnaires = questionnaires if questionnaires is not None else self._registry_questionnaire
        definitions = self.registry.definitions
        self.choice_types = tuple(sorted(definitions.data_types | definitions.primitive_types))
        self.primitive_types = definitions.primitive_types
        self._compiled: dict[str, CompiledProfile | None] = {}
        self._core: dict[str, bool] = {}
        self._generation = self.registry.generation
        self._lock = threading.Lock()

    # -- entry point -------------------------------------------------------------------------

    def validate(self, resource: dict[str, Any], *, profiles: Iterable[str] = ()) -> list[ValidationIssue]:
        """Issues of ``resource`` (and the resources inside it) against its profiles or core definition."""
        self.refresh()
        type_name = resource.get("resourceType")
        if not isinstance(type_name, str) or self.core_profile(type_name) is None:
            return []
        walk = Walk(self)
        walk.resource(resource, type_name, None, None, profiles)
        return walk.result()

    def with_options(self, *, unknown_extensions: Severity | None = None, implied: bool | None = None,
                     code_systems: CodeSystemCheck | None = None) -> ProfileEngine:
        """This engine with other options (those not given are kept).

        The two share the registry, the terminology and every compiled definition and cached
        answer (cleared in place by :meth:`refresh`), so a server can answer ``$validate`` as the
        reference validator does (an unresolvable extension is an error, a vital sign is checked
        against its profile …) while its writes stay lenient, without compiling each definition twice.
        """
        sibling = copy.copy(self)
        if unknown_extensions is not None:
            sibling.unknown_extensions = unknown_extensions
        if implied is not None:
            sibling.implied = implied
        if code_systems is not None:
            sibling.code_systems = code_systems
        return sibling

    def implied_profiles(self, resource: dict[str, Any]) -> list[str]:
        """Profiles ``resource`` must conform to without claiming them (when the ``implied`` option is on):
        the global profiles of the ImplementationGuides in the registry for its type
        (http://hl7.org/fhir/R4/implementationguide-definitions.html#ImplementationGuide.global), and the
        vital-signs profile an Observation's LOINC code requires (:mod:`profiles.vitals`)."""
        if not self.implied:
            return []
        type_name = resource.get("resourceType")
        if self._global is None:
            self._global = global_profiles(self.registry.added("ImplementationGuide"))
        found = list(self._global.get(str(type_name), ()))
        if type_name == "Observation":
            if self._vital_signs is None:
                self._vital_signs = vitals.code_table(self.registry.structure_definition)
            found.extend(u for u in vitals.required_profiles(resource, self._vital_signs) if u not in found)
        return found

    def refresh(self) -> None:
        """Forget compiled definitions and cached answers if the registry changed since they were made."""
        if self._generation != self.registry.generation:
            with self._lock:
                self._compiled.clear()  # in place: engines made by with_options share them
                self._core.clear()
                self._vital_signs = None
                self._global = None
                self.terminology.clear()
                self._generation = self.registry.generation

    # -- definitions -------------------------------------------------------------------------

    def profile(self, url: str) -> CompiledProfile | None:
        """The compiled StructureDefinition with this canonical url (snapshot generated if needed)."""
        url = canonical_url(url)
        if url in self._compiled:
            return self._compiled[url]
        sd = self.registry.structure_definition(url)
        elements = self.registry.snapshot(url) if sd is not None else None
        compiled = compile_profile(sd, elements) if sd is not None and elements else None
        self._compiled[url] = compiled
        return compiled

    def core_profile(self, type_name: str) -> CompiledProfile | None:
        """The core definition of a type (``Patient``, ``Quantity``, ``string``)."""
        return self.profile(FHIR_BASE + type_name) if "/" not in type_name else self.profile(type_name)

    def is_core_definition(self, url: str) -> bool:
        """True for a definition of the core specification that defines a type (not a core profile)."""
        found = self._core.get(url)
        if found is None:
            sd = self.registry.get(url)
            found = bool(sd is not None and sd is self.registry.definitions.by_url(url)
                         and sd.get("derivation") == "specialization")
            self._core[url] = found
        return found

    def profile_type(self, url: str) -> str | None:
        """The type a StructureDefinition constrains, without compiling it."""
        sd = self.registry.structure_definition(url)
        if sd is not None and isinstance(sd.get("type"), str):
            return str(sd["type"])
        if url.startswith(FHIR_BASE):
            return url[len(FHIR_BASE):]
        return None

    # -- rule navigation ---------------------------------------------------------------------

    def keys(self, rule: Rule) -> tuple[dict[str, tuple[Rule, str | None]], tuple[Rule, ...]]:
        """JSON key -> (child rule, concrete type), and the children to check even when absent."""
        if rule.keys is None or rule.presence is None:
            keys: dict[str, tuple[Rule, str | None]] = {}
            for name, child in rule.children.items():
                if child.choice:
                    for type_code in self.choice_types:
                        keys[child.stem + type_code[0].upper() + type_code[1:]] = (child, type_code)
                else:
                    codes = child.type_codes
                    keys[name] = (child, next(iter(codes)) if len(codes) == 1 else
                                  ("BackboneElement" if child.content_reference else None))
            rule.presence = tuple(c for c in rule.children.values()
                                  if c.min > c.base_min or any(s.min > 0 for s in c.slices))
            rule.keys = keys
        return rule.keys, rule.presence

    def children_rule(self, rule: Rule, type_code: str | None) -> Rule | None:
        """The rule whose children apply below ``rule``: itself, or the element its contentReference names."""
        if rule.children:
            return rule
        if rule.content_reference:
            target_path = rule.content_reference.split("#", 1)[-1]
            owner = self.profile(rule.profile)
            target = owner.rule_for_path(target_path) if owner is not None else None
            if target is None:
                core = self.core_profile(target_path.split(".", 1)[0])
                target = core.rule_for_path(target_path) if core is not None else None
            return target if target is not None and target.children else None
        return None

    def type_root(self, rule: Rule) -> Rule | None:
        """The root rule of ``rule``'s type definition (its profile when it names one)."""
        if len(rule.types) != 1:
            return None
        only = rule.types[0]
        compiled = self.profile(only.profiles[0]) if len(only.profiles) == 1 else self.core_profile(only.code)
        return compiled.root if compiled is not None else None

    def plan(self, rule: Rule, type_code: str | None) -> Plan:
        """How to walk below an item of ``rule`` whose concrete type is ``type_code``."""
        found = rule.plans.get(type_code)
        if found is None:
            found = self._plan(rule, type_code)
            rule.plans[type_code] = found
            found.inert = [self._inert(found, True), self._inert(found, False)]
        return found  # type: ignore[no-any-return]

    def _plan(self, rule: Rule, type_code: str | None) -> Plan:
        special = type_code if type_code in SPECIAL_TYPES else None
        profiles = tuple(p for t in rule.types if t.code == type_code for p in t.profiles)
        own = self.children_rule(rule, type_code)
        if len(profiles) > 1:
            return Plan((), (), any_of=profiles, special=special)
        if profiles:
            target = self.profile(profiles[0])
            if target is None:
                return Plan((), (own,) if own is not None else (), unknown=profiles[0], special=special)
            return Plan((target.root,), (target.root, own) if own is not None else (target.root,), special=special)
        base = self.core_profile(type_code) if type_code and type_code not in GENERIC_TYPES else None
        checks = (base.root,) if base is not None else ()
        if own is not None:
            return Plan(checks, (own,), special=special)
        return Plan(checks, (base.root,) if base is not None else (), special=special)

    def _inert(self, plan: Plan, invariants: bool) -> bool:
        """Whether nothing below an item walked with ``plan`` can produce an issue (extensions aside)."""
        if plan.any_of or plan.unknown is not None or plan.special is not None:
            return False
        if any(c.value_checks or (invariants and c.invariants) for c in plan.checks):
            return False
        return all(self._subtree_inert(owner, invariants) for owner in plan.owners)

    def _subtree_inert(self, owner: Rule, invariants: bool) -> bool:
        index = 1 if invariants else 0
        cached = owner.inert[index]
        if cached is not None:
            return cached
        owner.inert[index] = False  # pessimistic while recursing through cyclic types
        result = True
        for child in owner.children.values():
            if child.name in EXTENSION_NAMES:
                continue  # extensions are found in the instance, not in the definition
            if child.name == "value" and owner.id in self.primitive_types:
                continue  # a primitive's value is the JSON primitive itself, checked by the structural stage
            if (child.value_checks or (invariants and child.invariants) or child.slices or child.slicing is not None
                    or child.min > child.base_min or child.max < child.base_max or child.content_reference
                    or child.type_codes & {"Resource", "DomainResource"} or child.children):
                result = False
                break
            if not all(self._primitive_inert(child, t, invariants) if t in self.primitive_types
                       else self.plan(child, t).inert[0 if invariants else 1] for t in child.type_codes):
                result = False
                break
        owner.inert[index] = result
        return result

    def _primitive_inert(self, rule: Rule, type_code: str, invariants: bool) -> bool:
        """A primitive has no children in JSON; only its type's own checks matter (``_name`` has extensions)."""
        plan = self.plan(rule, type_code) if type_code not in rule.plans else rule.plans[type_code]
        return not any(c.value_checks or (invariants and c.invariants) for c in plan.checks)

    # -- resource-specific rules ------------------------------------------------------------

    def _registry_questionnaire(self, url: str) -> dict[str, Any] | None:
        found = self.registry.get(url)
        return found if found is not None and found.get("resourceType") == "Questionnaire" else None

    def check_questionnaire_response(self, walk: Walk, response: dict[str, Any], path: str) -> None:
        from profiles.questionnaire import check_response

        check_response(walk, response, path, self.questionnaires)

"""The instance walk: one resource against one compiled StructureDefinition, element by element.

For every element of the instance the walk finds its :class:`~profiles.elements.Rule` and applies
what the rule says (http://hl7.org/fhir/R4/profiling.html, http://hl7.org/fhir/R4/validation.html):
cardinality where the profile narrowed it, allowed types, the value checks of
:mod:`profiles.checks` (fixed/pattern, limits, bindings, invariants), slicing
(:mod:`profiles.slicing`), extensions (:mod:`profiles.extensions`) and reference targets
(:mod:`profiles.targets`). Below an element the profile says nothing about, the element's type
definition takes over (``Identifier``, or the type's profile such as ``SimpleQuantity``), so core
rules like qty-3 apply everywhere. Resources inside the one walked (contained, Bundle entries,
Parameters values) are walked as resources of their own, against the profiles they claim or
their core definition.

Shape errors (unknown elements, wrong JSON kinds) belong to the structural stage; the walk skips
what it cannot interpret rather than report it twice. A subtree with nothing to check — no
rule with a value check, invariant, slicing or reference below it, and no extension in the
instance — is not walked at all (see :meth:`profiles.engine.ProfileEngine.inert`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from profiles import bundles, extensions, slicing, targets
from profiles.checks import source, value_checks
from profiles.codes import CODE_INVALID, INVARIANT, NOT_FOUND, NOT_SUPPORTED, REQUIRED, STRUCTURE, VALUE
from profiles.elements import CompiledProfile, Rule
from profiles.issues import ERROR, INFORMATION, WARNING, Severity, ValidationIssue
from profiles.narrative import dangling_links
from profiles.references import BundleIndex
from profiles.values import attachment_problem

if TYPE_CHECKING:
    from profiles.engine import Plan, ProfileEngine

EXTENSION_NAMES = frozenset({"extension", "modifierExtension"})
RESOURCE_TYPES = frozenset({"Resource", "DomainResource"})
ELE_1 = "ele-1: All FHIR elements must have a @value or children [hasValue() or (children().count() > id.count())]"


@dataclass(slots=True)
class Item:
    """One occurrence of an element in the instance."""

    value: Any
    """The JSON value (a dict for complex types and resources, the primitive otherwise; None when only ``_x``)."""
    extra: Any
    """The ``_name`` object of a primitive (id, extension), or None."""
    type: str | None
    """The concrete type (from the choice name, the rule's single type, or ``resourceType``)."""
    expression: str
    definition: str = ""
    """The path of the element definition it is an occurrence of (``HumanName.family``)."""


@dataclass(slots=True)
class Scope:
    """The resource being walked and what references and %variables resolve against."""

    resource: dict[str, Any]
    root: dict[str, Any]
    path: str
    bundle: BundleIndex | None
    core: bool
    """Walking a core definition (no profile claimed): core invariants may be switched off."""


class Walk:
    """One validation: collects issues while walking a resource and everything nested in it."""

    def __init__(self, engine: ProfileEngine) -> None:
        self.engine = engine
        self.issues: list[ValidationIssue] = []
        self._bundles: dict[int, BundleIndex] = {}

    # -- issues ------------------------------------------------------------------------------

    def report(self, severity: Severity, code: str, message: str, expression: str) -> None:
        self.issues.append(ValidationIssue(severity, code, message, expression))

    def result(self) -> list[ValidationIssue]:
        """The issues, each once, in the order first found."""
        return list(dict.fromkeys(self.issues))

    def trial(self) -> Walk:
        """A walk whose issues are kept apart (slice matching, choosing between profiles)."""
        trial = Walk(self.engine)
        trial._bundles = self._bundles
        return trial

    def bundle_index(self, bundle: dict[str, Any]) -> BundleIndex:
        """The entry index of a Bundle, built once per validation."""
        found = self._bundles.get(id(bundle))
        if found is None:
            found = self._bundles[id(bundle)] = BundleIndex.of(bundle)
        return found

    # -- resources ---------------------------------------------------------------------------

    def resource(self, resource: dict[str, Any], path: str, root: dict[str, Any] | None,
                 bundle: BundleIndex | None, extra_profiles: Iterable[str] = ()) -> None:
        """Validate a resource against the profiles it claims (and ``extra_profiles``), or its core definition."""
        type_name = resource.get("resourceType")
        if not isinstance(type_name, str):
            return
        root = root if root is not None else resource
        explicit = list(extra_profiles)
        explicit.extend(u for u in self.engine.implied_profiles(resource) if u not in explicit)
        compiled: list[CompiledProfile] = []
        for url in dict.fromkeys([*_claims(resource), *explicit]):
            profile = self.engine.profile(url)
            if profile is None:
                self._unknown_profile(url, path, claimed=url not in explicit)
            elif profile.type != type_name and profile.type not in RESOURCE_TYPES:
                self.report(ERROR, STRUCTURE, f"the profile {url} is for {profile.type} resources, not {type_name}",
                            path)
            else:
                compiled.append(profile)
                for problem in self.engine.registry.snapshot_warnings(url):
                    self.report(INFORMATION, NOT_SUPPORTED, f"the profile {url} has a differential element that was "
                                f"ignored: {problem}", path)
        core = not compiled
        if core:
            base = self.engine.core_profile(type_name)
            if base is None:
                return
            compiled = [base]
        scope = Scope(resource, root, path, bundle, core)
        for profile in compiled:
            self.conform(resource, type_name, profile.root, scope, path)
        self._narrative_links(resource, path)
        if type_name == "Bundle":
            bundles.check_bundle(self, resource, path)
        elif type_name == "QuestionnaireResponse":
            self.engine.check_questionnaire_response(self, resource, path)

    def _narrative_links(self, resource: dict[str, Any], path: str) -> None:
        """Internal links of the narrative must reach an anchor of it or of a contained resource's narrative."""
        own = _div(resource)
        if own is None or "#" not in own:
            return
        contained = resource.get("contained")
        others = [d for d in map(_div, contained if isinstance(contained, list) else ()) if d is not None]
        for link in dangling_links(own, others):
            self.report(ERROR, VALUE, f"the narrative links to #{link}, but no element of it has that id or name",
                        f"{path}.text.div")

    def _unknown_profile(self, url: str, path: str, claimed: bool = False) -> None:
        """A profile that cannot be used: a claim of it is only noted, a demand for it is an error.

        A resource may claim profiles the server does not carry (meta.profile,
        http://hl7.org/fhir/R4/resource.html#profile); that is not a fault of the resource.
        """
        problem = self.engine.registry.snapshot_problem(url)
        if problem is not None:
            self.report(ERROR, NOT_SUPPORTED, f"the profile {url} cannot be used: {problem}", path)
        elif claimed:
            self.report(WARNING, NOT_FOUND, f"the claimed profile {url} is not known to this server, so the "
                        "resource was not checked against it", f"{path}.meta.profile")
        else:
            self.report(ERROR, NOT_FOUND, f"the profile {url} is not known to this server", path)

    def nested(self, item: Item, rule: Rule, scope: Scope) -> None:
        """A resource inside the one walked: contained, a Bundle entry, a Parameters value."""
        resource = item.value
        if not isinstance(resource, dict):
            return
        type_name = resource.get("resourceType")
        if not isinstance(type_name, str):
            return
        allowed = rule.type_codes - RESOURCE_TYPES
        if allowed and type_name not in allowed:
            self.report(ERROR, STRUCTURE, f"a {type_name} is not allowed here (allowed: {', '.join(sorted(allowed))})",
                        item.expression)
            return
        extra = [p for t in rule.types if t.code in (type_name, *RESOURCE_TYPES) for p in t.profiles]
        root = scope.resource if rule.name == "contained" else resource
        bundle = self.bundle_index(scope.resource) if scope.resource.get("resourceType") == "Bundle" else scope.bundle
        if len(extra) <= 1:
            self.resource(resource, item.expression, root, bundle, extra)
            return
        outcomes: list[list[ValidationIssue]] = []
        for url in extra:  # several type profiles: conforming to one of them is enough
            trial = self.trial()
            trial.resource(resource, item.expression, root, bundle, [url])
            if not any(i.is_error for i in trial.result()):
                self.issues.extend(trial.result())
                return
            outcomes.append(trial.result())
        self.report(ERROR, STRUCTURE, f"the {type_name} does not conform to any of the profiles {', '.join(extra)}",
                    item.expression)
        self.issues.extend(outcomes[0])

    def resolve(self, reference: str, scope: Scope) -> dict[str, Any] | None:
        """The resource a reference points at, when it is in the payload (contained or a Bundle entry)."""
        if reference.startswith("#"):
            if reference == "#":
                return scope.root
            contained = scope.root.get("contained")
            for candidate in contained if isinstance(contained, list) else ():
                if isinstance(candidate, dict) and candidate.get("id") == reference[1:]:
                    return candidate
            return None
        if scope.bundle is not None:
            found = scope.bundle.resolve(reference, scope.resource)
            return found[0] if found else None
        return None

    # -- elements ----------------------------------------------------------------------------

    def conform(self, value: Any, type_name: str | None, rule: Rule, scope: Scope, path: str,
                extra: Any = None) -> None:
        """Check ``value`` against ``rule`` (a profile's root) and walk its children."""
        item = Item(value, extra, type_name, path)
        value_checks(self, rule, item, scope)
        self.children(item, rule, scope)

    def children(self, item: Item, owner: Rule, scope: Scope) -> None:
        """Walk the object of ``item`` with the child rules of ``owner``."""
        value = item.value if item.value.__class__ is dict else item.extra
        if value.__class__ is not dict:
            return
        if len(value) == 1 and "id" in value and (value is item.value or item.value is None):
            self.report(ERROR, INVARIANT, ELE_1, item.expression)
        keys, presence = self.engine.keys(owner)
        groups: dict[Rule, list[Item]] = {}
        expression = item.expression
        for key in value:
            underscore = key[:1] == "_"  # key[:1]: an empty name is an unknown element, not a crash
            name = key[1:] if underscore else key
            if underscore and name in value:
                continue
            found = keys.get(name)
            if found is None:
                continue
            child, type_code = found
            items = groups.get(child)
            if items is None:
                items = groups[child] = []
            _add_items(items, value, name, type_code, f"{expression}.{name}", child.path)
        for child in presence:
            if child not in groups:
                self.element(child, [], scope, f"{expression}.{child.stem}", item)
        for child, items in groups.items():
            self.element(child, items, scope, f"{expression}.{child.stem}", item)

    def element(self, rule: Rule, items: list[Item], scope: Scope, expression: str, parent: Item) -> None:
        count = len(items)
        if count < rule.min and rule.min > rule.base_min:
            self.report(ERROR, REQUIRED, f"{rule.path}: at least {rule.min} required ({source(rule)}), found "
                        f"{count}", expression)
        if count > rule.max and rule.max < rule.base_max:
            self.report(ERROR, STRUCTURE, f"{rule.path}: at most {rule.max} allowed ({source(rule)}), found "
                        f"{count}", expression)
        if rule.slices or (rule.slicing is not None and rule.slicing.rules == "closed"):
            matched = slicing.assign(self, rule, items, scope, expression)
            for item, slice_rule in zip(items, matched, strict=True):
                self.item(rule, item, scope)
                if slice_rule is not None:
                    self.item(slice_rule, item, scope, in_slice=True)
                    if slice_rule.slices:
                        self.element(slice_rule, [item], scope, expression, parent)
                elif rule.name in EXTENSION_NAMES:
                    extensions.check_unsliced(self, item, rule, scope, parent)
            return
        extension = rule.name in EXTENSION_NAMES
        for item in items:
            self.item(rule, item, scope)
            if extension:
                extensions.check_unsliced(self, item, rule, scope, parent)

    def item(self, rule: Rule, item: Item, scope: Scope, in_slice: bool = False) -> None:
        type_code = item.type
        if type_code is not None and rule.types and type_code not in rule.type_codes and not self._type_ok(rule, item):
            return
        if rule.value_checks or rule.invariants:
            value_checks(self, rule, item, scope)
        value = item.value
        if (value.__class__ is dict and "resourceType" in value) or type_code in RESOURCE_TYPES:
            if not in_slice:
                self.nested(item, rule, scope)
            return
        if (type_code in CODED and self.engine.code_systems is not None and value.__class__ is dict
                and (rule.binding is None or rule.binding.strength != "required")):
            self._codes_defined(value, type_code, item.expression)  # a required binding already says it
        plan = self.engine.plan(rule, type_code)
        if plan.inert[scope.core and not self.engine.core_invariants] and _no_extensions(value, item.extra):
            return
        if plan.special == "Reference" and value.__class__ is dict:
            targets.check_reference(self, rule, item, scope)
        elif plan.special == "Attachment" and value.__class__ is dict:
            problem = attachment_problem(value)
            if problem is not None:
                self.report(ERROR, VALUE, problem, f"{item.expression}.size")
        self.below(rule, item, scope, plan)

    def _codes_defined(self, value: dict[str, Any], type_code: str, expression: str) -> None:
        """A Coding's code must be defined by its code system, whatever the binding (none, example, preferred,
        extensible; under a required one the binding check already reports it, once): a code system the
        server holds in full (``content`` complete) that lacks it makes it an error, as for the HL7 reference
        validator; a system not held, or held only in part, cannot tell."""
        check = self.engine.code_systems
        assert check is not None
        if type_code == "Coding":
            codings: list[tuple[Any, str]] = [(value, expression)]
        else:
            found = value.get("coding")
            codings = [(c, f"{expression}.coding[{n}]") for n, c in enumerate(found if isinstance(found, list) else ())]
        for coding, where in codings:
            if not isinstance(coding, dict):
                continue
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str) and check(system, code) is False:
                self.report(ERROR, CODE_INVALID, f"the code '{code}' is not defined in the code system {system}",
                            where)

    def _type_ok(self, rule: Rule, item: Item) -> bool:
        if self.engine.is_core_definition(rule.profile):
            return True  # the structural stage reported it against the same definition
        if isinstance(item.value, dict) and "resourceType" in item.value:
            return True  # resources are checked in nested()
        self.report(ERROR, STRUCTURE, f"{rule.path}: type {item.type} is not allowed ({source(rule)}; allowed: "
                    f"{', '.join(sorted(rule.type_codes))})", item.expression)
        return False

    def below(self, rule: Rule, item: Item, scope: Scope, plan: Plan) -> None:
        """Walk below ``item``: the rule's own children and its type's (profile's) definition."""
        if plan.any_of:
            self._any_profile(rule, item, scope, plan.any_of)
            return
        if plan.unknown is not None:
            self._unknown_profile(plan.unknown, item.expression)
        for check in plan.checks:
            if check.value_checks or check.invariants:
                value_checks(self, check, item, scope)
        for owner in plan.owners:
            self.children(item, owner, scope)

    def conform_type(self, item: Item, root: Rule, scope: Scope) -> None:
        """``item`` against the root of a type definition (an extension's, a type profile's)."""
        value_checks(self, root, item, scope)
        self.children(item, root, scope)

    def _any_profile(self, rule: Rule, item: Item, scope: Scope, profiles: tuple[str, ...]) -> None:
        """The item must conform to at least one of several type profiles."""
        outcomes: list[list[ValidationIssue]] = []
        for url in profiles:
            target = self.engine.profile(url)
            if target is None:
                continue
            trial = self.trial()
            trial.conform_type(item, target.root, scope)
            if not any(i.is_error for i in trial.result()):
                self.issues.extend(trial.result())
                return
            outcomes.append([i for i in trial.result() if i.is_error])
        if outcomes:
            self.report(ERROR, STRUCTURE, f"{rule.path}: the value does not conform to any of the profiles "
                        f"{', '.join(profiles)}", item.expression)
            self.issues.extend(outcomes[0])


CODED = frozenset({"Coding", "CodeableConcept"})


def _div(resource: Any) -> str | None:
    text = resource.get("text") if isinstance(resource, dict) else None
    div = text.get("div") if isinstance(text, dict) else None
    return div if isinstance(div, str) else None


def _claims(resource: dict[str, Any]) -> list[str]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    return [p for p in profiles if isinstance(p, str)] if isinstance(profiles, list) else []


def _add_items(out: list[Item], obj: dict[str, Any], name: str, type_code: str | None, expression: str,
               definition: str) -> None:
    """The occurrences of ``name`` in ``obj``: items of its array (aligned with ``_name``) or one item."""
    values, extras = obj.get(name), obj.get("_" + name)
    if values.__class__ is list or extras.__class__ is list:
        values_list = values if values.__class__ is list else []
        extras_list = extras if extras.__class__ is list else []
        for i in range(max(len(values_list), len(extras_list))):
            value = values_list[i] if i < len(values_list) else None
            extra = extras_list[i] if i < len(extras_list) else None
            if value is not None or extra is not None:
                out.append(Item(value, extra, _type_of(value, type_code), f"{expression}[{i}]", definition))
        return
    out.append(Item(values, extras, _type_of(values, type_code), expression, definition))


def _type_of(value: Any, type_code: str | None) -> str | None:
    if value.__class__ is dict:
        found = value.get("resourceType")
        if found.__class__ is str:
            return found  # type: ignore[no-any-return]
    return type_code


def _no_extensions(value: Any, extra: Any = None) -> bool:
    """True when no object in the value (or its ``_name`` part) carries extensions (or breaks ele-1)."""
    if extra is not None:
        return False
    if value.__class__ is dict:
        if "extension" in value or "modifierExtension" in value or (len(value) == 1 and "id" in value):
            return False
        for item in value.values():
            cls = item.__class__
            if (cls is dict or cls is list) and not _no_extensions(item):
                return False
        return True
    if value.__class__ is list:
        for item in value:
            cls = item.__class__
            if cls is dict or cls is list:
                if not _no_extensions(item):
                    return False
            elif item is None:
                continue
        return True
    return True

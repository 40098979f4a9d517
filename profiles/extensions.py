"""Extensions the profile does not slice: found by url, checked against their StructureDefinition.

http://hl7.org/fhir/R4/extensibility.html: an extension's ``url`` names the StructureDefinition
that defines it (core, an uploaded profile or a regional one). Found, the extension is validated
against it — value type, cardinality and nested extensions, via the same walk as any profile —
and its *context* is checked (http://hl7.org/fhir/R4/defining-extensions.html#context): the
element it sits on must be one the definition allows (``element`` contexts by type name or
path, ``extension`` contexts by the parent extension's url).

Not found, it cannot be checked: a ``modifierExtension`` changes the meaning of its element, so
not understanding one is an error (http://hl7.org/fhir/R4/extensibility.html#modifierExtension);
an ordinary extension can be ignored safely and gets the engine's configured severity (a
warning by default); see :func:`unknown_severity` for the HL7 and example domains.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from profiles.codes import EXTENSION
from profiles.issues import ERROR, INFORMATION, WARNING, Severity

if TYPE_CHECKING:
    from profiles.elements import Rule
    from profiles.walker import Item, Scope, Walk

HL7_DOMAIN = "http://hl7.org/fhir/"
EXAMPLE_DOMAINS = ("http://example.org/", "https://example.org/", "http://acme.com/", "http://acme.org/")
INDEX = re.compile(r"\[\d+\]")
GENERIC_CONTEXTS = frozenset({"Element", "Base", "BackboneElement"})
GENERIC_TYPES = frozenset({"BackboneElement", "Element"})


def unknown_severity(url: str, modifier: bool, configured: Severity) -> Severity:
    """How serious an extension url that resolves to nothing is.

    HL7 publishes extensions outside the R4 core package (the extensions pack, cross-version
    extensions); one of those is legitimate but uncheckable here, so it is a warning whatever the
    configured severity.
    """
    if modifier:
        return ERROR
    if url.startswith(EXAMPLE_DOMAINS):
        return INFORMATION
    if url.startswith(HL7_DOMAIN):
        return WARNING
    return configured


def check_unsliced(walk: Walk, item: Item, rule: Rule, scope: Scope, parent: Item | None) -> None:
    """Resolve an extension (an item of the ``extension``/``modifierExtension`` ``rule``) by its url and validate it."""
    modifier = rule.name == "modifierExtension"
    value = item.value
    if not isinstance(value, dict):
        return
    url = value.get("url")
    if not isinstance(url, str):
        return
    if ":" not in url:
        if parent is not None and parent.type == "Extension":
            if rule.slices and (rule.slicing is None or rule.slicing.rules != "closed"):
                # the parent's definition names its parts (closed slicing reports strangers itself)
                owner = rule.profile if rule.profile else "its definition"
                walk.report(ERROR, EXTENSION, f"the sub-extension url '{url}' is not defined by the extension "
                            f"{owner}", f"{item.expression}.url")
            return
        # only a part of a complex extension is named by a relative url; anywhere else the url must say
        # which StructureDefinition defines the extension
        walk.report(ERROR, EXTENSION, f"the extension url '{url}' must be an absolute URL naming the "
                    "extension's definition (http://hl7.org/fhir/R4/extensibility.html)", f"{item.expression}.url")
        return
    profile = walk.engine.profile(url)
    kind = "modifier extension" if modifier else "extension"
    if profile is None:
        problem = walk.engine.registry.snapshot_problem(url)
        if problem is not None:
            walk.report(ERROR, EXTENSION, f"the {kind} {url} cannot be checked: {problem}", item.expression)
            return
        severity = unknown_severity(url, modifier, walk.engine.unknown_extensions)
        advice = ("it changes the meaning of the element, so it must be understood" if modifier
                  else "load its StructureDefinition to have it checked")
        walk.report(severity, EXTENSION, f"unknown {kind} {url}: {advice}", item.expression)
        return
    if profile.type != "Extension":
        walk.report(ERROR, EXTENSION, f"{url} is a StructureDefinition of a {profile.type}, not of an extension",
                    item.expression)
        return
    if parent is not None:
        problem = _context_problem(profile.definition, parent, rule.path.rsplit(".", 1)[0], scope)
        if problem is None:
            problem = _context_invariant_problem(walk, profile.definition, value, parent, scope)
        if problem is not None:
            walk.report(ERROR, EXTENSION, f"the {kind} {url} is not allowed here: {problem}", item.expression)
    if modifier != profile.root.is_modifier:
        walk.report(ERROR, EXTENSION, f"the extension {url} must be used as a "
                    f"{'modifierExtension' if not modifier else 'extension'}", item.expression)
    walk.conform_type(item, profile.root, scope)


def _context_invariant_problem(walk: Walk, definition: dict[str, Any], extension: dict[str, Any], parent: Item,
                               scope: Scope) -> str | None:
    """The first ``contextInvariant`` the element carrying the extension fails, if any.

    http://hl7.org/fhir/R4/structuredefinition-definitions.html#StructureDefinition.contextInvariant:
    FHIRPath rules about when the extension can be used, all of which must be true, evaluated on
    the element the extension is on (``%extension`` is the extension itself).
    """
    from profiles.elements import Invariant
    from profiles.invariants import Env

    expressions = definition.get("contextInvariant")
    if not isinstance(expressions, list) or not isinstance(parent.value, dict):
        return None
    env = Env(scope.resource, scope.root, lambda reference: walk.resolve(reference, scope))
    type_path = parent.type if parent.type and parent.type not in GENERIC_TYPES else parent.definition
    for expression in expressions:
        if not isinstance(expression, str):
            continue
        invariant = Invariant("context", "error", expression, expression, str(definition.get("url")))
        outcome = walk.engine.invariants.check(invariant, parent.value, type_path.replace("[x]", ""), env,
                                               variables={"extension": extension})
        if outcome is False:
            return f"its context invariant {expression!r} does not hold"
    return None


def _instance_path(parent: Item, scope: Scope) -> str:
    """``Bundle.entry[0].resource.name[1]`` in a Patient -> ``Patient.name``."""
    expression = parent.expression
    type_name = scope.resource.get("resourceType", "")
    if expression.startswith(scope.path):
        expression = str(type_name) + expression[len(scope.path):]
    return INDEX.sub("", expression)


def _context_problem(definition: dict[str, Any], parent: Item, definition_path: str, scope: Scope) -> str | None:
    """Why the extension may not sit on ``parent`` (None when a context allows it).

    An ``element`` context names a type (``HumanName``), a path in a resource (``Patient.birthDate``)
    or a path in a data type (``ElementDefinition.binding``); the parent matches by its type, its
    path in the instance, or the path of its element definition. A context that is an ancestor or
    a child of the parent is accepted too, because the R4 core definitions use their own
    extensions that way (structuredefinition-fhir-type on ``ElementDefinition.type`` with context
    ``ElementDefinition.type.code``; regex on ``ElementDefinition.type`` with context
    ``ElementDefinition``); what is caught is an extension used on an unrelated type or resource.
    """
    contexts = [c for c in definition.get("context", ()) if isinstance(c, dict)]
    if not contexts:
        return None
    path = _instance_path(parent, scope)
    candidates = {path, definition_path, parent.definition, parent.definition.replace("[x]", "")} - {""}
    parent_type = parent.type or ""
    is_resource = isinstance(parent.value, dict) and "resourceType" in parent.value
    shown: list[str] = []
    for context in contexts:
        kind, expression = context.get("type"), context.get("expression")
        if not isinstance(expression, str):
            continue
        shown.append(expression)
        if kind == "fhirpath":
            return None
        if kind == "extension":
            parent_url = parent.value.get("url") if isinstance(parent.value, dict) else None
            if parent_url == expression:
                return None
            continue
        if expression in GENERIC_CONTEXTS or expression == parent_type or expression in candidates:
            return None
        if any(expression.startswith(c + ".") or c.startswith(expression + ".") for c in candidates):
            return None
        if expression in ("Resource", "DomainResource") and is_resource:
            return None
    where = f"{path} ({parent_type})" if parent_type and parent_type != path else path
    return f"its context allows {', '.join(shown)}; this is {where}"

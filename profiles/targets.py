"""Reference targets: a Reference must point at a resource its ``targetProfile`` allows.

http://hl7.org/fhir/R4/elementdefinition-definitions.html#ElementDefinition.type.targetProfile:
the target of ``Observation.subject`` must be a Patient, Group, Device or Location, and a
profile may narrow that to its own profiles (``Reference(RegionalPatient)``). The target's type
comes from the resource itself when it is in the payload (contained, or a Bundle entry, found
through :mod:`profiles.bundles`), else from the reference text (``Patient/123``) or
``Reference.type``. When the target is in the payload and the allowed targets are profiles, it
must conform to one of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from profiles import bundles
from profiles.codes import STRUCTURE
from profiles.definitions import FHIR_BASE
from profiles.elements import Rule
from profiles.issues import ERROR
from profiles.references import parse_reference

if TYPE_CHECKING:
    from profiles.walker import Item, Scope, Walk


def check_reference(walk: Walk, rule: Rule, item: Item, scope: Scope) -> None:
    text = item.value.get("reference")
    if not isinstance(text, str):
        return
    if scope.bundle is not None and not text.startswith("#"):
        target = bundles.check_reference(walk, scope.bundle, text, scope.resource, item.expression)
    else:
        target = walk.resolve(text, scope)
    _consistent_type(walk, item, text, target)
    urls = [p for t in rule.types if t.code == "Reference" for p in t.target_profiles]
    if not urls:
        return
    engine = walk.engine
    allowed = {engine.profile_type(url) for url in urls}
    if None in allowed or "Resource" in allowed or "DomainResource" in allowed:
        return
    type_name = target.get("resourceType") if target is not None else parse_reference(text).type
    if type_name is None:
        declared = item.value.get("type")
        type_name = declared if isinstance(declared, str) else None
    if type_name is None:
        return
    if type_name not in allowed:
        walk.report(ERROR, STRUCTURE, f"{rule.path}: a reference to a {type_name} is not allowed here (allowed: "
                    f"{', '.join(sorted(str(a) for a in allowed))})", f"{item.expression}.reference")
        return
    if target is not None:
        _target_profiles(walk, rule, item, target, urls, scope)


def _consistent_type(walk: Walk, item: Item, text: str, target: dict[str, Any] | None) -> None:
    """R4 Reference.type: "If both Reference.type and Reference.reference are populated and
    Reference.reference is a FHIR URL, both SHALL be consistent" — and a resolved target is of that type."""
    declared = item.value.get("type")
    if not isinstance(declared, str):
        return
    if declared.startswith(FHIR_BASE):
        declared = declared[len(FHIR_BASE):]
    if ":" in declared:
        return  # a logical model's url
    found = target.get("resourceType") if target is not None else parse_reference(text).type
    if isinstance(found, str) and found != declared:
        walk.report(ERROR, STRUCTURE, f"the reference {text} is to a {found}, but its type says {declared} "
                    "(http://hl7.org/fhir/R4/references-definitions.html#Reference.type)", f"{item.expression}.type")


def _target_profiles(walk: Walk, rule: Rule, item: Item, target: dict[str, Any], urls: list[str],
                     scope: Scope) -> None:
    from profiles.walker import Scope as WalkScope

    engine = walk.engine
    wanted = [u for u in urls if not engine.is_core_definition(u) and engine.profile_type(u) == target.get(
        "resourceType")]
    if not wanted:
        return
    for url in wanted:
        profile = engine.profile(url)
        if profile is None:
            return
        trial = walk.trial()
        trial.conform(target, profile.type, profile.root, WalkScope(target, target, item.expression, scope.bundle,
                                                                     False), item.expression)
        if not any(i.is_error for i in trial.result()):
            return
    walk.report(ERROR, STRUCTURE, f"{rule.path}: the referenced {target.get('resourceType')} does not conform to "
                f"{' or '.join(wanted)}", f"{item.expression}.reference")

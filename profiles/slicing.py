"""Slicing: which slice each repetition of a sliced element belongs to, and the slicing rules.

http://hl7.org/fhir/R4/profiling.html#slicing: a slice is recognised by its *discriminators*
(http://hl7.org/fhir/R4/profiling.html#discriminator) — a path into the repetition plus how to
compare what is found there with what the slice fixes:

- ``value``: equal to the slice's fixed[x] (or pattern[x]; a required binding also counts);
- ``pattern``: matches the slice's pattern[x] (fixed[x] accepted too);
- ``type``: of one of the slice's types (``$this`` on a choice, ``resource`` in a Bundle entry,
  ``resolve()`` for the referenced resource);
- ``profile``: conforms to the slice's type profile;
- ``exists``: present when the slice makes it required (min ≥ 1), absent when it forbids it.

Paths may use ``$this``, ``extension('url')``, ``ofType(T)`` and ``resolve()``. Without
discriminators a repetition belongs to the first slice it validates against. Then the slicing
rules apply: each slice's cardinality, ``closed`` (nothing outside the slices), ``openAtEnd``
(unsliced repetitions only after the sliced ones) and ``ordered`` (slices in definition order).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from profiles.codes import REQUIRED, STRUCTURE
from profiles.elements import Discriminator, Rule
from profiles.issues import ERROR
from profiles.values import matches_fixed, matches_pattern

if TYPE_CHECKING:
    from profiles.walker import Item, Scope, Walk

SEGMENT = re.compile(r"\s*(\$this|[A-Za-z_][A-Za-z0-9_]*(?:\((?:'[^']*'|[^)'])*\))?)\s*(?:\.|$)")


def split_path(path: str) -> list[str]:
    """``extension('http://x.org/a').value`` -> ["extension('http://x.org/a')", "value"]."""
    out: list[str] = []
    position = 0
    while position < len(path):
        match = SEGMENT.match(path, position)
        if match is None or match.end() == position:
            return [path]
        out.append(match.group(1))
        position = match.end()
    return out


def _argument(segment: str) -> str:
    inner = segment[segment.index("(") + 1: -1].strip()
    return inner[1:-1] if inner[:1] == "'" else inner


def assign(walk: Walk, rule: Rule, items: list[Item], scope: Scope, expression: str) -> list[Rule | None]:
    """The slice each item belongs to (None: none), reporting slice cardinality, closed and ordered rules."""
    slices = rule.slices
    slicing = rule.slicing
    discriminators = slicing.discriminators if slicing is not None else ()
    matched: list[Rule | None] = []
    for item in items:
        hit = None
        for candidate in slices:
            if _matches(walk, candidate, item, discriminators, scope):
                hit = candidate
                break
        matched.append(hit)
    for candidate in slices:
        count = sum(1 for m in matched if m is candidate)
        if count < candidate.min:
            walk.report(ERROR, REQUIRED, f"{rule.path}: slice '{candidate.slice_name}' requires at least "
                        f"{candidate.min}, found {count} (profile {candidate.profile})", expression)
        if count > candidate.max:
            walk.report(ERROR, STRUCTURE, f"{rule.path}: slice '{candidate.slice_name}' allows at most "
                        f"{candidate.max}, found {count} (profile {candidate.profile})", expression)
    rules = slicing.rules if slicing is not None else "open"
    for item, hit in zip(items, matched, strict=True):
        if hit is None and rules == "closed":
            walk.report(ERROR, STRUCTURE, f"{rule.path}: this item matches none of the slices "
                        f"({', '.join(str(s.slice_name) for s in slices)}) and the slicing is closed "
                        f"(profile {rule.profile})", item.expression)
    if rules == "openAtEnd":
        _open_at_end(walk, rule, items, matched)
    if slicing is not None and slicing.ordered:
        _ordered(walk, rule, items, matched)
    return matched


def _open_at_end(walk: Walk, rule: Rule, items: list[Item], matched: list[Rule | None]) -> None:
    seen_open = False
    for item, hit in zip(items, matched, strict=True):
        if hit is None:
            seen_open = True
        elif seen_open:
            walk.report(ERROR, STRUCTURE, f"{rule.path}: items outside the slices must come after all sliced items "
                        f"(openAtEnd, profile {rule.profile})", item.expression)
            return


def _ordered(walk: Walk, rule: Rule, items: list[Item], matched: list[Rule | None]) -> None:
    position = {id(s): i for i, s in enumerate(rule.slices)}
    last = -1
    for item, hit in zip(items, matched, strict=True):
        if hit is None:
            continue
        index = position[id(hit)]
        if index < last:
            walk.report(ERROR, STRUCTURE, f"{rule.path}: slice '{hit.slice_name}' is out of order: the slicing is "
                        f"ordered (profile {rule.profile})", item.expression)
            return
        last = index


def _matches(walk: Walk, candidate: Rule, item: Item, discriminators: tuple[Discriminator, ...],
             scope: Scope) -> bool:
    if not discriminators:
        trial = walk.trial()
        trial.item(candidate, item, scope, in_slice=True)
        return not any(i.is_error for i in trial.result())
    return all(_discriminator(walk, candidate, item, d, scope) for d in discriminators)


def _discriminator(walk: Walk, candidate: Rule, item: Item, discriminator: Discriminator, scope: Scope) -> bool:
    segments = split_path(discriminator.path)
    resolves = bool(segments) and segments[-1] == "resolve()"
    kind = discriminator.type
    element = element_at(walk, candidate, segments[:-1] if resolves else segments)
    if element is None:
        return kind != "exists"
    found = values_at(walk, item, segments, scope)
    if kind == "exists":
        present = bool(found)
        if element.min >= 1:
            return present
        if element.max == 0:
            return not present
        return True
    if kind == "type":
        allowed = _target_types(walk, element) if resolves else element.type_codes
        if not allowed:
            return True
        return any(t in allowed for _, t in found)
    if kind == "profile":
        profiles = [p for t in element.types for p in (t.target_profiles if resolves else t.profiles)]
        if not profiles:
            return True
        return any(_conforms(walk, value, type_name, profiles, scope) for value, type_name in found)
    if _constraint(element, kind) == (None, None):
        if element.binding is not None and element.binding.strength == "required":
            return any(_in_value_set(walk, element, value) for value, _ in found)
        # the value may be fixed further down a required slice of an element on the path (the R4 bp
        # profile's components: code.coding is sliced, and its SBPCode slice fixes code.coding.code)
        nested = [leaf for leaf in _through_slices(walk, candidate, segments)
                  if _constraint(leaf, kind) != (None, None)]
        return not nested or any(_meets(leaf, kind, value) for leaf in nested for value, _ in found)
    return any(_meets(element, kind, value) for value, _ in found)


def _constraint(element: Rule, kind: str) -> tuple[Any, Any]:
    """(fixed, pattern) a value/pattern discriminator compares with (a pattern discriminator takes fixed[x] too)."""
    fixed = element.fixed if kind == "value" else None
    pattern = element.pattern
    if kind == "pattern" and pattern is None:
        pattern, fixed = element.fixed, None
    return fixed, pattern


def _meets(element: Rule, kind: str, value: Any) -> bool:
    fixed, pattern = _constraint(element, kind)
    if fixed is not None:
        return matches_fixed(fixed[1], value)
    return pattern is None or matches_pattern(pattern[1], value)


def _through_slices(walk: Walk, rule: Rule, segments: list[str]) -> list[Rule]:
    """The elements a discriminator path reaches through the required slices (min ≥ 1) of the sliced
    elements on its way, at any depth."""
    out: list[Rule] = []
    for n, segment in enumerate(segments):
        if segment == "$this" or segment.startswith(("ofType(", "extension(", "resolve(")):
            return out
        owner = walk.engine.children_rule(rule, None) or walk.engine.type_root(rule)
        child = None if owner is None else owner.children.get(segment) or owner.children.get(segment + "[x]")
        if child is None:
            return out
        for required in (s for s in child.slices if s.min >= 1):
            leaf = element_at(walk, required, segments[n + 1:])
            if leaf is not None:
                out.append(leaf)
            out.extend(_through_slices(walk, required, segments[n + 1:]))
        rule = child
    return out


def _target_types(walk: Walk, element: Rule) -> set[str]:
    types: set[str] = set()
    for t in element.types:
        for url in t.target_profiles:
            found = walk.engine.profile_type(url)
            if found is not None:
                types.add(found)
    return types


def _in_value_set(walk: Walk, element: Rule, value: Any) -> bool:
    binding = element.binding
    assert binding is not None
    codings: list[tuple[str | None, str]] = []
    if isinstance(value, str):
        codings.append((None, value))
    elif isinstance(value, dict):
        for coding in value.get("coding", [value]) if isinstance(value.get("coding", []), list) else []:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                codings.append((coding.get("system"), coding["code"]))
    return any(walk.engine.terminology.check(binding.value_set, s, c).result is True for s, c in codings)


def _conforms(walk: Walk, value: Any, type_name: str | None, profiles: list[str], scope: Scope) -> bool:
    from profiles.walker import Scope as WalkScope

    for url in profiles:
        profile = walk.engine.profile(url)
        if profile is None:
            continue
        trial = walk.trial()
        if isinstance(value, dict) and "resourceType" in value:
            if value["resourceType"] != profile.type:
                continue
            inner = WalkScope(value, value, scope.path, scope.bundle, False)
            trial.conform(value, profile.type, profile.root, inner, scope.path)
        else:
            trial.conform(value, type_name, profile.root, scope, scope.path)
        if not any(i.is_error for i in trial.result()):
            return True
    return False


def element_at(walk: Walk, rule: Rule, segments: list[str]) -> Rule | None:
    """The element definition a discriminator path names inside a slice, looking into type profiles."""
    current = rule
    for segment in segments:
        if segment == "$this" or segment.startswith("ofType("):
            continue
        if segment.startswith("extension("):
            url = _argument(segment)
            found = _extension_slice(walk, current, url)
            if found is None:
                return None
            current = found
            continue
        owner = walk.engine.children_rule(current, None) or walk.engine.type_root(current)
        if owner is None:
            return None
        child = owner.children.get(segment) or owner.children.get(segment + "[x]")
        if child is None:
            return None
        current = child
    return current


def _extension_slice(walk: Walk, rule: Rule, url: str) -> Rule | None:
    owner = walk.engine.children_rule(rule, None) or walk.engine.type_root(rule)
    if owner is None:
        return None
    extension = owner.children.get("extension")
    if extension is None:
        return None
    for candidate in extension.slices:
        if url in (p for t in candidate.types for p in t.profiles):
            return candidate
        url_rule = candidate.children.get("url")
        if url_rule is not None and url_rule.fixed is not None and url_rule.fixed[1] == url:
            return candidate
    return None


def values_at(walk: Walk, item: Item, segments: list[str], scope: Scope) -> list[tuple[Any, str | None]]:
    """What a discriminator path finds in an item, each value with its type when known."""
    current: list[tuple[Any, str | None]] = [(item.value, item.type)]
    for segment in segments:
        if segment == "$this":
            continue
        following: list[tuple[Any, str | None]] = []
        if segment == "resolve()":
            for value, _ in current:
                reference = value.get("reference") if isinstance(value, dict) else value
                if isinstance(reference, str):
                    target = walk.resolve(reference, scope)
                    if target is not None:
                        following.append((target, target.get("resourceType")))
                    else:
                        from profiles.references import parse_reference

                        parsed = parse_reference(reference)
                        if parsed.type is not None:
                            following.append(({"resourceType": parsed.type}, parsed.type))
        elif segment.startswith("extension("):
            url = _argument(segment)
            for value, _ in current:
                for extension in _as_list(value.get("extension") if isinstance(value, dict) else None):
                    if isinstance(extension, dict) and extension.get("url") == url:
                        following.append((extension, "Extension"))
        elif segment.startswith("ofType("):
            wanted = _argument(segment)
            following = [(v, t) for v, t in current if t == wanted]
        else:
            for value, _ in current:
                following.extend(_child_values(value, segment))
        current = following
    return current


def _child_values(value: Any, name: str) -> list[tuple[Any, str | None]]:
    if not isinstance(value, dict):
        return []
    if name in value:
        found = value[name]
        type_name = found.get("resourceType") if isinstance(found, dict) else None
        return [(v, v.get("resourceType") if isinstance(v, dict) else type_name) for v in _as_list(found)]
    out: list[tuple[Any, str | None]] = []
    for key, found in value.items():
        if key.startswith(name) and key[len(name):][:1].isupper():
            suffix = key[len(name):]
            type_name = suffix if suffix[0].isupper() and suffix not in _PRIMITIVE_CASE else _PRIMITIVE_CASE[suffix]
            out.extend((v, type_name) for v in _as_list(found))
    return out


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


_PRIMITIVE_CASE = {name[0].upper() + name[1:]: name for name in (
    "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id", "instant", "integer",
    "markdown", "oid", "positiveInt", "string", "time", "unsignedInt", "uri", "url", "uuid")}
"""JSON choice suffixes of primitive types (``valueDateTime``) -> the type name (``dateTime``)."""

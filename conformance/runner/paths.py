"""``path`` in TestScript variables and asserts: the XPath subset scripts use for FHIR XML, and
JSONPath for JSON, both evaluated on the JSON form of a resource (XML responses are converted
first, so one evaluator serves both formats).

XPath (http://hl7.org/fhir/R4/testscript-definitions.html#TestScript.variable.path): steps
``fhir:name`` or ``name`` separated by ``/`` (a leading ``/`` or ``//`` for descendants), ``*``,
``@value``/``@id``/``@url``, predicates ``[2]`` (1-based) and ``[fhir:system/@value='x']``, and
``count(…)``. The first step may name the resource type (``fhir:Patient/fhir:id/@value``), and a
resource inside ``contained`` or ``entry.resource`` is stepped into by its type
(``fhir:entry/fhir:resource/fhir:Patient``), as in FHIR XML. A step that ends on a primitive
element yields its value, so ``Patient/id`` and ``Patient/id/@value`` agree.

JSONPath: ``$``, ``.name``, ``['name']``, ``[n]`` (0-based), ``[*]``, ``..name`` and filters
``[?(@.system=='x')]``; arrays are stepped through implicitly, as FHIRPath does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class PathError(ValueError):
    """Raised for a path this evaluator cannot read."""


@dataclass(frozen=True)
class Prim:
    """A primitive element: its value and its ``_name`` sibling (id, extensions)."""

    value: Any
    extra: Any


def text(value: Any) -> str:
    """The string form comparisons use (booleans as FHIR writes them)."""
    if isinstance(value, Prim):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)


def plain(values: list[Any]) -> list[Any]:
    return [v.value if isinstance(v, Prim) else v for v in values]


def evaluate(path: str, root: Any) -> list[Any]:
    """The nodes ``path`` selects in ``root`` (a JSON resource); primitives as their values."""
    path = path.strip()
    if not path:
        raise PathError("empty path")
    if path.startswith("$"):
        return plain(_jsonpath(path, root))
    count = re.fullmatch(r"count\((.*)\)", path)
    if count:
        return [len(_xpath(count.group(1).strip(), root))]
    return plain(_xpath(path, root))


# --------------------------------------------------------------------------- XPath


def _split_steps(path: str) -> list[str]:
    steps, depth, current = [], 0, ""
    for char in path:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "/" and depth == 0:
            steps.append(current)
            current = ""
        else:
            current += char
    steps.append(current)
    return steps


_STEP = re.compile(r"(?P<name>@?(?:[A-Za-z_][\w\-]*:)?(?:[A-Za-z_][\w\-]*|\*))(?P<preds>(?:\[[^\]]*\])*)")


def _children(node: Any, name: str) -> list[Any]:
    if isinstance(node, Prim):
        if name == "extension" and isinstance(node.extra, dict):
            return list(node.extra.get("extension", []))
        return []
    if not isinstance(node, dict):
        return []
    if name == "*":
        return [c for key in node if not key.startswith("_") and key != "resourceType"
                for c in _children(node, key)]
    if name not in node and "_" + name not in node:
        return [node] if node.get("resourceType") == name else []
    value, extra = node.get(name), node.get("_" + name)
    values = value if isinstance(value, list) else [value]
    extras = extra if isinstance(extra, list) else [extra] * len(values)
    if value is None:
        values = [None] * len(extras)
    out: list[Any] = []
    for item, item_extra in zip(values, extras, strict=False):
        out.append(item if isinstance(item, dict) else Prim(item, item_extra))
    return out


def _descendants(node: Any) -> list[Any]:
    out = [node]
    for child in _children(node, "*"):
        out.extend(_descendants(child))
    return out


def _attribute(node: Any, name: str) -> list[Any]:
    if isinstance(node, Prim):
        if name == "value":
            return [] if node.value is None else [node.value]
        if name == "id" and isinstance(node.extra, dict) and "id" in node.extra:
            return [node.extra["id"]]
        return []
    if isinstance(node, dict) and name in ("id", "url") and name in node:
        return [node[name]]
    return []


def _predicate(nodes: list[Any], predicate: str) -> list[Any]:
    predicate = predicate.strip()
    if predicate.isdigit():
        index = int(predicate) - 1
        return [nodes[index]] if 0 <= index < len(nodes) else []
    if predicate == "last()":
        return nodes[-1:]
    compare = re.fullmatch(r"(.+?)\s*(!=|=)\s*(['\"])(.*)\3", predicate)
    if compare:
        sub, op, _, literal = compare.groups()
        return [n for n in nodes if any(text(v) == literal for v in _xpath(sub, n, relative=True)) == (op == "=")]
    return [n for n in nodes if _xpath(predicate, n, relative=True)]


def _xpath(path: str, root: Any, *, relative: bool = False) -> list[Any]:
    descend = path.startswith("//")
    steps = _split_steps(path.lstrip("/"))
    nodes: list[Any] = [root]
    first = True
    for raw in steps:
        if raw == "":
            descend = True
            continue
        match = _STEP.fullmatch(raw.strip())
        if match is None:
            raise PathError(f"cannot read XPath step {raw!r} in {path!r}")
        name = match.group("name")
        local = name.split(":", 1)[-1]
        if descend:
            nodes = [d for n in nodes for d in _descendants(n)]
            descend = False
        if name.startswith("@"):
            nodes = [a for n in nodes for a in _attribute(n, local.lstrip("@").split(":")[-1])]
        elif first and not relative and isinstance(root, dict) and local == root.get("resourceType"):
            nodes = [root]
        elif local == "text()":
            nodes = [n for n in nodes if isinstance(n, Prim)]
        else:
            nodes = [c for n in nodes for c in _children(n, local)]
        for predicate in re.findall(r"\[([^\]]*)\]", match.group("preds")):
            nodes = _predicate(nodes, predicate)
        first = False
    return nodes


# --------------------------------------------------------------------------- JSONPath

_JSON_TOKEN = re.compile(
    r"\.\.(?P<deep>[A-Za-z_][\w\-]*|\*)|\.(?P<name>[A-Za-z_][\w\-]*|\*)|\[(?P<bracket>[^\]]*)\]")


def _json_children(node: Any, name: str) -> list[Any]:
    if isinstance(node, list):
        return [c for item in node for c in _json_children(item, name)]
    if not isinstance(node, dict):
        return []
    if name == "*":
        values = list(node.values())
    elif name in node:
        values = [node[name]]
    else:
        return []
    return [c for v in values for c in (v if isinstance(v, list) else [v])]


def _json_descendants(node: Any) -> list[Any]:
    """Every object at or below ``node`` (arrays are stepped through, not listed themselves)."""
    out = [node] if isinstance(node, dict) else []
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        out.extend(_json_descendants(child))
    return out


def _json_filter(nodes: list[Any], expression: str) -> list[Any]:
    match = re.fullmatch(r"\?\(@((?:\.[\w\-]+)+)\s*(==|!=)\s*(['\"])(.*)\3\)", expression.strip())
    if match is None:
        raise PathError(f"cannot read JSONPath filter {expression!r}")
    sub, op, _, literal = match.groups()
    items = [i for n in nodes for i in (n if isinstance(n, list) else [n])]
    out = []
    for item in items:
        found = [item]
        for name in sub.strip(".").split("."):
            found = [c for f in found for c in _json_children(f, name)]
        if any(text(v) == literal for v in found) == (op == "=="):
            out.append(item)
    return out


def _jsonpath(path: str, root: Any) -> list[Any]:
    rest = path[1:]
    nodes: list[Any] = [root]
    position = 0
    while position < len(rest):
        match = _JSON_TOKEN.match(rest, position)
        if match is None:
            raise PathError(f"cannot read JSONPath {path!r} at {rest[position:]!r}")
        position = match.end()
        if match.group("deep"):
            nodes = [c for n in nodes for d in _json_descendants(n) for c in _json_children(d, match.group("deep"))]
        elif match.group("name"):
            nodes = [c for n in nodes for c in _json_children(n, match.group("name"))]
        else:
            bracket = match.group("bracket").strip()
            if bracket.startswith("?"):
                nodes = _json_filter(nodes, bracket)
            elif bracket in ("*", ""):  # arrays were already stepped through
                nodes = [c for n in nodes for c in (n if isinstance(n, list) else [n])]
            elif bracket.lstrip("-").isdigit():
                nodes = _json_index(nodes, int(bracket))
            else:
                nodes = [c for n in nodes for c in _json_children(n, bracket.strip("'\""))]
    return nodes


def _json_index(nodes: list[Any], index: int) -> list[Any]:
    """``[n]`` indexes each array selected; a run of flattened values is indexed as one array."""
    arrays = [n for n in nodes if isinstance(n, list)]
    if arrays:
        return [a[index] for a in arrays if -len(a) <= index < len(a)]
    return [nodes[index]] if -len(nodes) <= index < len(nodes) else []

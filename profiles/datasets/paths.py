"""Writing a value at a FHIR path given in a map file, creating what is missing on the way.

A path is a dotted list of JSON element names, each optionally followed by a selector:

- ``name[0]`` — the first list item (created if the list is empty);
- ``coding[system=urn:oid:2.16.156.10011.2.3.3.4]`` — the list item whose ``system`` is that value
  (created with it if none has), so two data elements can fill the same Coding;
- ``result[+]`` — a new item appended (a repeated reference, one per source row); an equal item
  already there is not added twice, so merging rows stays idempotent.

Selector values may contain dots (``url=http://...``): dots inside brackets do not split the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    selector: str | None = None
    """None (a single value), ``+`` (append), an index (``"0"``) or ``key=value``."""


@cache
def steps(path: str) -> tuple[Step, ...]:
    """``path`` split into :class:`Step`\\ s (``ValueError`` for an unbalanced bracket)."""
    parts: list[str] = []
    depth, start = 0, 0
    for i, char in enumerate(path):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "." and depth == 0:
            parts.append(path[start:i])
            start = i + 1
    parts.append(path[start:])
    if depth != 0:
        raise ValueError(f"unbalanced brackets in path {path!r}")
    found: list[Step] = []
    for part in parts:
        if part.endswith("]") and "[" in part:
            name, selector = part[:-1].split("[", 1)
            found.append(Step(name, selector))
        else:
            found.append(Step(part))
    return tuple(found)


def _item(items: list[Any], selector: str, last: bool, value: Any) -> tuple[list[Any], int]:
    if selector == "+":
        if last and value in items:
            return items, items.index(value)
        items.append(value if last else {})
        return items, len(items) - 1
    if selector.isdigit():
        index = int(selector)
        while len(items) <= index:
            items.append({})
        return items, index
    key, _, wanted = selector.partition("=")
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get(key) == wanted:
            return items, i
    items.append({key: wanted})
    return items, len(items) - 1


def put(resource: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at ``path`` (relative to ``resource``), creating objects and lists on the way."""
    node: Any = resource
    path_steps = steps(path)
    for n, step in enumerate(path_steps):
        last = n == len(path_steps) - 1
        if step.selector is None:
            if last:
                node[step.name] = value
                return
            node = node.setdefault(step.name, {})
            continue
        items = node.setdefault(step.name, [])
        items, index = _item(items, step.selector, last, value)
        if last:
            if step.selector != "+":
                items[index] = value
            return
        node = items[index]


def get(resource: Any, path: str) -> list[Any]:
    """The values at ``path`` (the reverse of :func:`put`): ``[+]`` yields every item, ``[key=value]`` the
    items whose ``key`` is that value, ``[0]`` the first."""
    current: list[Any] = [resource]
    for step in steps(path):
        following: list[Any] = []
        for node in current:
            if not isinstance(node, dict) or step.name not in node:
                continue
            value = node[step.name]
            if step.selector is None:
                following.append(value)
                continue
            items = value if isinstance(value, list) else [value]
            if step.selector == "+":
                following.extend(items)
            elif step.selector.isdigit():
                index = int(step.selector)
                following.extend(items[index:index + 1])
            else:
                key, _, wanted = step.selector.partition("=")
                following.extend(i for i in items if isinstance(i, dict) and i.get(key) == wanted)
        current = following
    return current

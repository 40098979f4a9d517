"""Rewriting references inside a transaction: ``urn:uuid:`` fullUrls and conditional references
(``Patient?identifier=…``) become ``Type/id`` (http://hl7.org/fhir/R4/http.html#trules)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from server.fhir.json import dumps

CONDITIONAL_REFERENCE = re.compile(rb'"reference":"[A-Z][A-Za-z]*\?')


def walk_references(node: Any, replace: Callable[[str], str]) -> None:
    """Apply ``replace`` to every ``reference`` string in the resource tree, in place."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                node[key] = replace(value)
            elif isinstance(value, dict | list):
                walk_references(value, replace)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                walk_references(item, replace)


def is_conditional(reference: str) -> bool:
    head = reference.split("?", 1)[0]
    return "?" in reference and "/" not in head and head[:1].isupper()


def has_conditional_reference(resource: dict[str, Any]) -> bool:
    """Whether any ``reference`` is a search (``Patient?identifier=…``): one scan of the serialised
    resource, an order of magnitude cheaper than walking the tree in Python."""
    return CONDITIONAL_REFERENCE.search(dumps(resource)) is not None

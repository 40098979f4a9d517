"""``_summary`` and ``_elements`` (http://hl7.org/fhir/R4/search.html#summary, #elements).

Subsetting is decided from the StructureDefinitions: ``isSummary`` elements for ``_summary=true``,
mandatory elements (min > 0) for ``text`` and ``_elements``. A subsetted resource is tagged
``SUBSETTED`` (http://terminology.hl7.org/CodeSystem/v3-ObservationValue) so it is never mistaken
for the whole resource.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from profiles.model import TypeModel

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
ALWAYS = ("resourceType", "id", "meta")
SUMMARY_MODES = ("true", "false", "text", "data", "count")


def _mark(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"]
    meta["tag"] = [*tags, SUBSETTED]
    resource["meta"] = meta
    return resource


def _keep(resource: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    wanted = set(names)
    out: dict[str, Any] = {}
    for key, value in resource.items():
        bare = key[1:] if key.startswith("_") else key
        if bare in wanted:
            out[key] = value
    return out


def _mandatory(model: TypeModel, type_: str) -> set[str]:
    return {name for name, el in model.children(model.root(type_)).items() if el.min > 0}


def _summary_names(model: TypeModel, type_: str) -> set[str]:
    return {name for name, el in model.children(model.root(type_)).items() if el.definition.get("isSummary")}


def summarize(resource: dict[str, Any], mode: str, model: TypeModel) -> dict[str, Any]:
    """Apply ``_summary=mode``; ``false`` (and ``count``, which callers handle) return it unchanged."""
    type_ = resource["resourceType"]
    if mode == "true":
        return _mark(_keep(resource, {*ALWAYS, *_summary_names(model, type_)}))
    if mode == "text":
        return _mark(_keep(resource, {*ALWAYS, "text", *_mandatory(model, type_)}))
    if mode == "data":
        return _mark({k: v for k, v in resource.items() if k != "text"})
    return resource


def elements(resource: dict[str, Any], names: Iterable[str], model: TypeModel) -> dict[str, Any]:
    """Apply ``_elements=a,b``: the named top-level elements plus the mandatory ones."""
    type_ = resource["resourceType"]
    wanted = {n.split(".", 1)[-1] if n.startswith(type_ + ".") else n for n in names}
    return _mark(_keep(resource, {*ALWAYS, *wanted, *_mandatory(model, type_)}))

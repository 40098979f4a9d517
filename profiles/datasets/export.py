"""The reverse direction (数据回流): stored FHIR resources back into a data set's rows.

The map file is read backwards, so no per-data-set code is needed either way:

- links between the data set's resources are the references the map writes (``{@patient}`` in a
  fixed value, ``as: reference`` writes). From the row resource (``row:`` in the map, made once per
  record) forward links are followed (Observation.subject → Patient) and reverse ones searched
  (DiagnosticReport.result → this Observation);
- each element is read back from its first invertible write: a plain value at its path; a
  template at the place its ``{this}`` stands; a Coding's or CodeableConcept's ``code``. Translated
  codes are skipped (the original Coding is another write). Dates return to D8/DT15, numbers to text.

Elements with no FHIR target (QC-only, e.g. 身份证件类别代码) are exported empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from profiles.datasets import paths
from profiles.datasets.spec import DataSet, Element, Write


@dataclass(frozen=True, slots=True)
class Link:
    source: str
    path: str
    target: str


def _template_links(alias: str, path: str, template: Any) -> list[Link]:
    found: list[Link] = []
    if isinstance(template, dict):
        for key, value in template.items():
            if key == "reference" and isinstance(value, str) and value.startswith("{@") and value.endswith("}"):
                found.append(Link(alias, path + ".reference", value[2:-1]))
            else:
                found.extend(_template_links(alias, f"{path}.{key}", value))
    return found


def links(dataset: DataSet) -> list[Link]:
    """Every reference the map writes: (resource alias, path of the reference string, target alias)."""
    found: list[Link] = []
    for spec in dataset.resources.values():
        for fixed in spec.fixed:
            found.extend(_template_links(spec.alias, fixed.path, fixed.template))
    for element in dataset.elements:
        for write in element.writes:
            if write.kind == "reference" and write.target:
                found.append(Link(write.resource, write.path + ".reference", write.target))
    return found


def _this_path(template: Any, prefix: str) -> str | None:
    if template == "{this}":
        return prefix
    if isinstance(template, dict):
        for key, value in template.items():
            found = _this_path(value, f"{prefix}.{key}")
            if found:
                return found
    return None


def reader(element: Element) -> tuple[str, str, str] | None:
    """(alias, path, format) the element is read back from, or None when nothing holds it."""
    for write in element.writes:
        path = _read_path(write)
        if path is not None:
            return write.resource, path, element.format
    return None


def _read_path(write: Write) -> str | None:
    if write.template is not None:
        inner = _this_path(write.template, "")
        return write.path + inner if inner else None
    if write.kind == "value":
        return write.path
    if write.kind == "coding":
        return write.path + ".code"
    if write.kind == "concept":
        return write.path + ".coding[0].code"
    return None


def local_text(value: Any, notation: str) -> str:
    """A FHIR value written back in its WS 363 format (D8, DT15, numbers as text)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "T" if value else "F"
    text = str(value)
    if notation == "D8":
        return text[:10].replace("-", "")
    if notation == "DT15" and len(text) >= 19:
        return text[:10].replace("-", "") + "T" + text[11:19].replace(":", "")
    return text


def rows(dataset: DataSet, resources: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One row per row resource, keyed by data-element id, from the resources fetched for the data set."""
    if dataset.row is None:
        raise ValueError(f"data set {dataset.name} has no row resource: it cannot be exported")
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    types = {alias: spec.type for alias, spec in dataset.resources.items()}
    graph = links(dataset)
    readers = {e.id: reader(e) for e in dataset.elements}
    out: list[dict[str, str]] = []
    for row in (r for r in resources if r["resourceType"] == types[dataset.row]):
        found: dict[str, dict[str, Any]] = {dataset.row: row}
        changed = True
        while changed:
            changed = False
            for link in graph:
                if link.source in found and link.target not in found:
                    for ref in paths.get(found[link.source], link.path):
                        target = by_ref.get(ref)
                        if target is not None and target["resourceType"] == types[link.target]:
                            found[link.target], changed = target, True
                            break
                elif link.target in found and link.source not in found:
                    wanted = f"{found[link.target]['resourceType']}/{found[link.target]['id']}"
                    for candidate in resources:
                        if candidate["resourceType"] == types[link.source] and \
                                wanted in paths.get(candidate, link.path):
                            found[link.source], changed = candidate, True
                            break
        record: dict[str, str] = {}
        for element in dataset.elements:
            where = readers[element.id]
            values = paths.get(found[where[0]], where[1]) if where and where[0] in found else []
            record[element.id] = local_text(values[0] if values else None, element.format)
        out.append(record)
    return out

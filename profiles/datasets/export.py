"""The reverse direction (数据回流): stored FHIR resources back into a data set's rows.

The map file is read backwards, so no per-data-set code is needed either way:

- links between the data set's resources are the references the map writes (``{@patient}`` in a
  fixed value, ``as: reference`` writes). From the row resource (``row:`` in the map, made once per
  record) forward links are followed (Observation.subject → Patient) and reverse ones searched
  (DiagnosticReport.result → this Observation, MedicationStatement.context → this visit). A resource
  found by a reverse link must be the only candidate, and its other links must point at what the row
  has already found (a visit's MedicationStatement is not found through the shared Patient for
  another visit of that patient); which map resource a stored one is (:func:`fits`) follows from the
  map's fixed content, literal parts of templated identifiers included (``…/drug-1`` vs ``…/drug-2``);
- each element is read back from its first invertible write: a plain value at its path; a
  template at the place its ``{this}`` stands; a Coding's or CodeableConcept's ``code``. Translated
  codes are skipped (the original Coding is another write). Dates return to D8/DT15, numbers to text.

身份证件类别代码 is read from the type of the person's document identifier; a 身份证件号码 of another document
from its ``use: official`` identifier. Institution-scoped identifiers are read for the row's institution (see
:func:`rows`). Elements with no FHIR target (QC-only) are exported empty.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from profiles.datasets import paths
from profiles.datasets.spec import DataSet, Element, ResourceSpec, Write

_PLACEHOLDER = re.compile(r"(\{@?[A-Za-z0-9_.]+\})")
ID_TYPE_SYSTEM = "urn:oid:2.16.156.10011.2.3.1.1"


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


@dataclass(frozen=True, slots=True)
class Reader:
    """Where an element is read back: the resource alias, the path, a literal prefix the value carries
    in FHIR (``urn:oid:`` before a DICOM UID) and whether it is a base64 text attachment."""

    alias: str
    path: str
    prefix: str = ""
    attachment: bool = False
    scoped: str | None = None
    """For an institution-scoped identifier (its ``assigner`` is the sending institution): the path of the
    identifier item; only the item the institution of the row assigned is read (two institutions' 病案号)."""

    def read(self, resource: dict[str, Any], institution: str | None = None) -> list[Any]:
        if self.scoped is not None and institution is not None:
            items = [i for i in paths.get(resource, self.scoped) if isinstance(i, dict)
                     and ((i.get("assigner") or {}).get("identifier") or {}).get("value") == institution]
            values = [v for i in items for v in paths.get(i, self.path[len(self.scoped) + 1:])]
        else:
            values = paths.get(resource, self.path)
        if self.attachment:
            return [base64.b64decode(v).decode() for v in values if isinstance(v, str)]
        return [v[len(self.prefix):] if self.prefix and isinstance(v, str) and v.startswith(self.prefix) else v
                for v in values]


def _this_path(template: Any, prefix: str, placeholder: str = "{this}") -> tuple[str, str] | None:
    """Where ``placeholder`` stands in a template: the path and any literal text before it."""
    if isinstance(template, str) and template.endswith(placeholder) and "{" not in template[:-len(placeholder)]:
        return prefix, template[:-len(placeholder)]
    if isinstance(template, dict):
        for key, value in template.items():
            found = _this_path(value, f"{prefix}.{key}", placeholder)
            if found:
                return found
    return None


def read_paths(dataset: DataSet, element: Element) -> list[Reader]:
    """Every place the element can be read back from: its own writes first, then fixed values whose
    content at some place is the element (e.g. an identifier's assigner = ``{YD.SOURCE}``)."""
    found = [r for w in element.writes if (r := _reader(w)) is not None]
    if element.role == "id_type":  # written by convert.py on the person's document identifier (01, or a passport …)
        found.append(Reader(dataset.person, f"identifier[+].type.coding[system={ID_TYPE_SYSTEM}].code"))
    if element.role == "id_number":  # a document other than the 居民身份证: its own identifier (use official)
        found.append(Reader(dataset.person, "identifier[use=official].value"))
    for spec in dataset.resources.values():
        for fixed in spec.fixed:
            inner = _this_path(fixed.template, "", "{" + element.id + "}")
            if inner is not None:
                found.append(Reader(spec.alias, fixed.path + inner[0], inner[1]))
    return found


def reader(element: Element) -> Reader | None:
    """The first place of the element's own writes, or None when it has no FHIR target (QC only)."""
    return next((r for w in element.writes if (r := _reader(w)) is not None), None)


def _reader(write: Write) -> Reader | None:
    if write.template is not None:
        inner = _this_path(write.template, "")
        if inner is None:
            return None
        scoped = _this_path(write.template, "", "{YD.SOURCE}")
        return Reader(write.resource, write.path + inner[0], inner[1],
                      scoped=write.path if scoped is not None and scoped[0].startswith(".assigner") else None)
    suffix = {"value": "", "coding": ".code", "concept": ".coding[0].code", "attachment": ".data", "icd10": "",
              "icd10-clinical": ".code"}.get(write.kind)
    if suffix is None:
        return None
    return Reader(write.resource, write.path + suffix, attachment=write.kind == "attachment")


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


def _constant(template: Any) -> bool:
    if isinstance(template, dict):
        return all(_constant(v) for v in template.values())
    if isinstance(template, list):
        return all(_constant(v) for v in template)
    return not (isinstance(template, str) and "{" in template)


@cache
def _pattern(template: str) -> re.Pattern[str]:
    """A string template as a pattern: its literal text, anything where a placeholder stands."""
    return re.compile(".*".join(re.escape(part) for part in _PLACEHOLDER.split(template)[::2]), re.DOTALL)


def _like(template: Any, value: Any) -> bool:
    """Whether a stored value can have been written from a fixed template with placeholders: equal
    where the template is literal (``…/drug-1`` is not ``…/drug-2``), anything where a placeholder stands."""
    if isinstance(template, dict):
        return isinstance(value, dict) and all(k in value and _like(v, value[k]) for k, v in template.items())
    if isinstance(template, list):
        return isinstance(value, list) and all(any(_like(t, v) for v in value) for t in template)
    if isinstance(template, str) and "{" in template:
        return _PLACEHOLDER.fullmatch(template) is not None or (
            isinstance(value, str) and _pattern(template).fullmatch(value) is not None)
    return template == value


def fits(dataset: DataSet, spec: ResourceSpec, resource: dict[str, Any]) -> bool:
    """Whether ``resource`` can be the map's resource ``spec``: its type, the fixed values that hold no
    placeholder (a code, a category) and no element overwrites (a default class), and the literal
    parts of those that do (an identifier ``{source}/{number}/drug-1``) — so the Observations of one
    visit, and its first and second MedicationStatement, are told apart. A fixed value with
    placeholders may be missing (it is skipped when an element it names is absent)."""
    if resource.get("resourceType") != spec.type:
        return False
    overwritten = {w.path for e in dataset.elements for w in e.writes if w.resource == spec.alias}
    for fixed in spec.fixed:
        if "[+]" in fixed.path or fixed.path in overwritten:
            continue
        found = paths.get(resource, fixed.path)
        if _constant(fixed.template):
            if fixed.template not in found:
                return False
        elif found and not any(_like(fixed.template, value) for value in found):
            return False
    return True


def keyed(spec: ResourceSpec, resource: dict[str, Any]) -> bool:
    """Whether ``resource`` carries an identifier one of the map's keys for ``spec`` names (system
    equal, value shaped like the template): a Patient the data set wrote has its 身份证号, 健康卡号 or
    档案编号; one loaded from elsewhere (a Synthea bundle) has none and is no row of the data set.
    A spec whose keys name no identifier accepts every resource."""
    wanted: list[tuple[str, str]] = []
    for key in spec.keys:
        for part in key.split("&"):
            name, _, value = part.partition("=")
            if name == "identifier" and "|" in value:
                system, _, template = value.partition("|")
                wanted.append((system, template))
    if not wanted:
        return True
    identifiers = [i for i in resource.get("identifier") or [] if isinstance(i, dict)]
    return any(
        i.get("system") == system and isinstance(i.get("value"), str) and _pattern(template).fullmatch(i["value"])
        for system, template in wanted for i in identifiers)


def _agrees(candidate: dict[str, Any], alias: str, graph: list[Link], found: dict[str, dict[str, Any]]) -> bool:
    """Whether ``candidate`` (for ``alias``) references, at each of its links, the resource already
    found there: a resource found through a shared one (the patient, the doctor) must still belong
    to this row (its ``encounter``/``context`` is this visit)."""
    for link in graph:
        if link.source == alias and link.target in found:
            refs = paths.get(candidate, link.path)
            target = found[link.target]
            if refs and f"{target['resourceType']}/{target['id']}" not in refs:
                return False
    return True


def _institution_of(dataset: DataSet, organization: dict[str, Any] | None) -> str | None:
    source = dataset.by_role("source")
    if organization is None or source is None:
        return None
    values = next((v for r in read_paths(dataset, source) if r.alias == _source_alias(dataset)
                   and (v := r.read(organization))), [])
    return str(values[0]) if values else None


def _source_alias(dataset: DataSet) -> str | None:
    """The alias of the resource the source institution's code is written on (the Organization)."""
    source = dataset.by_role("source")
    return next((w.resource for w in source.writes), None) if source else None


def _assigned_by(resources: list[dict[str, Any]], institution: str) -> bool:
    return any(((i.get("assigner") or {}).get("identifier") or {}).get("value") == institution
               for r in resources for i in r.get("identifier") or () if isinstance(i, dict))


def rows(dataset: DataSet, resources: list[dict[str, Any]], source: str | None = None) -> list[dict[str, str]]:
    """One row per row resource, keyed by data-element id, from the resources fetched for the data set.

    Institution-specific values (a 病案号, the institution's code and name) are those of ``source`` when the
    row's resources carry an identifier that institution assigned (or it is the row's own institution), else of
    the row's own institution (the Organization the row resource links to: the latest record's), never of
    whichever institution wrote last."""
    if dataset.row is None:
        raise ValueError(f"data set {dataset.name} has no row resource: it cannot be exported")
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    specs = dataset.resources
    graph = links(dataset)
    readers = {e.id: read_paths(dataset, e) for e in dataset.elements}
    indices: dict[Link, dict[str, list[dict[str, Any]]]] = {}

    def reverse(link: Link) -> dict[str, list[dict[str, Any]]]:
        """Referenced ``Type/id`` → the resources of ``link.source`` that reference it there (built once)."""
        if link not in indices:
            index: dict[str, list[dict[str, Any]]] = {}
            for candidate in resources:
                if fits(dataset, specs[link.source], candidate):
                    for ref in dict.fromkeys(paths.get(candidate, link.path)):
                        index.setdefault(ref, []).append(candidate)
            indices[link] = index
        return indices[link]

    out: list[dict[str, str]] = []
    row_spec = specs[dataset.row]
    for row in (r for r in resources if fits(dataset, row_spec, r) and keyed(row_spec, r)):
        found: dict[str, dict[str, Any]] = {dataset.row: row}
        changed = True
        while changed:
            changed = False
            for link in graph:
                if link.source in found and link.target not in found:
                    for ref in paths.get(found[link.source], link.path):
                        target = by_ref.get(ref)
                        if target is not None and fits(dataset, specs[link.target], target):
                            found[link.target], changed = target, True
                            break
                elif link.target in found and link.source not in found:
                    # a reverse link counts only when one resource fits: the Observations of a patient's
                    # other visits must not be taken for this visit's
                    wanted = f"{found[link.target]['resourceType']}/{found[link.target]['id']}"
                    matching = [c for c in reverse(link).get(wanted, []) if _agrees(c, link.source, graph, found)]
                    if len(matching) == 1:
                        found[link.source], changed = matching[0], True
        org_alias = _source_alias(dataset)
        institution = _institution_of(dataset, found.get(org_alias or ""))
        if source is not None and source != institution and _assigned_by(list(found.values()), source):
            institution = source
            asked = next((r for r in resources if org_alias and fits(dataset, specs[org_alias], r)
                          and _institution_of(dataset, r) == source), None)
            if asked is not None and org_alias:
                found[org_alias] = asked
        record: dict[str, str] = {}
        for element in dataset.elements:
            values = next((v for r in readers[element.id] if r.alias in found
                           and (v := r.read(found[r.alias], institution))), [])
            record[element.id] = local_text(values[0] if values else None, element.format)
        out.append(record)
    return out

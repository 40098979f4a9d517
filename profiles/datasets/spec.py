"""Data-set maps: the declarative files in ``profiles/datasets/maps/`` read into typed specs.

One YAML file per data set (``person.yaml``, ``lab-report.yaml`` …) says, for every data element,
its WS 363 id, Chinese name, format, value domain, whether it is required, the role it plays in
quality control, and the FHIR path(s) it fills; and, for every FHIR resource the data set makes,
its type, regional profile, business key (the conditional-create/update criteria) and fixed
content. Files whose name starts with ``_`` are fragments that others ``include`` (the patient
demographics every clinical data set carries). The engine (:mod:`profiles.datasets.convert`) is
generic: adding a data set means adding a map file, not code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from profiles.datasets import formats, paths

MAPS = Path(__file__).parent / "maps"
PROFILE_BASE = "http://yidang.org/fhir/StructureDefinition/"
TERMINOLOGY_BASE = "http://yidang.org/fhir/"
ROLES = frozenset({"name", "sex", "birth_date", "id_type", "id_number", "phone", "source", "event_date",
                   "event_end", "lab_code", "loinc", "result_value", "result_unit"})
WRITE_MODES = frozenset({"update", "create", "merge"})
VALUE_KINDS = frozenset({"value", "coding", "concept", "translate", "translate-coding", "display", "reference",
                         "attachment", "family-name", "given-name", "icd10", "icd10-clinical"})


@dataclass(frozen=True, slots=True)
class Domain:
    """A value domain: the national code system (OID) and the ValueSet that lists its codes."""

    system: str
    valueset: str | None = None
    """Canonical url of the ValueSet; None when the table is not shipped (codes checked for shape only)."""
    unknown: str = "error"
    """Severity of a code outside the value set: ``error`` or ``warning`` (table known to be partial)."""


@dataclass(frozen=True, slots=True)
class Write:
    resource: str
    """Alias of the resource (``patient``, ``report`` …)."""
    path: str
    kind: str = "value"
    conceptmap: str | None = None
    target: str | None = None
    """For ``reference``: the alias of the referenced resource."""
    template: Any = None
    """For a fixed write: a JSON value whose ``{element}`` placeholders are filled in."""
    fallback: Any = None
    """For ``translate``/``translate-coding``: what is written when the ConceptMap has no match for the value
    (a code or a Coding FHIR accepts, e.g. Encounter.class AMB); None writes nothing. Either way QC warns."""


@dataclass(frozen=True, slots=True)
class Element:
    id: str
    name: str
    format: str
    required: bool = False
    role: str | None = None
    domain: Domain | None = None
    unique: bool = False
    """Values should not repeat between records (a duplicate rate is reported)."""
    aliases: tuple[str, ...] = ()
    writes: tuple[Write, ...] = ()
    range: tuple[Decimal, Decimal] | None = None
    """Plausible numeric values (inclusive), e.g. the regional profiles' limits for height and weight."""


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    alias: str
    type: str
    profile: str | None
    keys: tuple[str, ...]
    """Conditional criteria templates, first one whose placeholders are all filled wins."""
    mode: str = "update"
    when: tuple[str, ...] = ()
    """Elements that must be present for the resource to be made (e.g. a responsible doctor)."""
    fixed: tuple[Write, ...] = ()


@dataclass(frozen=True, slots=True)
class DataSet:
    name: str
    title: str
    standard: str
    person: str
    """Alias of the resource that identifies the person (one transaction per person)."""
    elements: tuple[Element, ...]
    resources: dict[str, ResourceSpec] = field(default_factory=dict)
    one_of: tuple[tuple[str, ...], ...] = ()
    """Groups of elements of which at least one must be present (e.g. 门诊号 or 住院号)."""
    greater: tuple[tuple[str, str], ...] = ()
    """Pairs (a, b) where a must exceed b when both are given (收缩压 > 舒张压)."""
    requires: tuple[tuple[str, str], ...] = ()
    """Pairs (a, b) where a given without b cannot be stored (用法用量 without 药物名称): reported."""
    row: str | None = None
    """Alias of the resource made once per record: ``export-local`` writes one row per such resource."""

    def element(self, id_: str) -> Element:
        for element in self.elements:
            if element.id == id_:
                return element
        raise KeyError(id_)

    def by_role(self, role: str) -> Element | None:
        return next((e for e in self.elements if e.role == role), None)

    def headers(self) -> dict[str, str]:
        """Every accepted column header (id, Chinese name, alias) → element id."""
        found: dict[str, str] = {}
        for element in self.elements:
            for header in (element.id, element.name, *element.aliases):
                found.setdefault(header, element.id)
        return found


def _canonical(kind: str, ref: str | None) -> str | None:
    if ref is None or ref.startswith(("http://", "https://", "urn:")):
        return ref
    return f"{TERMINOLOGY_BASE}{kind}/{ref}"


def _write(raw: dict[str, Any], where: str) -> Write:
    path = str(raw["path"])
    alias, _, rest = path.partition(".")
    if not rest:
        raise ValueError(f"{where}: path {path!r} must start with a resource alias")
    paths.steps(rest)
    kind = str(raw.get("as", "value"))
    if kind not in VALUE_KINDS:
        raise ValueError(f"{where}: unknown value kind {kind!r}")
    if raw.get("fallback") is not None and not kind.startswith("translate"):
        raise ValueError(f"{where}: only a translate write has a fallback")
    return Write(alias, rest, kind, _canonical("ConceptMap", raw.get("map")), raw.get("resource"), raw.get("value"),
                 raw.get("fallback"))


def _element(raw: dict[str, Any], where: str) -> Element:
    formats.format_of(str(raw["format"]))
    role = raw.get("role")
    if role is not None and role not in ROLES:
        raise ValueError(f"{where}: unknown role {role!r}")
    domain = raw.get("domain")
    return Element(
        id=str(raw["id"]), name=str(raw["name"]), format=str(raw["format"]), required=bool(raw.get("required")),
        role=role,
        domain=Domain(str(domain["system"]), _canonical("ValueSet", domain.get("valueset")),
                      str(domain.get("unknown", "error"))) if domain else None,
        unique=bool(raw.get("unique")), aliases=tuple(str(a) for a in raw.get("aliases", ())),
        writes=tuple(_write(w, f"{where}.to") for w in raw.get("to", ())),
        range=(Decimal(str(raw["range"][0])), Decimal(str(raw["range"][1]))) if raw.get("range") else None)


def _resource(alias: str, raw: dict[str, Any], where: str) -> ResourceSpec:
    mode = str(raw.get("write", "update"))
    if mode not in WRITE_MODES:
        raise ValueError(f"{where}: write must be one of {sorted(WRITE_MODES)}")
    fixed = tuple(Write(alias, str(f["path"]), "fixed", template=f["value"]) for f in raw.get("fixed", ()))
    for f in fixed:
        paths.steps(f.path)
    name = str(raw.get("profile") or "")
    profile = (name if name.startswith("http") else PROFILE_BASE + name) if name else None
    return ResourceSpec(alias, str(raw["type"]), profile,
                        tuple(str(k) for k in raw["key"]), mode, tuple(raw.get("when", ())), fixed)


def _raw(name: str) -> dict[str, Any]:
    path = MAPS / f"{name}.yaml"
    if not path.exists():
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(names())}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a mapping")
    return data


def names() -> list[str]:
    """The data sets that have a map file."""
    return sorted(p.stem for p in MAPS.glob("*.yaml") if not p.stem.startswith("_"))


@cache
def load(name: str) -> DataSet:
    """The data set ``name`` (``KeyError`` when there is no map file, ``ValueError`` when it is malformed)."""
    raw = _raw(name)
    elements: list[dict[str, Any]] = []
    resources: dict[str, Any] = {}
    rules: dict[str, list[Any]] = {}
    for fragment in raw.get("include", ()):
        part = _raw(f"_{fragment}")
        elements.extend(part.get("elements", ()))
        resources.update(part.get("resources", {}))
        for kind, listed in part.get("rules", {}).items():  # a fragment's rules hold wherever it is included
            rules.setdefault(kind, []).extend(listed)
    for kind, listed in raw.get("rules", {}).items():
        rules.setdefault(kind, []).extend(listed)
    elements.extend(raw.get("elements", ()))
    for alias, override in raw.get("resources", {}).items():  # an including file may refine a fragment's resource
        base = resources.get(alias, {})
        resources[alias] = {**base, **override}
        if "fixed" in base and "fixed" in override:  # its fixed values are added to the fragment's
            resources[alias]["fixed"] = [*base["fixed"], *override["fixed"]]
    specs = {alias: _resource(alias, r, f"{name}.resources.{alias}") for alias, r in resources.items()}
    built = tuple(_element(e, f"{name}.elements[{e.get('id')}]") for e in elements)
    for element in built:
        for w in element.writes:
            if w.resource not in specs or (w.kind == "reference" and w.target not in specs):
                raise ValueError(f"{name}: element {element.id} writes to an unknown resource")
    person = str(raw["person"])
    if person not in specs:
        raise ValueError(f"{name}: person resource {person!r} is not defined")
    one_of = tuple(dict.fromkeys(tuple(str(e) for e in group) for group in rules.get("one_of", ())))
    greater = tuple(dict.fromkeys((str(a), str(b)) for a, b in rules.get("greater", ())))
    requires = tuple(dict.fromkeys((str(a), str(b)) for a, b in rules.get("requires", ())))
    ids = {e.id for e in built}
    for rule in (*one_of, *greater, *requires):
        if unknown := [e for e in rule if e not in ids]:
            raise ValueError(f"{name}: rules name unknown elements {unknown}")
    return DataSet(str(raw["dataset"]), str(raw["title"]), str(raw.get("standard", "")), person, built, specs,
                   one_of, greater, requires, str(raw["row"]) if raw.get("row") else None)

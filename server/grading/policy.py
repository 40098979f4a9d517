"""The grading policy (GB/T 39725 分类分级): which category and level each resource type, element and
sensitive code has, and how an element is masked. Read from a YAML file (the shipped
``server/grading/policy.yaml`` unless ``YIDANG_GRADING_POLICY`` names another) and checked once:
a mistake in the file stops the server with the file, entry and reason named."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal, cast

import yaml

SHIPPED = Path(__file__).with_name("policy.yaml")
CATEGORIES = ("个人属性", "健康状况", "医疗应用", "医疗支付", "卫生资源", "公共卫生")
"""GB/T 39725-2020 §6.1 数据类别."""
LEVELS = (1, 2, 3, 4, 5)
MAX_LEVEL = 5
Mask = Literal["id-number", "phone", "name", "address", "year", "withhold"]
MASKS: tuple[Mask, ...] = ("id-number", "phone", "name", "address", "year", "withhold")
CONFIDENTIALITY = ("U", "L", "M", "N", "R", "V")


class PolicyError(ValueError):
    """The policy file is not usable (the message names the file and the entry)."""


@dataclass(frozen=True)
class Grading:
    category: str
    level: int


@dataclass(frozen=True)
class ElementRule:
    """An element of a type (``type`` "*" = every type) at a level, masked so above a reader's clearance."""

    type: str
    path: tuple[str, ...]
    level: int
    category: str
    mask: Mask


@dataclass(frozen=True)
class Sensitive:
    level: int
    icd10: tuple[str, ...]
    """ICD-10 code prefixes (``F2`` covers F20–F29, ``O98.7`` that code and its children)."""
    snomed: frozenset[str]
    loinc: frozenset[str]
    withhold: dict[str, tuple[str, ...]]
    """Elements removed, by type ("*" for any type not listed), when the reader's clearance is below ``level``."""
    absent: frozenset[str]
    """Of those, the ones replaced by the data-absent-reason ``masked`` extension instead."""

    def withheld(self, type_: str) -> tuple[str, ...]:
        return self.withhold.get(type_, self.withhold.get("*", ()))


@dataclass(frozen=True)
class Policy:
    default: Grading
    types: dict[str, Grading]
    elements: tuple[ElementRule, ...]
    sensitive: Sensitive
    confidentiality: dict[int, str]
    source: str = ""
    _by_type: dict[str, tuple[ElementRule, ...]] = field(default_factory=dict, compare=False, repr=False)

    def grading(self, type_: str) -> Grading:
        return self.types.get(type_, self.default)

    def rules(self, type_: str) -> tuple[ElementRule, ...]:
        """The element rules that apply to ``type_`` (its own and the "*" ones)."""
        found = self._by_type.get(type_)
        if found is None:
            found = tuple(r for r in self.elements if r.type in (type_, "*"))
            self._by_type[type_] = found
        return found

    @cached_property
    def top(self) -> int:
        """The highest level anything can be graded (a clearance at least this sees everything)."""
        return max([self.default.level, self.sensitive.level, *(g.level for g in self.types.values()),
                    *(r.level for r in self.elements)])


def _fail(where: str, why: str) -> PolicyError:
    return PolicyError(f"grading policy {where}: {why}")


def _level(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value not in LEVELS:
        raise _fail(where, f"level must be 1..5, not {value!r}")
    return value


def _category(value: Any, where: str) -> str:
    if value not in CATEGORIES:
        raise _fail(where, f"category must be one of {', '.join(CATEGORIES)}, not {value!r}")
    return cast(str, value)


def _grading(value: Any, where: str) -> Grading:
    if not isinstance(value, dict):
        raise _fail(where, "must be a mapping with category and level")
    return Grading(_category(value.get("category"), where), _level(value.get("level"), where))


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise _fail(where, "must be a list of strings")
    return tuple(str(v) for v in value)


def parse_policy(data: Any, source: str = "") -> Policy:
    """A :class:`Policy` from the YAML document's data (pure; :class:`PolicyError` naming the entry)."""
    where = source or "document"
    if not isinstance(data, dict):
        raise _fail(where, "must be a mapping")
    types = data.get("types") or {}
    if not isinstance(types, dict):
        raise _fail(f"{where} types", "must be a mapping of resource type to {category, level}")
    elements: list[ElementRule] = []
    for n, item in enumerate(data.get("elements") or []):
        at = f"{where} elements[{n}]"
        if not isinstance(item, dict) or not isinstance(item.get("path"), str) or "." not in item["path"]:
            raise _fail(at, "needs path: Type.element (Type may be *)")
        head, *rest = item["path"].split(".")
        mask = item.get("mask", "withhold")
        if mask not in MASKS:
            raise _fail(at, f"mask must be one of {', '.join(MASKS)}, not {mask!r}")
        elements.append(ElementRule(head, tuple(rest), _level(item.get("level"), at),
                                    _category(item.get("category", "个人属性"), at), mask))
    sens = data.get("sensitive") or {}
    if not isinstance(sens, dict):
        raise _fail(f"{where} sensitive", "must be a mapping")
    icd10: list[str] = []
    snomed: set[str] = set()
    loinc: set[str] = set()
    groups = sens.get("groups") or {}
    if not isinstance(groups, dict):
        raise _fail(f"{where} sensitive.groups", "must be a mapping of group name to code lists")
    for name, group in groups.items():
        at = f"{where} sensitive.groups.{name}"
        if not isinstance(group, dict):
            raise _fail(at, "must be a mapping with icd10, snomed, loinc lists")
        icd10 += [c.upper() for c in _strings(group.get("icd10"), f"{at}.icd10")]
        snomed.update(_strings(group.get("snomed"), f"{at}.snomed"))
        loinc.update(_strings(group.get("loinc"), f"{at}.loinc"))
    withhold = sens.get("withhold") or {}
    if not isinstance(withhold, dict):
        raise _fail(f"{where} sensitive.withhold", "must be a mapping of type (or *) to element names")
    sensitive = Sensitive(
        _level(sens.get("level", 5), f"{where} sensitive.level"), tuple(sorted(set(icd10))),
        frozenset(snomed), frozenset(loinc),
        {str(t): _strings(v, f"{where} sensitive.withhold.{t}") for t, v in withhold.items()},
        frozenset(_strings(sens.get("absent"), f"{where} sensitive.absent")))
    conf_raw = data.get("confidentiality") or {1: "N", 2: "N", 3: "N", 4: "R", 5: "V"}
    if not isinstance(conf_raw, dict):
        raise _fail(f"{where} confidentiality", "must map each level to a v3-Confidentiality code")
    confidentiality: dict[int, str] = {}
    for level in LEVELS:
        code = conf_raw.get(level, conf_raw.get(str(level)))
        if code not in CONFIDENTIALITY:
            raise _fail(f"{where} confidentiality.{level}", f"must be one of {'/'.join(CONFIDENTIALITY)}, "
                        f"not {code!r}")
        confidentiality[level] = code
    return Policy(
        default=_grading(data.get("default") or {"category": "医疗应用", "level": 3}, f"{where} default"),
        types={str(t): _grading(g, f"{where} types.{t}") for t, g in types.items()},
        elements=tuple(elements), sensitive=sensitive, confidentiality=confidentiality, source=source)


@lru_cache(maxsize=8)
def load_policy(path: str | Path | None = None) -> Policy:
    """The policy in ``path`` (the shipped one when None or empty), read once per path."""
    file = Path(path) if path else SHIPPED
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise PolicyError(f"grading policy {file}: cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise PolicyError(f"grading policy {file}: not YAML ({error})") from None
    return parse_policy(data, str(file))

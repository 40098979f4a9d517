"""The recognition catalogue and institution qualifications as FHIR resources (pure).

- A catalogue item (互认项目) is an ``ActivityDefinition`` (a definitional type: every role reads it,
  the platform writes it): ``identifier`` = the item's code (system + value, so
  ``ActivityDefinition?identifier=system|code`` finds it), ``title`` = its name, ``kind`` =
  ServiceRequest, and three extensions: ``recognition-category`` (laboratory | imaging),
  ``recognition-validity-days`` (the window, in days, in which a result stays recognisable) and
  ``recognition-scope`` (national | province | city | alliance = 医联体/医共体). Tagged
  ``recognition|catalog-item``; its id is derived from system and code, so importing twice updates.
- A qualification (质控合格) is a ``Basic`` with ``code`` = ``recognition|qualification``,
  ``subject`` = the institution's Organization, and extensions ``recognition-institution`` (the
  Organization's identifier value), ``recognition-item`` (valueCoding) and ``recognition-period``
  (the QC pass period, dates inclusive). Its id is derived from institution, item and start date.
- A decision is a ``Basic`` with ``code`` = ``recognition|decision`` (see :mod:`.decisions`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

Category = Literal["laboratory", "imaging"]
Scope = Literal["national", "province", "city", "alliance"]

RECOGNITION = "http://yidang.org/fhir/CodeSystem/recognition"
"""Codes: ``HR`` (the mark, 国卫医发〔2022〕6号), ``catalog-item``, ``qualification``, ``decision``."""
HR_TAG = {"system": RECOGNITION, "code": "HR", "display": "检查检验结果互认"}
SD = "http://yidang.org/fhir/StructureDefinition/"
STATUS_EXT = SD + "recognition-status"
"""On a DiagnosticReport in look-up results: ``valueCode`` (:data:`STATUSES`) and a nested ``rule`` (string)."""
CATEGORY_EXT = SD + "recognition-category"
VALIDITY_EXT = SD + "recognition-validity-days"
SCOPE_EXT = SD + "recognition-scope"
ITEM_EXT = SD + "recognition-item"
PERIOD_EXT = SD + "recognition-period"
INSTITUTION_EXT = SD + "recognition-institution"
QUALIFICATION_ID = "http://yidang.org/fhir/sid/recognition-qualification"

STATUSES = ("recognized", "expired", "not-in-catalogue", "lab-not-qualified", "not-applicable")
SCOPES: dict[str, Scope] = {
    "national": "national", "国家": "national", "全国": "national",
    "province": "province", "省": "province", "省级": "province",
    "city": "city", "市": "city", "市级": "city",
    "alliance": "alliance", "医联体": "alliance", "医共体": "alliance",
}
"""Scope as written in a CSV file -> its code."""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def item_id(system: str, code: str) -> str:
    return "rec-item-" + _digest(system, code)


def qualification_id(institution: str, system: str, code: str, valid_from: date) -> str:
    return "rec-qual-" + _digest(institution, system, code, valid_from.isoformat())


def _ext(resource: dict[str, Any], url: str) -> dict[str, Any] | None:
    for ext in resource.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == url:
            return ext
    return None


@dataclass(frozen=True, slots=True)
class Item:
    system: str
    code: str
    name: str
    category: Category
    validity_days: int
    scope: Scope

    @property
    def key(self) -> tuple[str, str]:
        return self.system, self.code

    def to_resource(self) -> dict[str, Any]:
        return {
            "resourceType": "ActivityDefinition",
            "id": item_id(self.system, self.code),
            "meta": {"tag": [{"system": RECOGNITION, "code": "catalog-item"}]},
            "extension": [
                {"url": CATEGORY_EXT, "valueCode": self.category},
                {"url": VALIDITY_EXT, "valueInteger": self.validity_days},
                {"url": SCOPE_EXT, "valueCode": self.scope},
            ],
            "identifier": [{"system": self.system, "value": self.code}],
            "name": "RecognitionItem",
            "title": self.name,
            "status": "active",
            "kind": "ServiceRequest",
            "code": {"coding": [{"system": self.system, "code": self.code, "display": self.name}]},
        }

    @classmethod
    def from_resource(cls, resource: dict[str, Any]) -> Item | None:
        """The item an ActivityDefinition of the catalogue describes (None when it is not one)."""
        ids = resource.get("identifier") or []
        category = (_ext(resource, CATEGORY_EXT) or {}).get("valueCode")
        days = (_ext(resource, VALIDITY_EXT) or {}).get("valueInteger")
        scope = (_ext(resource, SCOPE_EXT) or {}).get("valueCode")
        if not ids or category not in ("laboratory", "imaging") or not isinstance(days, int) or scope not in \
                SCOPES.values():
            return None
        first = ids[0]
        return cls(str(first.get("system", "")), str(first.get("value", "")), str(resource.get("title", "")),
                   category, days, SCOPES[str(scope)])


@dataclass(frozen=True, slots=True)
class Qualification:
    institution: str
    """The Organization's identifier value (统一社会信用代码 or 执业许可证登记号)."""
    organization: str
    """The Organization's id."""
    system: str
    code: str
    valid_from: date
    valid_to: date

    @property
    def key(self) -> str:
        return f"{self.institution}|{self.system}|{self.code}|{self.valid_from.isoformat()}"

    def covers(self, day: date) -> bool:
        return self.valid_from <= day <= self.valid_to

    def to_resource(self) -> dict[str, Any]:
        return {
            "resourceType": "Basic",
            "id": qualification_id(self.institution, self.system, self.code, self.valid_from),
            "meta": {"tag": [{"system": RECOGNITION, "code": "qualification"}]},
            "extension": [
                {"url": INSTITUTION_EXT, "valueIdentifier": {"value": self.institution}},
                {"url": ITEM_EXT, "valueCoding": {"system": self.system, "code": self.code}},
                {"url": PERIOD_EXT, "valuePeriod": {"start": self.valid_from.isoformat(),
                                                    "end": self.valid_to.isoformat()}},
            ],
            "identifier": [{"system": QUALIFICATION_ID, "value": self.key}],
            "code": {"coding": [{"system": RECOGNITION, "code": "qualification", "display": "质控合格"}]},
            "subject": {"reference": f"Organization/{self.organization}"},
        }

    @classmethod
    def from_resource(cls, resource: dict[str, Any]) -> Qualification | None:
        inst = ((_ext(resource, INSTITUTION_EXT) or {}).get("valueIdentifier") or {}).get("value")
        coding = (_ext(resource, ITEM_EXT) or {}).get("valueCoding") or {}
        period = (_ext(resource, PERIOD_EXT) or {}).get("valuePeriod") or {}
        subject = ((resource.get("subject") or {}).get("reference") or "")
        try:
            start, end = date.fromisoformat(period["start"][:10]), date.fromisoformat(period["end"][:10])
        except (KeyError, TypeError, ValueError):
            return None
        if not isinstance(inst, str) or not subject.startswith("Organization/") or "code" not in coding:
            return None
        return cls(inst, subject.split("/", 1)[1], str(coding.get("system", "")), str(coding["code"]), start, end)

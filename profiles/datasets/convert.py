"""The generic engine: local data-set records → QC → FHIR resources → one transaction per person.

Per record: every element is parsed by its WS 363 format, checked against its value domain
(terminology service ValueSets), cross-checked (:mod:`profiles.datasets.qc`); a record with an
error is rejected (reported, never silently dropped), the others write their values at the FHIR
paths the map file gives. Resources are keyed by their business-identifier criteria, so rows that
name the same report or patient fill one resource. Each person's resources become one transaction
Bundle (http://hl7.org/fhir/R4/http.html#transaction) of conditional writes: ``update`` →
``PUT Type?criteria`` (conditional update: creates once, then changes only when values change),
``create`` → ``POST`` with ``ifNoneExist``, ``merge`` → like update, but the ingester first merges in
the identifiers of the stored resource (:func:`merge_identifiers`) — see the data-set README.
References use deterministic ``urn:uuid:`` fullUrls (uuid5 of the criteria), so the same input
always gives the same Bundle.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any
from urllib.parse import quote

from profiles.datasets import formats, icd10, labmap, paths, qc, transfer, units
from profiles.datasets.names import split_chinese_name
from profiles.datasets.spec import DataSet, Element, ResourceSpec, Write
from profiles.regional import definitions
from terminology.service import Terminology

ID_ONLY_ROLES = ("name", "sex", "birth_date")
"""Demographics a clinical row may leave out when it names its person by identifier (issue 15)."""
HEALTH_CARD_ELEMENT = "DE01.00.021.00"
NAMESPACE = uuid.UUID("6f1f0a52-4c1e-5b6e-9a57-79646a616e67")
_PLACEHOLDER = re.compile(r"\{(@?[A-Za-z0-9_.]+)\}")
SOURCE = "YD.SOURCE"
RECORD_NUMBER, RECORD_DATE = "DE01.00.009.00", "YD.RECORD.DATE"
"""健康档案编号 and 建档日期: a moved resident's numbers are settled by them (transfer.py)."""
CM_ID_TYPE = "http://yidang.org/fhir/ConceptMap/cn-id-document-type-to-v2-0203"


@cache
def regional_terminology() -> Terminology:
    """The packaged terminology plus the regional profiles' own ValueSets (what the server loads at start-up)."""
    terminology = Terminology()
    for resource in definitions():
        if resource["resourceType"] in ("CodeSystem", "ValueSet", "ConceptMap"):
            terminology.add(resource)
    return terminology


@dataclass(slots=True)
class Record:
    number: int
    """1-based position of the record in its file."""
    fields: dict[str, str]
    """Element id → text as read."""


@dataclass(slots=True)
class Instance:
    spec: ResourceSpec
    criteria: str
    full_url: str
    resource: dict[str, Any]


@dataclass(slots=True)
class Outcome:
    record: int
    source: str | None
    accepted: bool
    issues: list[qc.Issue]
    values: dict[str, Any]
    person: str | None = None
    status: str = "checked"
    """``checked`` (passed QC, not sent), ``rejected`` (by QC), after delivery ``stored`` or ``failed`` (the server
    refused the person's transaction)."""


@dataclass(slots=True)
class Conversion:
    converter: Converter
    outcomes: list[Outcome] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)

    @property
    def persons(self) -> int:
        """Persons with at least one accepted record: the number of Bundles."""
        return len(self.converter.persons)

    def iter_bundles(self) -> Iterator[dict[str, Any]]:
        """One transaction Bundle per person, in first-seen order, each built when it is asked for."""
        return self.converter.iter_bundles()

    @property
    def bundles(self) -> list[dict[str, Any]]:
        """All of :meth:`iter_bundles` at once (for small files and tests)."""
        return list(self.iter_bundles())


def resolve_headers(dataset: DataSet, headers: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Column header → element id for known headers (ids, Chinese names, aliases), and the unknown ones."""
    known = dataset.headers()
    mapping: dict[str, str] = {}
    unknown: list[str] = []
    for header in headers:
        clean = header.strip().lstrip("\ufeff")
        if clean in known:
            mapping[header] = known[clean]
        elif clean:
            unknown.append(clean)
    return mapping, unknown


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    return value


def _fill(template: Any, values: dict[str, Any], urls: dict[str, str], this: Any) -> Any:
    if isinstance(template, dict):
        return {k: _fill(v, values, urls, this) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, values, urls, this) for v in template]
    if not isinstance(template, str):
        return template

    def lookup(name: str) -> Any:
        if name == "this":
            return this
        if name.startswith("@"):
            return urls[name[1:]]
        return values[name]

    whole = _PLACEHOLDER.fullmatch(template)
    if whole:
        return _json(lookup(whole[1]))
    return _PLACEHOLDER.sub(lambda m: str(_json(lookup(m[1]))), template)


def _criteria(spec: ResourceSpec, values: dict[str, Any]) -> str | None:
    for template in spec.keys:
        names = _PLACEHOLDER.findall(template)
        if all(values.get(n) is not None for n in names):
            return _PLACEHOLDER.sub(lambda m: quote(str(values[m[1]]), safe=""), template)
    return None


COMPARATOR = re.compile(r"<=|>=|<|>|≤|≥")
COMPARATORS = {"<": "<", ">": ">", "<=": "<=", ">=": ">=", "≤": "<=", "≥": ">="}
"""``<0.1``, ``>100``, ``≤5`` as lab desks write them → Quantity.comparator (after NFKC, ``＜`` is ``<``)."""
OTHER_ID = re.compile(r"[0-9A-Z][0-9A-Z\-]{0,49}")
OTHER_ID_KEY = "YD.ID.OTHER"
"""The value key of a 身份证件号码 of another document type (passport …); the patient keys name it."""
OTHER_ID_SYSTEM = "http://yidang.org/fhir/sid/id-document/"
"""+ the CV02.01.101 code: the identifier system of a document other than the 居民身份证 (no national OID)."""
ORIGINAL_TEXT = "http://hl7.org/fhir/StructureDefinition/originalText"
ID_TYPE_SYSTEM = "urn:oid:2.16.156.10011.2.3.1.1"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
_SPACES = re.compile(r"\s+")


def desk_text(element: Element, text: str) -> str:
    """A value as desks type it, made comparable: full-width characters as ASCII (NFKC) for everything but free
    text, and no spaces inside ID and phone numbers. Free text (names, addresses) is left as written."""
    if not text:
        return text
    free = formats.format_of(element.format).kind in ("A", "AN") and element.domain is None
    if element.role in ("id_number", "phone"):
        return _SPACES.sub("", formats.normalize(text))
    return text if free else formats.normalize(text)


def _quantity_path(element: Element) -> Write | None:
    """The element's plain write to a Quantity's ``value`` (where a comparator can go), if any."""
    return next((w for w in element.writes if w.kind == "value" and w.template is None
                 and w.path.endswith("Quantity.value")), None)


def _original_path(path: str) -> str | None:
    """``a.b[0].birthDate`` → ``a.b[0]._birthDate.extension[url=originalText].valueString`` (a primitive's
    extension, http://hl7.org/fhir/R4/json.html#primitive); None for a path ending in a list selector."""
    head, _, last = path.rpartition(".")
    if "[" in last:
        return None
    return (f"{head}." if head else "") + f"_{last}.extension[url={ORIGINAL_TEXT}].valueString"


class Converter:
    """Converts the records of one data set; keeps run state (duplicates, open Bundles)."""

    def __init__(self, dataset: DataSet, *, source: str | None = None, terminology: Terminology | None = None,
                 today: date | None = None) -> None:
        self.dataset = dataset
        self.source = source
        self.terminology = terminology or regional_terminology()
        self.today = today or date.today()
        self.roles: dict[str, list[str]] = {}
        for element in dataset.elements:
            if element.role:
                self.roles.setdefault(element.role, []).append(element.id)
        self.duplicates = qc.Duplicates(per_record_person=dataset.resources[dataset.person].mode == "merge")
        self.persons: dict[str, list[dict[str, Any]]] = {}
        """Person criteria → the parsed values of their accepted records, in file order."""
        self._domain_cache: dict[tuple[str, str, str], bool] = {}
        self._translation_cache: dict[tuple[str, str, str], list[Any]] = {}

    # ---- per record ----------------------------------------------------------------------------

    def _in_domain(self, valueset: str, system: str, code: str) -> bool:
        key = (valueset, system, code)
        if key not in self._domain_cache:
            self._domain_cache[key] = bool(self.terminology.check(valueset, system, code).result)
        return self._domain_cache[key]

    def _translations(self, write: Write, system: str, code: str) -> list[Any]:
        """The matches (not ``unmatched``/``disjoint`` targets, which carry no code) of ``code`` in the write's map."""
        key = (write.conceptmap or "", system, code)
        if key not in self._translation_cache:
            found = self.terminology.translations(system, code, url=write.conceptmap)
            self._translation_cache[key] = [t for t in found if t.is_match]
        return self._translation_cache[key]

    def _unmapped(self, n: int, element: Element, value: Any) -> list[qc.Issue]:
        """A warning per translated write the value has no match for: the element, the value, its value domain
        and the map, and what is written instead (the fallback, or nothing: the original coding is kept)."""
        found = []
        system = element.domain.system if element.domain else ""
        for write in element.writes:
            if write.kind.startswith("translate") and not self._translations(write, system, str(value)):
                fallback = write.fallback
                used = (fallback.get("code") if isinstance(fallback, dict) else fallback) or "—"
                valueset = element.domain.valueset if element.domain and element.domain.valueset else system
                found.append(qc.issue(n, element.id, qc.WARNING, "code-unmapped",
                                      f"{element.name} {system}#{value} ({valueset}), {write.conceptmap} → "
                                      f"{write.resource}.{write.path} = {used}"))
        return found

    def parse(self, record: Record) -> tuple[dict[str, Any], list[qc.Issue]]:
        """Element id → FHIR-ready value, with the format, domain and identity-number issues."""
        values: dict[str, Any] = {}
        issues: list[qc.Issue] = []
        n = record.number
        id_type = (record.fields.get(self.roles.get("id_type", [""])[0]) or "").strip() or None
        id_type = formats.normalize(id_type) if id_type else None
        for element in self.dataset.elements:
            raw = (record.fields.get(element.id) or "").strip()
            if not raw and element.role == "source" and self.source:
                raw = self.source
            text = desk_text(element, raw)
            if not text:
                if element.required and self._by_identifier(element, record):  # issue 15: linked, not rejected
                    issues.append(qc.issue(n, element.id, qc.WARNING, "person-by-identifier"))
                elif element.required:
                    issues.append(qc.issue(n, element.id, qc.ERROR, "required"))
                continue
            comparator = None
            if formats.format_of(element.format).kind == "N" and (found_comparator := COMPARATOR.match(text)) \
                    and _quantity_path(element) is not None:
                comparator, text = COMPARATORS[found_comparator[0]], text[found_comparator.end():].strip()
            if element.role == "id_number" and id_type not in (None, "01"):
                # another 身份证件 (passport …): its own identifier with its type, never the 身份证号 (see _write)
                other = text.upper()
                if not OTHER_ID.fullmatch(other):
                    issues.append(qc.issue(n, element.id, qc.ERROR, "format", "1–50 letters, digits or '-'"))
                    continue
                values[OTHER_ID_KEY] = other
                if other != raw:
                    issues.append(qc.issue(n, element.id, qc.WARNING, "format-nonstandard", raw))
                continue
            if element.role == "id_number":
                number, old, found = qc.identity_number(n, element.id, text, id_type, self.today)
                issues.extend(found)
                if number is None:
                    continue
                if old is not None:
                    values[element.id + "#old"] = old
                text = number
            parsed = formats.parse(element.format, text)
            if parsed.problem is not None:
                issues.append(qc.issue(n, element.id, qc.ERROR, "format", parsed.problem))
                continue
            if element.range is not None and isinstance(parsed.value, Decimal) and \
                    not element.range[0] <= parsed.value <= element.range[1]:
                issues.append(qc.issue(n, element.id, qc.ERROR, "out-of-range",
                                       f"{element.range[0]}–{element.range[1]}"))
                continue
            if parsed.nonstandard or desk_text(element, raw) != raw:
                # normalised (a desk date, full-width digits, spaces): warned, the original kept (originalText)
                issues.append(qc.issue(n, element.id, qc.WARNING, "format-nonstandard", raw))
                values[element.id + "#original"] = raw
            if comparator is not None:
                values[element.id + "#comparator"] = comparator
            code = str(parsed.value)
            if any(w.kind == "icd10" for w in element.writes):  # what the cn-condition profile accepts
                if (problem := icd10.problem(code)) is not None:
                    issues.append(qc.issue(n, element.id, qc.ERROR, "format", problem))
                    continue
                code = icd10.category(code).rstrip("+*")  # the subset lists WHO codes (a clinical code: its category)
            domain = element.domain
            if domain is not None and domain.valueset is not None and \
                    not self._in_domain(domain.valueset, domain.system, code):
                issues.append(qc.issue(n, element.id, domain.unknown, "code-unknown", f"{domain.system}#{text}"))
                if domain.unknown == qc.ERROR:
                    continue
            issues.extend(self._unmapped(n, element, parsed.value))
            values[element.id] = parsed.value
        for group in self.dataset.one_of:
            if not any(values.get(e) is not None for e in group) and \
                    not any(i.element in group for i in issues):
                issues.append(qc.issue(n, group[0], qc.ERROR, "required-one-of", ", ".join(group)))
        for dependent, needed in self.dataset.requires:
            if values.get(dependent) is not None and values.get(needed) is None and \
                    not any(i.element == needed for i in issues):
                issues.append(qc.issue(n, dependent, qc.WARNING, "orphan-value", needed))
        for high, low in self.dataset.greater:
            if values.get(high) is not None and values.get(low) is not None and not values[high] > values[low]:
                issues.append(qc.issue(n, high, qc.ERROR, "value-order", f"{high} > {low}"))
        issues.extend(self._lab(n, values))
        issues.extend(qc.cross_checks(n, values, self.roles, self.today))
        return values, issues

    def _by_identifier(self, element: Element, record: Record) -> bool:
        """Whether a missing demographic (name, sex, birth date) of a clinical row (not a person file) is
        allowed because the row names its person by 身份证号 or 健康卡号: the row is then linked to the
        person the platform knows (a conditional reference, :func:`transaction`), or refused there."""
        if element.role not in ID_ONLY_ROLES or self.dataset.row in (None, self.dataset.person):
            return False
        keys = [*self.roles.get("id_number", ()), HEALTH_CARD_ELEMENT]
        return any((record.fields.get(k) or "").strip() for k in keys)

    def _role(self, role: str) -> str | None:
        return next(iter(self.roles.get(role, ())), None)

    def _loinc(self, source: str, code: str) -> str | None:
        """The LOINC code the platform's map for ``source`` gives a local lab item code (labmap.py), or None."""
        key = (labmap.ITEM_SYSTEM + source, code, labmap.LOINC)
        if key not in self._translation_cache:
            found = self.terminology.translations(key[0], code, target_system=labmap.LOINC)
            self._translation_cache[key] = [t for t in found if t.is_match and t.system == labmap.LOINC]
        matches = self._translation_cache[key]
        return matches[0].code if matches else None

    def _lab(self, n: int, values: dict[str, Any]) -> list[qc.Issue]:
        """Lab results (elements with the roles lab_code, loinc, result_value, result_unit): the LOINC code from
        the institution's map when the record has none, and the unit as UCUM, converted to the analyte's unit
        (units.py) or the record rejected — never a value stored under the wrong unit."""
        found: list[qc.Issue] = []
        code_el, loinc_el = self._role("lab_code"), self._role("loinc")
        value_el, unit_el = self._role("result_value"), self._role("result_unit")
        source = values.get(SOURCE)
        if code_el and loinc_el and values.get(loinc_el) is None and values.get(code_el) is not None and source:
            loinc = self._loinc(str(source), str(values[code_el]))
            if loinc is not None:
                values[loinc_el] = loinc
            else:
                found.append(qc.issue(n, code_el, qc.WARNING, "code-unmapped",
                                      f"{labmap.ITEM_SYSTEM}{source}#{values[code_el]} → LOINC "
                                      f"({labmap.MAP_URL}{source}): stored with the local code only"))
        if not (value_el and unit_el) or not isinstance(values.get(value_el), Decimal):
            return found
        unit = values.get(unit_el)
        if unit is None:
            values.pop(value_el)
            return [*found, qc.issue(n, unit_el, qc.ERROR, "unit-unknown", "a quantitative result needs its unit")]
        checked = units.check(values[value_el], str(unit), values.get(loinc_el) if loinc_el else None)
        if checked.problem is not None:
            values.pop(value_el)
            return [*found, qc.issue(n, unit_el, qc.ERROR, "unit-mismatch", checked.problem)]
        if checked.converted_from is not None:
            values[value_el], values[unit_el] = checked.value, checked.unit
            values[value_el + "#converted"] = checked.converted_from
            found.append(qc.issue(n, value_el, qc.WARNING, "unit-converted",
                                  f"{checked.converted_from} → {checked.value} {checked.unit}"))
        if checked.unit is None:
            found.append(qc.issue(n, unit_el, qc.WARNING, "unit-unknown", f"{unit}: stored as text only"))
        else:
            values[unit_el + "#ucum"] = checked.unit
        return found

    def add(self, record: Record) -> Outcome:
        """Check one record and, when it has no error, write it into its person's Bundle."""
        values, issues = self.parse(record)
        person_spec = self.dataset.resources[self.dataset.person]
        person = _criteria(person_spec, values)
        if person is None and not any(i.severity == qc.ERROR for i in issues):
            issues.append(qc.issue(record.number, self.roles.get("id_number", [None])[0], qc.ERROR, "no-person-key"))
        if not any(i.severity == qc.ERROR for i in issues):
            issues.extend(self.duplicates.check(record.number, values, self.roles))
        accepted = not any(i.severity == qc.ERROR for i in issues)
        if accepted and person is not None:
            self.persons.setdefault(person, []).append(values)
        return Outcome(record.number, values.get(SOURCE), accepted, issues, values, person,
                       "checked" if accepted else "rejected")

    def _value(self, write: Write, element: Element, value: Any, urls: dict[str, str], values: dict[str, Any]) -> Any:
        domain = element.domain
        if write.template is not None:
            return _fill(write.template, values, urls, value)
        if write.kind == "value":
            return _json(value)
        if write.kind == "reference":
            return {"reference": urls[write.target or ""]}
        if write.kind in ("family-name", "given-name"):  # a Han name split as 姓 + 名 (names.py)
            parts = split_chinese_name(str(value))
            return None if parts is None else parts[0] if write.kind == "family-name" else parts[1]
        if write.kind == "attachment":  # free text kept as a plain-text attachment (e.g. 检查所见)
            return {"contentType": "text/plain;charset=utf-8", "language": "zh-CN", "title": element.name,
                    "data": base64.b64encode(str(value).encode()).decode()}
        system = domain.system if domain else ""
        code = str(value)
        if write.kind == "icd10":  # the standard code of either edition: a clinical code's ICD-10 category
            return icd10.category(code)
        if write.kind == "icd10-clinical":
            return {"system": icd10.CLINICAL, "version": icd10.CLINICAL_VERSION, "code": code} \
                if icd10.is_clinical(code) else None
        if write.kind in ("coding", "concept", "display"):
            display = self.terminology.display(system, code) if domain else None
            if display is None and domain and icd10.is_clinical(code):
                display = self.terminology.display(system, icd10.category(code))
            if write.kind == "display":
                return display
            coding = {"system": system, "code": code, **({"display": display} if display else {})}
            return coding if write.kind == "coding" else {"coding": [coding]}
        found = self._translations(write, system, code)
        if not found:  # unmatched: the fallback the map names (a valid FHIR value), never a null code
            return write.fallback
        if write.kind == "translate":
            return found[0].code
        return {"system": found[0].system, "code": found[0].code, **({"display": found[0].display}
                                                                     if found[0].display else {})}

    def _write(self, group: dict[tuple[str, str], Instance], values: dict[str, Any]) -> None:
        """Write one accepted record's values into its person's resources (keyed by criteria)."""
        made: dict[str, Instance] = {}
        for alias, spec in self.dataset.resources.items():
            if any(values.get(e) is None for e in spec.when):
                continue
            criteria = _criteria(spec, values)
            if criteria is None:
                continue
            instance = group.get((spec.type, criteria))
            if instance is None:
                resource: dict[str, Any] = {"resourceType": spec.type}
                if spec.profile:
                    resource["meta"] = {"profile": [spec.profile]}
                full_url = "urn:uuid:" + str(uuid.uuid5(NAMESPACE, f"{spec.type}?{criteria}"))
                instance = group[(spec.type, criteria)] = Instance(spec, criteria, full_url, resource)
            made[alias] = instance
        urls = {alias: inst.full_url for alias, inst in made.items()}
        person = made.get(self.dataset.person)
        numbers_before = [dict(i) for i in person.resource.get("identifier", [])
                          if i.get("system") == transfer.RECORD_NO] if person is not None else []
        for instance in made.values():
            for fixed in instance.spec.fixed:
                try:
                    paths.put(instance.resource, fixed.path, _fill(fixed.template, values, urls, None))
                except KeyError:  # a placeholder names an absent element or resource: nothing to fix
                    continue
        for element in self.dataset.elements:
            value = values.get(element.id)
            if value is None:
                continue
            for write in element.writes:
                if write.resource not in made or (write.kind == "reference" and write.target not in made):
                    continue
                try:
                    out = self._value(write, element, value, urls, values)
                except KeyError:
                    continue
                if out is not None:
                    paths.put(made[write.resource].resource, write.path, out)
        for element in self.dataset.elements:
            if values.get(element.id) is None:
                continue
            if (comparator := values.get(element.id + "#comparator")) is not None:
                quantity = _quantity_path(element)
                if quantity is not None and quantity.resource in made:
                    paths.put(made[quantity.resource].resource, quantity.path[:-len("value")] + "comparator",
                              comparator)
            if (original := values.get(element.id + "#original")) is not None:
                plain = next((w for w in element.writes if w.kind == "value" and w.template is None), None)
                where = _original_path(plain.path) if plain is not None else None
                if plain is not None and where is not None and plain.resource in made:
                    paths.put(made[plain.resource].resource, where, original)
        self._identity_documents(made, values)
        if person is not None:
            self._record_numbers(person.resource, numbers_before, values)
        self._quantity(made, values)
        old = values.get(self.roles.get("id_number", [""])[0] + "#old")
        patient = made.get(self.dataset.person)
        if old is not None and patient is not None:  # GB 11643-1989 number kept as an old identifier
            paths.put(patient.resource, "identifier[+]",
                      {"use": "old", "system": "urn:oid:2.16.156.10011.1.3", "value": old})

    def _record_numbers(self, patient: dict[str, Any], before: list[dict[str, Any]], values: dict[str, Any]) -> None:
        """Two records of one person with two 健康档案编号 (a moved resident): both kept, the older ``use: old``
        (transfer.py); 建档日期 dates the number it came with (``period.start``)."""
        identifiers = patient.get("identifier", [])
        number = values.get(RECORD_NUMBER)
        current = next((i for i in identifiers if i.get("system") == transfer.RECORD_NO
                        and i.get("value") == number), None)
        if current is not None and values.get(RECORD_DATE) is not None:
            current.setdefault("period", {})["start"] = values[RECORD_DATE]
        for old in before:
            if not any(i.get("system") == transfer.RECORD_NO and i.get("value") == old.get("value")
                       for i in identifiers):
                identifiers.insert(identifiers.index(current) if current in identifiers else len(identifiers), old)
        if identifiers:
            patient["identifier"] = transfer.settle(identifiers)

    def _quantity(self, made: dict[str, Instance], values: dict[str, Any]) -> None:
        """A lab result's UCUM code beside its unit text, and the original of a converted value as a note."""
        unit_el, value_el = self._role("result_unit"), self._role("result_value")
        code = values.get(f"{unit_el}#ucum")
        if unit_el is None or value_el is None or code is None:
            return
        unit_write = next((w for w in self.dataset.element(unit_el).writes if w.path.endswith(".unit")), None)
        if unit_write is None or unit_write.resource not in made:
            return
        resource = made[unit_write.resource].resource
        base = unit_write.path[:-len("unit")]
        paths.put(resource, base + "system", units.UCUM)
        paths.put(resource, base + "code", code)
        if (original := values.get(value_el + "#converted")) is not None:
            paths.put(resource, "note[+]", {"text": f"原始结果 original result: {original} (已换算 converted to "
                                                    f"{_json(values[value_el])} {code})"})

    def _identity_documents(self, made: dict[str, Instance], values: dict[str, Any]) -> None:
        """身份证件类别 on the person's document identifier: the 身份证号 (01) gets its type; another document
        (passport 03 …) is its own identifier, system ``…/sid/id-document/{code}``, typed with the CV02.01.101 code
        and its v2-0203 translation (PPN, DL …), so it is never taken for the national ID number."""
        patient = made.get(self.dataset.person)
        id_type_el = self.roles.get("id_type", [None])[0]
        id_number_el = self.roles.get("id_number", [None])[0]
        kind = values.get(id_type_el) if id_type_el else None
        if patient is None or kind is None:
            return
        display = self.terminology.display(ID_TYPE_SYSTEM, str(kind))
        coding = [{"system": t.system, "code": t.code, **({"display": t.display} if t.display else {})}
                  for t in self._translations(Write("", "", "translate-coding", CM_ID_TYPE), ID_TYPE_SYSTEM,
                                              str(kind))[:1]]
        coding.append({"system": ID_TYPE_SYSTEM, "code": str(kind), **({"display": display} if display else {})})
        typed = {"coding": coding, **({"text": display} if display else {})}
        other = values.get(OTHER_ID_KEY)
        if other is not None:
            system = OTHER_ID_SYSTEM + str(kind)
            paths.put(patient.resource, f"identifier[system={system}]",
                      {"use": "official", "type": typed, "system": system, "value": other})
        elif id_number_el and values.get(id_number_el) is not None:
            paths.put(patient.resource, "identifier[system=urn:oid:2.16.156.10011.1.3].type", typed)

    # ---- whole runs ----------------------------------------------------------------------------

    def iter_bundles(self) -> Iterator[dict[str, Any]]:
        """One transaction Bundle per person seen so far. Resources are built here, a person at a time,
        not while records are checked: a run holds the parsed values of its records, never the FHIR
        resources of the whole file (a 500,000-row file would need gigabytes)."""
        for records in list(self.persons.values()):
            group: dict[tuple[str, str], Instance] = {}
            for values in records:
                self._write(group, values)
            yield transaction(list(group.values()))


def entry(instance: Instance) -> dict[str, Any]:
    spec = instance.spec
    if spec.mode == "create":
        request = {"method": "POST", "url": spec.type, "ifNoneExist": instance.criteria}
    else:
        request = {"method": "PUT", "url": f"{spec.type}?{instance.criteria}"}
    return {"fullUrl": instance.full_url, "resource": instance.resource, "request": request}


def _id_only(instance: Instance) -> bool:
    """A Patient made only from identifier-only rows (no name): the known person is referred to instead."""
    return instance.spec.type == "Patient" and instance.spec.mode == "create" and "name" not in instance.resource


def _refer(node: Any, urls: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: (urls.get(v, v) if k == "reference" and isinstance(v, str) else _refer(v, urls))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_refer(v, urls) for v in node]
    return node


def transaction(instances: list[Instance]) -> dict[str, Any]:
    """The person's transaction. An identifier-only person (issue 15) gets no Patient entry: its rows refer
    to ``Patient?identifier=…`` (a conditional reference the server resolves to the one Patient it knows,
    or refuses the transaction with a 412 naming it when it knows none)."""
    urls = {i.full_url: f"{i.spec.type}?{i.criteria}" for i in instances if _id_only(i)}
    kept = [i for i in instances if i.full_url not in urls]
    entries = [entry(i) for i in kept]
    if urls:
        entries = [{**e, "resource": _refer(e["resource"], urls)} for e in entries]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def convert(dataset: DataSet, records: Iterable[Record], *, source: str | None = None,
            terminology: Terminology | None = None, today: date | None = None) -> Conversion:
    """Check and convert every record; the Bundles hold the accepted ones."""
    converter = Converter(dataset, source=source, terminology=terminology, today=today)
    result = Conversion(converter)
    for record in records:
        result.outcomes.append(converter.add(record))
    return result

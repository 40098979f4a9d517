"""Quality control of local data-set records: the regional platforms' rules, each with a code.

Every problem is an :class:`Issue` naming the record (1-based, in file order), the data element,
the severity (``error`` rejects the record, ``warning`` keeps it and reports) and a code with a
message in Chinese and English. The rules (fact sheet /work/shared/cn/README.md §2):

- GB 11643 居民身份证号: structure, real date, MOD 11-2 (:mod:`profiles.resident_id`); a lower-case
  ``x`` is stored as ``X``; 15-digit numbers are upgraded; birth date in the number = 出生日期;
  the 17th digit's parity agrees with the GB/T 2261.1 sex code;
- age plausibility: not born in the future, events not before birth nor in the future, age 0–120;
- WS 363 formats, value domains, required elements (per element and "one of" groups);
- duplicate persons: one ID number under different names, the same ID number twice in a person
  file, and likely duplicates without an ID (name + sex + birth date + phone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from profiles import resident_id

ERROR, WARNING = "error", "warning"
MESSAGES: dict[str, tuple[str, str]] = {
    "required": ("必填数据元缺失", "required data element is missing"),
    "person-by-identifier": ("仅以身份证号/健康卡号标识患者, 缺少的人口学信息取自平台已有居民",
                             "the person is named only by ID number or health card: linked to the person the "
                             "platform knows (refused if it knows none)"),
    "required-one-of": ("以下数据元至少填写一项: {detail}", "at least one of these is required: {detail}"),
    "format": ("格式不符合WS 363规定: {detail}", "value does not match its WS 363 format: {detail}"),
    "format-nonstandard": ("格式非标准但可识别, 已规范化, 原值保留: {detail}",
                           "non-standard but unambiguous, normalised (the original is kept): {detail}"),
    "code-unknown": ("代码不在值域内: {detail}", "code is not in the value domain: {detail}"),
    "code-unmapped": ("代码无对应的FHIR代码, 已保留原代码: {detail}",
                      "code has no FHIR translation, the original coding is kept: {detail}"),
    "unit-converted": ("单位已换算, 原值保留于备注: {detail}", "unit converted, the original kept in a note: {detail}"),
    "unit-mismatch": ("单位与项目不符, 未保存: {detail}", "unit does not fit the analyte, not stored: {detail}"),
    "unit-unknown": ("单位无法识别为UCUM: {detail}", "unit is not a known UCUM unit: {detail}"),
    "out-of-range": ("数值超出合理范围 {detail}", "value outside the plausible range {detail}"),
    "value-order": ("数值关系不合理: {detail}", "implausible values: {detail} expected"),
    "unknown-column": ("未知列, 已忽略", "unknown column, ignored"),
    "id-type-unsupported": ("仅支持居民身份证(01)号码", "only 居民身份证 (01) numbers are supported"),
    "id-invalid": ("身份证号码无效: {detail}", "invalid ID number: {detail}"),
    "id-lowercase-x": ("身份证校验码小写x已改为X", "lower-case check character x stored as X"),
    "id-upgraded": ("15位身份证号已升位为18位, 原号码保留", "15-digit ID number upgraded to 18, the old one kept"),
    "id-birthdate-mismatch": ("身份证号中的出生日期与出生日期不一致",
                              "birth date in the ID number differs from the birth date"),
    "id-sex-mismatch": ("身份证号第17位奇偶与性别代码不符",
                        "17th digit parity of the ID number disagrees with the sex code"),
    "birth-future": ("出生日期晚于今天", "birth date is in the future"),
    "event-future": ("事件日期晚于今天", "event date is in the future"),
    "event-before-birth": ("事件日期早于出生日期", "event date is before the birth date"),
    "age-implausible": ("事件发生时年龄不在0-120岁之间", "age at the event is not between 0 and 120"),
    "orphan-value": ("缺少{detail}, 本项未保存", "not stored: it needs {detail}, which is missing"),
    "period-reversed": ("结束时间早于开始时间", "end time is before start time"),
    "no-person-key": ("无法识别患者: 缺少身份证号和健康卡号",
                      "cannot identify the person: no ID number nor health card"),
    "duplicate-id": ("身份证号在本文件中重复 (第{detail}条)", "ID number repeated in this file (record {detail})"),
    "duplicate-id-different-name": ("同一身份证号对应不同姓名 (第{detail}条)",
                                    "the same ID number has a different name (record {detail})"),
    "likely-duplicate": ("疑似重复人员: 姓名、性别、出生日期、电话相同 (第{detail}条)",
                         "likely duplicate person: same name, sex, birth date and phone (record {detail})"),
    "server-rejected": ("服务器拒收, 未保存: {detail}", "not stored, the server refused it: {detail}"),
    "stored-id-different-name": ("平台已有同一身份证件号码的居民, 姓名不同 ({detail})",
                                 "the platform already holds this ID number under another name ({detail})"),
    "stored-likely-duplicate": ("疑似重复人员: 平台已有姓名、性别、出生日期、电话相同的居民 ({detail})",
                                "likely duplicate: the platform already holds a person with the same name, sex, "
                                "birth date and phone ({detail})"),
}


@dataclass(frozen=True, slots=True)
class Issue:
    record: int
    element: str | None
    severity: str
    code: str
    zh: str
    en: str

    def to_json(self) -> dict[str, Any]:
        return {"record": self.record, "element": self.element, "severity": self.severity, "code": self.code,
                "message": {"zh": self.zh, "en": self.en}}


def issue(record: int, element: str | None, severity: str, code: str, detail: str = "") -> Issue:
    zh, en = MESSAGES[code]
    return Issue(record, element, severity, code, zh.format(detail=detail), en.format(detail=detail))


def identity_number(record: int, element: str, text: str, id_type: str | None,
                    today: date) -> tuple[str | None, str | None, list[Issue]]:
    """The number to store, the legacy number to keep (15-digit input), and the problems found."""
    if id_type not in (None, "01"):
        return None, None, [issue(record, element, ERROR, "id-type-unsupported")]
    found: list[Issue] = []
    old = None
    number = resident_id.normalize(text)
    if number != text.strip():
        found.append(issue(record, element, WARNING, "id-lowercase-x"))
    if len(number) == 15 and number.isdigit():
        old, number = number, resident_id.upgrade(number)
        found.append(issue(record, element, WARNING, "id-upgraded"))
    problem = resident_id.problem(number, today=today)
    if problem is not None:
        return None, None, [*found, issue(record, element, ERROR, "id-invalid", problem)]
    return number, old, found


def cross_checks(record: int, values: dict[str, Any], roles: dict[str, list[str]], today: date) -> list[Issue]:
    """The rules between elements: ID number vs birth date and sex, age and event plausibility."""
    found: list[Issue] = []

    def first(role: str) -> tuple[str | None, Any]:
        for element in roles.get(role, ()):
            if values.get(element) is not None:
                return element, values[element]
        return None, None

    _, number = first("id_number")
    birth_el, birth = first("birth_date")
    sex_el, sex = first("sex")
    if number is not None and birth is not None and resident_id.birth_date(number) != date.fromisoformat(birth):
        found.append(issue(record, birth_el, ERROR, "id-birthdate-mismatch"))
    if number is not None and sex in ("1", "2") and resident_id.sex_code(number) != sex:
        found.append(issue(record, sex_el, WARNING, "id-sex-mismatch"))
    born = date.fromisoformat(birth) if birth is not None else None
    if born is not None and born > today:
        found.append(issue(record, birth_el, ERROR, "birth-future"))
    start_el, start = first("event_date")
    end_el, end = first("event_end")
    for element, value in ((start_el, start), (end_el, end)):
        if value is None:
            continue
        day = date.fromisoformat(str(value)[:10])
        if day > today:
            found.append(issue(record, element, ERROR, "event-future"))
        elif born is not None and day < born:
            found.append(issue(record, element, ERROR, "event-before-birth"))
        elif born is not None and (day.year - born.year - ((day.month, day.day) < (born.month, born.day))) > 120:
            found.append(issue(record, element, ERROR, "age-implausible"))
    if start is not None and end is not None and str(end) < str(start):
        found.append(issue(record, end_el, ERROR, "period-reversed"))
    return found


class Duplicates:
    """Duplicate-person detection across the records of one run."""

    def __init__(self, *, per_record_person: bool) -> None:
        self._per_record_person = per_record_person
        self._by_id: dict[str, tuple[int, str | None]] = {}
        self._by_demographics: dict[tuple[Any, ...], int] = {}

    def check(self, record: int, values: dict[str, Any], roles: dict[str, list[str]]) -> list[Issue]:
        def value(role: str) -> tuple[str | None, Any]:
            element = next(iter(roles.get(role, ())), None)
            return element, values.get(element) if element else None

        id_el, number = value("id_number")
        name_el, name = value("name")
        found: list[Issue] = []
        if number is not None:
            seen = self._by_id.get(number)
            if seen is None:
                self._by_id[number] = (record, name)
            elif seen[1] is not None and name is not None and seen[1] != name:
                found.append(issue(record, name_el, WARNING, "duplicate-id-different-name", str(seen[0])))
            elif self._per_record_person:
                found.append(issue(record, id_el, WARNING, "duplicate-id", str(seen[0])))
        key = (name, value("sex")[1], value("birth_date")[1], value("phone")[1])
        if None not in key:
            earlier = self._by_demographics.setdefault(key, record)
            if number is None and earlier != record and self._per_record_person:
                found.append(issue(record, name_el, WARNING, "likely-duplicate", str(earlier)))
        return found


def _name(patient: dict[str, Any]) -> str | None:
    for name in patient.get("name") or ():
        if isinstance(name, dict):
            text = name.get("text") or "".join([name.get("family") or "", *(name.get("given") or ())])
            if text:
                return "".join(text.split())
    return None


def stored_name_conflict(stored: dict[str, Any], incoming: dict[str, Any]) -> str | None:
    """When the Patient the platform holds under the incoming record's key has another name: the
    stored one (``Patient/id 姓名``) for the report; None when the names agree or one is missing.
    Across runs and institutions this is the same check as ``duplicate-id-different-name`` within a
    file: one ID number, two names is a typing error at one of the desks, or two persons."""
    before, now = _name(stored), _name(incoming)
    if before is None or now is None or before == now:
        return None
    return f"Patient/{stored.get('id')} {before}"


def demographic_criteria(patient: dict[str, Any]) -> str | None:
    """Search criteria for stored persons with this Patient's name, sex, birth date and phone (the
    ``likely-duplicate`` key), or None when one of the four is missing."""
    name = _name(patient)
    phones = [t.get("value") for t in patient.get("telecom") or ()
              if isinstance(t, dict) and t.get("system") == "phone"]
    gender, born = patient.get("gender"), patient.get("birthDate")
    if not (name and phones and phones[0] and isinstance(gender, str) and isinstance(born, str)):
        return None
    return urlencode({"name:exact": name, "gender": gender, "birthdate": born, "phone": phones[0]})


def likely_duplicate(stored_by_key: dict[str, Any] | None, similar: list[dict[str, Any]]) -> str | None:
    """The first stored Patient with a person's name, sex, birth date and phone that is not the Patient
    the person's own key finds: ``Patient/id 姓名`` for the report, or None."""
    own = stored_by_key.get("id") if stored_by_key is not None else None
    other = next((p for p in similar if p.get("id") != own), None)
    if other is None:
        return None
    return f"Patient/{other.get('id')} {_name(other) or ''}".rstrip()

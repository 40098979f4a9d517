"""Masking (脱敏), pure: the value masks (居民身份证号, phone, name, address, date) and
:func:`mask_resource`, which masks the elements of a resource graded above a reader's clearance.

- 居民身份证号 ``110105199001011234`` → ``110105********1234`` (15 digits: 6 + ``*****`` + 4); other
  identifiers keep their first and last two characters;
- phone ``13812345678`` → ``138****5678`` (a ``+86`` prefix dropped; other numbers keep their first 3
  and last 4 digits), e-mail ``z***@example.cn``;
- name ``张三`` → ``张*`` (a compound surname such as 欧阳 is kept whole), Latin ``John Smith`` → ``J. S.``;
- address to the district (country, state, city, district kept; lines, postal code, text dropped);
- a date to its year; or the element withheld (removed).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from server.grading.grade import REDACTED, grade, security
from server.grading.policy import Mask, Policy

DAR_URL = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
MASKED_ABSENT = {"extension": [{"url": DAR_URL, "valueCode": "masked"}]}
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_ID18 = re.compile(r"\d{17}[\dXx]")
_ID15 = re.compile(r"\d{15}")
_MOBILE = re.compile(r"1[3-9]\d{9}")
COMPOUND_SURNAMES = frozenset({
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "长孙", "宇文", "司徒", "夏侯",
    "轩辕", "端木", "独孤", "南宫", "西门", "万俟", "闻人", "呼延", "澹台", "公冶", "太史", "申屠", "钟离", "拓跋",
})
ADDRESS_KEPT = ("use", "type", "country", "state", "city", "district", "period")
Lift = Callable[[dict[str, Any], int], bool]


def mask_id_number(value: str) -> str:
    """A 居民身份证号 keeps its 6-digit region code and its last 4 characters; anything else its
    first and last two (short values are starred whole)."""
    v = value.strip()
    if _ID18.fullmatch(v):
        return v[:6] + "*" * 8 + v[-4:]
    if _ID15.fullmatch(v):
        return v[:6] + "*" * 5 + v[-4:]
    if len(v) <= 4:
        return "*" * len(v)
    if len(v) <= 6:
        return v[0] + "*" * (len(v) - 2) + v[-1]
    return v[:2] + "*" * (len(v) - 4) + v[-2:]


def mask_phone(value: str) -> str:
    """A mobile number → ``138****5678``; an e-mail → ``z***@host``; another number keeps its first 3 and
    last 4 digits (separators kept); fewer than 8 digits are starred whole."""
    v = value.strip()
    if "@" in v:
        local, _, host = v.partition("@")
        return (local[:1] + "***@" + host) if local else "***@" + host
    digits = re.sub(r"\D", "", v)
    for prefix in ("0086", "86", ""):
        rest = digits[len(prefix):] if digits.startswith(prefix) else None
        if rest is not None and _MOBILE.fullmatch(rest):
            return rest[:3] + "****" + rest[-4:]
    if len(digits) < 8:
        return re.sub(r"\d", "*", v)
    keep_head, keep_tail = 3, 4
    out: list[str] = []
    seen = 0
    for ch in v:
        if ch.isdigit():
            out.append(ch if seen < keep_head or seen >= len(digits) - keep_tail else "*")
            seen += 1
        else:
            out.append(ch)
    return "".join(out)


def is_chinese(text: str) -> bool:
    return bool(_CJK.search(text))


def chinese_surname(text: str) -> str:
    t = text.strip()
    return t[:2] if t[:2] in COMPOUND_SURNAMES else t[:1]


def _initial(word: str) -> str:
    return word[:1].upper() + "." if word else word


def mask_name_text(text: str, family: str | None = None) -> str:
    """A name as text: Chinese → surname + ``*``; Latin → initials (``John Smith`` → ``J. S.``)."""
    if is_chinese(text):
        surname = family if family and text.strip().startswith(family) else chinese_surname(text)
        return surname + "*"
    return " ".join(_initial(w) for w in text.replace(",", " ").split())


def mask_human_name(name: dict[str, Any]) -> dict[str, Any]:
    """A HumanName: Chinese keeps the family name (given → ``*``), Latin keeps initials."""
    out = {k: v for k, v in name.items() if k not in ("text", "family", "given")}
    family = name.get("family") if isinstance(name.get("family"), str) else None
    given = [g for g in name.get("given") or [] if isinstance(g, str)] if isinstance(name.get("given"), list) else []
    text = name.get("text") if isinstance(name.get("text"), str) else None
    chinese = any(is_chinese(s) for s in (family or "", text or "", *given))
    if chinese:
        surname = family or (chinese_surname(text) if text else "")
        if text is not None or not family:
            out["text"] = (surname or "") + "*"
        if family is not None:
            out["family"] = family
        if given:
            out["given"] = ["*"]
    else:
        if text is not None:
            out["text"] = mask_name_text(text)
        if family is not None:
            out["family"] = " ".join(_initial(w) for w in family.split())
        if given:
            out["given"] = [_initial(g) for g in given]
    return out


def mask_address(address: dict[str, Any]) -> dict[str, Any]:
    """An Address to its district: country, state (省), city (市), district (区/县) and use/type/period kept;
    lines, postal code, text and extensions (乡镇/村/门牌) dropped; ``text`` rebuilt from what is kept."""
    out = {k: address[k] for k in ADDRESS_KEPT if k in address}
    parts = [address[k] for k in ("state", "city", "district") if isinstance(address.get(k), str)]
    if parts:
        out["text"] = ("" if any(is_chinese(p) for p in parts) else " ").join(parts)
    return out


def year_only(value: str) -> str:
    """``1980-05-12`` (or a dateTime) → ``1980``."""
    return value[:4] if len(value) >= 4 and value[:4].isdigit() else value


def mask_value(value: Any, mask: Mask) -> Any:
    """``value`` (one element, not an array) masked the ``mask`` way."""
    if mask == "id-number":
        if isinstance(value, dict) and isinstance(value.get("value"), str):
            return {**value, "value": mask_id_number(value["value"])}
        return mask_id_number(value) if isinstance(value, str) else value
    if mask == "phone":
        if isinstance(value, dict) and isinstance(value.get("value"), str):
            return {**value, "value": mask_phone(value["value"])}
        return mask_phone(value) if isinstance(value, str) else value
    if mask == "name":
        if isinstance(value, dict):
            return mask_human_name(value)
        return mask_name_text(value) if isinstance(value, str) else value
    if mask == "address":
        return mask_address(value) if isinstance(value, dict) else value
    if mask == "year":
        return year_only(value) if isinstance(value, str) else value
    return value


def _keys(node: dict[str, Any], name: str) -> list[str]:
    """The keys of ``node`` an element name stands for (``value[x]`` → ``valueQuantity`` …)."""
    if name.endswith("[x]"):
        prefix = name[:-3]
        return [k for k in node if k.startswith(prefix) and len(k) > len(prefix) and k[len(prefix)].isupper()]
    return [name] if name in node else []


def apply(node: Any, path: tuple[str, ...], mask: Mask) -> bool:
    """Mask the elements at ``path`` below ``node`` in place (arrays walked); whether any was there."""
    if isinstance(node, list):
        return any([apply(item, path, mask) for item in node])
    if not isinstance(node, dict) or not path:
        return False
    changed = False
    for key in _keys(node, path[0]):
        if len(path) > 1:
            changed = apply(node[key], path[1:], mask) or changed
        elif mask == "withhold":
            del node[key]
            changed = True
        else:
            value = node[key]
            node[key] = [mask_value(v, mask) for v in value] if isinstance(value, list) else mask_value(value, mask)
            changed = True
    return changed


def _withhold_sensitive(resource: dict[str, Any], policy: Policy) -> bool:
    changed = False
    sens = policy.sensitive
    for name in sens.withheld(str(resource.get("resourceType", ""))):
        for key in _keys(resource, name):
            if name in sens.absent:
                resource[key] = [dict(MASKED_ABSENT)] if isinstance(resource[key], list) else dict(MASKED_ABSENT)
            else:
                del resource[key]
            changed = True
    return changed


def mark_redacted(resource: dict[str, Any]) -> None:
    meta = resource.get("meta")
    if not isinstance(meta, dict):
        meta = resource["meta"] = {}
    meta["security"] = [*security(resource), dict(REDACTED)]


def mask_resource(resource: dict[str, Any], policy: Policy, clearance: int, lift: Lift | None = None) -> bool:
    """Mask, in place, what of ``resource`` is graded above ``clearance``: each element rule above it,
    and the type's sensitive elements when a sensitive code raised the resource above it; then the
    narrative (which may repeat any of it) goes and the v3 ``REDACTED`` label is added. ``lift(resource,
    level)`` True shows a resource above the clearance whole (a permitting Consent, break-glass).
    Contained resources are masked alike. Returns whether anything was masked."""
    found = grade(resource, policy)
    changed = False
    if found.level > clearance and not (lift is not None and lift(resource, found.level)):
        for rule in policy.rules(str(resource.get("resourceType", ""))):
            if rule.level > clearance:
                changed = apply(resource, rule.path, rule.mask) or changed
        if found.sensitive and policy.sensitive.level > clearance:
            changed = _withhold_sensitive(resource, policy) or changed
    contained = resource.get("contained")
    if isinstance(contained, list):
        for item in contained:
            if isinstance(item, dict):
                changed = mask_resource(item, policy, clearance, lift) or changed
    if changed:
        resource.pop("text", None)
        mark_redacted(resource)
    return changed

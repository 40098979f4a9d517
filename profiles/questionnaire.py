"""A QuestionnaireResponse checked against the Questionnaire it answers.

Follow-up forms (hypertension, diabetes) are Questionnaires, so their answers are validated
against the form, as http://hl7.org/fhir/R4/questionnaireresponse.html#link describes:

- every response item's ``linkId`` names an item of the Questionnaire at the same place;
- answers have the value type the item's ``type`` calls for (``boolean`` -> valueBoolean, ``choice``
  -> valueCoding or the type of its answerOptions, ...); ``display`` and ``group`` items have no
  answers; an item that does not repeat has at most one answer;
- answers to an item with ``answerOption`` are among the options; with ``answerValueSet`` they are
  in the value set (through the engine's terminology);
- ``maxLength`` and the minValue/maxValue (sdc min/maxQuantity) extensions hold;
- in a completed response, every enabled ``required`` item is answered;
- an item disabled by its ``enableWhen`` conditions (http://hl7.org/fhir/R4/questionnaire.html#enableWhen)
  has no answers.

When the Questionnaire cannot be found the response can only be checked structurally; that is a
warning, not an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from profiles.codes import BUSINESS_RULE, CODE_INVALID, NOT_FOUND, REQUIRED, STRUCTURE, VALUE
from profiles.issues import ERROR, INFORMATION, WARNING
from profiles.values import compare, describe, matches_fixed

if TYPE_CHECKING:
    from profiles.walker import Walk

ANSWER_TYPES: dict[str, tuple[str, ...]] = {
    "boolean": ("Boolean",), "decimal": ("Decimal",), "integer": ("Integer",), "date": ("Date",),
    "dateTime": ("DateTime",), "time": ("Time",), "string": ("String",), "text": ("String",), "url": ("Uri",),
    "choice": ("Coding",), "open-choice": ("Coding", "String"), "attachment": ("Attachment",),
    "reference": ("Reference",), "quantity": ("Quantity",),
}
"""Questionnaire.item.type -> the answer value[x] suffixes it calls for (R4)."""
NO_ANSWERS = frozenset({"group", "display"})
MIN_VALUE = ("http://hl7.org/fhir/StructureDefinition/minValue",
             "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-minQuantity")
MAX_VALUE = ("http://hl7.org/fhir/StructureDefinition/maxValue",
             "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-maxQuantity")
LIMIT_TYPES = {"Decimal": "decimal", "Integer": "integer", "Date": "date", "DateTime": "dateTime", "Time": "time",
               "Quantity": "Quantity"}


def check_response(walk: Walk, response: dict[str, Any], path: str,
                   resolver: Callable[[str], dict[str, Any] | None]) -> None:
    url = response.get("questionnaire")
    if not isinstance(url, str):
        return
    questionnaire = resolver(url)
    if questionnaire is None:
        walk.report(WARNING, NOT_FOUND, f"the Questionnaire {url} is not available, so the answers were not checked "
                    "against it", f"{path}.questionnaire")
        return
    answers = _answers_by_link(response)
    checker = _Checker(walk, answers, response.get("status") == "completed")
    checker.items(_list(questionnaire.get("item")), _list(response.get("item")), path)


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _answers_by_link(response: dict[str, Any]) -> dict[str, list[Any]]:
    """Every answer value in the response, by linkId (for enableWhen)."""
    found: dict[str, list[Any]] = {}

    def visit(items: list[dict[str, Any]]) -> None:
        for item in items:
            link = item.get("linkId")
            for answer in _list(item.get("answer")):
                for key, value in answer.items():
                    if key.startswith("value") and isinstance(link, str):
                        found.setdefault(link, []).append(value)
                visit(_list(answer.get("item")))
            visit(_list(item.get("item")))

    visit(_list(response.get("item")))
    return found


def _value(element: dict[str, Any], stem: str = "value") -> tuple[str, Any] | None:
    """(type suffix, value) of the ``value[x]`` (or other ``stem[x]``) choice of an element."""
    size = len(stem)
    for key, value in element.items():
        if key.startswith(stem) and len(key) > size and key[size].isupper():
            return key[size:], value
    return None


def _extension_value(item: dict[str, Any], urls: tuple[str, ...]) -> tuple[str, Any] | None:
    for extension in _list(item.get("extension")):
        if extension.get("url") in urls:
            found = _value(extension)
            if found is not None:
                return found
    return None


class _Checker:
    def __init__(self, walk: Walk, answers: dict[str, list[Any]], completed: bool) -> None:
        self.walk = walk
        self.answers = answers
        self.completed = completed

    def items(self, definitions: list[dict[str, Any]], items: list[dict[str, Any]], path: str) -> None:
        by_link = {d.get("linkId"): d for d in definitions}
        present: set[str] = set()
        for i, item in enumerate(items):
            where = f"{path}.item[{i}]"
            link = item.get("linkId")
            definition = by_link.get(link)
            if definition is None:
                self.walk.report(ERROR, STRUCTURE, f"no item with linkId {link!r} at this place in the Questionnaire",
                                 f"{where}.linkId")
                continue
            present.add(str(link))
            self.item(definition, item, where)
        for definition in definitions:
            link = definition.get("linkId")
            if self.completed and definition.get("required") is True and link not in present and self.enabled(
                    definition):
                self.walk.report(ERROR, REQUIRED, f"the required item {link!r} is not answered", f"{path}.item")

    def item(self, definition: dict[str, Any], item: dict[str, Any], where: str) -> None:
        item_type = definition.get("type")
        answers = _list(item.get("answer"))
        if answers and not self.enabled(definition):
            self.walk.report(ERROR, BUSINESS_RULE, f"item {definition.get('linkId')!r} is disabled by its enableWhen "
                             "conditions, so it must not have answers", where)
        if item_type in NO_ANSWERS:
            if answers:
                self.walk.report(ERROR, STRUCTURE, f"a {item_type} item cannot have answers", f"{where}.answer")
            if item_type == "group":
                children = _list(item.get("item"))
                if not children and self.completed:
                    self.walk.report(ERROR, REQUIRED, f"the group {definition.get('linkId')!r} has no items",
                                     where)
                self.items(_list(definition.get("item")), children, where)
            return
        allowed = ANSWER_TYPES.get(str(item_type))
        if allowed is None:
            self.walk.report(ERROR, STRUCTURE, f"the Questionnaire item {definition.get('linkId')!r} has type "
                             f"{item_type!r}, which cannot be answered", where)
            return
        if len(answers) > 1 and definition.get("repeats") is not True:
            self.walk.report(ERROR, STRUCTURE, f"item {definition.get('linkId')!r} does not repeat, but has "
                             f"{len(answers)} answers", f"{where}.answer")
        if self.completed and definition.get("required") is True and not answers and not _list(item.get("item")):
            self.walk.report(ERROR, REQUIRED, f"the required item {definition.get('linkId')!r} has no answer", where)
        for j, answer in enumerate(answers):
            self.answer(definition, str(item_type), allowed, answer, f"{where}.answer[{j}]")
            self.items(_list(definition.get("item")), _list(answer.get("item")), f"{where}.answer[{j}]")
        if _list(item.get("item")):
            self.items(_list(definition.get("item")), _list(item.get("item")), where)

    def answer(self, definition: dict[str, Any], item_type: str, allowed: tuple[str, ...], answer: dict[str, Any],
               where: str) -> None:
        found = _value(answer)
        if found is None:
            return
        value_type, value = found
        options = _list(definition.get("answerOption"))
        option_types = {v[0] for v in (_value(o) for o in options) if v is not None}
        if value_type not in allowed and value_type not in option_types:
            if item_type == "choice" and value_type in ("String", "Integer", "Date", "Time", "Reference"):
                self.walk.report(INFORMATION, VALUE, f"a choice answer is expected to be a Coding, found value"
                                 f"{value_type}", where)
            else:
                expected = " or ".join("value" + t for t in allowed)
                self.walk.report(ERROR, STRUCTURE, f"item {definition.get('linkId')!r} is of type {item_type}, so its "
                                 f"answer must be {expected}, not value{value_type}", where)
                return
        open_text = item_type == "open-choice" and value_type == "String"
        if options and not open_text and not any(_same_option(o, value_type, value) for o in options):
            self.walk.report(ERROR, CODE_INVALID, f"{describe(value)} is not one of the answer options of item "
                             f"{definition.get('linkId')!r}", where)
        value_set = definition.get("answerValueSet")
        if isinstance(value_set, str) and not options:
            self._in_value_set(value_set, value_type, value, where)
        max_length = definition.get("maxLength")
        if isinstance(max_length, int) and isinstance(value, str) and len(value) > max_length:
            self.walk.report(ERROR, VALUE, f"the answer is {len(value)} characters long, at most {max_length} allowed",
                             where)
        for urls, sign, word in ((MIN_VALUE, -1, "at least"), (MAX_VALUE, 1, "at most")):
            limit = _extension_value(definition, urls)
            if limit is None or value_type not in LIMIT_TYPES:
                continue
            result = compare((LIMIT_TYPES[limit[0]] if limit[0] in LIMIT_TYPES else limit[0], limit[1]), value)
            if result is None:
                self.walk.report(ERROR, VALUE, f"the answer {describe(value)} cannot be compared with the limit "
                                 f"{describe(limit[1])}", where)
            elif result == sign:
                self.walk.report(ERROR, VALUE, f"the answer must be {word} {describe(limit[1])}, found "
                                 f"{describe(value)}", where)

    def _in_value_set(self, value_set: str, value_type: str, value: Any, where: str) -> None:
        if value_type == "Coding" and isinstance(value, dict) and isinstance(value.get("code"), str):
            answer = self.walk.engine.terminology.check(value_set, value.get("system"), value["code"],
                                                        value.get("display"))
        elif value_type == "String" and isinstance(value, str):
            answer = self.walk.engine.terminology.check(value_set, None, value)
        else:
            return
        if answer.result is False:
            self.walk.report(ERROR, CODE_INVALID, f"{describe(value)} is not in the answer value set {value_set}"
                             + (f": {answer.message}" if answer.message else ""), where)

    def enabled(self, definition: dict[str, Any]) -> bool:
        """Whether an item's enableWhen conditions hold (http://hl7.org/fhir/R4/questionnaire.html#enableWhen)."""
        conditions = _list(definition.get("enableWhen"))
        if not conditions:
            return True
        results = [self._condition(c) for c in conditions]
        return all(results) if definition.get("enableBehavior") == "all" else any(results)

    def _condition(self, condition: dict[str, Any]) -> bool:
        answers = self.answers.get(str(condition.get("question")), [])
        operator = condition.get("operator")
        expected = _value(condition, "answer")
        if operator == "exists":
            return bool(answers) == (expected is not None and expected[1] is True)
        if expected is None:
            return False
        kind, target = expected
        if kind == "Boolean" or kind == "String":
            compared: list[int | None] = [(0 if a == target else 1) if operator in ("=", "!=") else None
                                          for a in answers]
        else:
            compared = [_compare_answer(kind, target, a) for a in answers]
        if operator == "=":
            return any(c == 0 for c in compared)
        if operator == "!=":
            return any(c is not None and c != 0 for c in compared) or not answers
        tests = {">": lambda c: c > 0, "<": lambda c: c < 0, ">=": lambda c: c >= 0, "<=": lambda c: c <= 0}
        test = tests.get(str(operator))
        return test is not None and any(c is not None and test(c) for c in compared)


def _compare_answer(kind: str, target: Any, answer: Any) -> int | None:
    if kind == "Coding":
        if isinstance(answer, dict) and isinstance(target, dict):
            same = answer.get("code") == target.get("code") and answer.get("system") == target.get("system")
            return 0 if same else 1
        return None
    return compare((LIMIT_TYPES.get(kind, kind), target), answer)


def _same_option(option: dict[str, Any], value_type: str, value: Any) -> bool:
    found = _value(option)
    if found is None or found[0] != value_type:
        return False
    expected = found[1]
    if value_type == "Coding" and isinstance(expected, dict) and isinstance(value, dict):
        return expected.get("code") == value.get("code") and expected.get("system") == value.get("system")
    if value_type == "Reference" and isinstance(expected, dict) and isinstance(value, dict):
        return expected.get("reference") == value.get("reference")
    return matches_fixed(expected, value)


"""``${…}`` substitution: TestScript variables, then Touchstone placeholders.

TestScript variables are written ``${name}`` in operation params, urls, request headers, assert
values and fixtures (http://hl7.org/fhir/R4/testscript.html#variables). Scripts written for
AEGIS Touchstone also use its predefined placeholders
(https://touchstone.aegis.net/touchstone/userguide/html/testscript-authoring/placeholders.html):

- ``${C6}``, ``${D9}``, ``${CD14}``: a value of letters, digits, or both, 1-20 long, fixed for
  the run (so a fixture and the search that looks for it agree);
- ``${UUID}`` (also ``UUID-ST``, ``UUID-NODASH``, ``UUID-ST-NODASH``): one UUID per run, with or
  without dashes, so ``urn:uuid:${UUID}`` references inside one fixture line up;
- ``${CURRENTDATE}``, ``${CURRENTDATETIME}``, optionally with offsets
  ``${CURRENTDATE, d, -1}`` (codes from ``yyMMddHHmmss``: y, M, d, H, m, s; pairs may repeat);
- ``${DATE, var, d, 3}``/``${DATETIME, var, …}``: the same arithmetic on a variable's date.
"""

from __future__ import annotations

import random
import re
import string
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

TOKEN = re.compile(r"\$\{([^{}]+)\}")
_UNIQUE = re.compile(r"(CD|C|D)([1-9]|1[0-9]|20)")
_ALPHABETS = {"C": string.ascii_uppercase, "D": string.digits, "CD": string.ascii_uppercase + string.digits}

Lookup = Callable[[str], str | None]


def _shift(moment: datetime, pairs: list[str]) -> datetime:
    if len(pairs) % 2:
        raise ValueError("date offsets come in pairs: <portion code>, <offset>")
    for code, raw in zip(pairs[::2], pairs[1::2], strict=True):
        amount = int(raw)
        if code == "y":
            moment = _add_months(moment, 12 * amount)
        elif code == "M":
            moment = _add_months(moment, amount)
        elif code in ("d", "H", "m", "s"):
            unit = {"d": "days", "H": "hours", "m": "minutes", "s": "seconds"}[code]
            moment = moment + timedelta(**{unit: amount})
        else:
            raise ValueError(f"unknown date portion code {code!r} (use y, M, d, H, m or s)")
    return moment


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    for day in range(moment.day, 27, -1):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    return moment.replace(year=year, month=month, day=min(moment.day, 28))


class Placeholders:
    """The placeholder values of one script run (fixed on first use)."""

    def __init__(self, *, now: datetime | None = None, seed: int | None = None) -> None:
        self.now = (now or datetime.now().astimezone()).replace(microsecond=0)
        self._random = random.Random(seed)
        self._fixed: dict[str, str] = {}
        self._uuid = uuid.UUID(int=self._random.getrandbits(128), version=4) if seed is not None else uuid.uuid4()

    def value(self, token: str, lookup: Lookup) -> str | None:
        parts = [p.strip() for p in token.split(",")]
        head = parts[0]
        if match := _UNIQUE.fullmatch(head):
            if head not in self._fixed:
                alphabet = _ALPHABETS[match.group(1)]
                self._fixed[head] = "".join(self._random.choice(alphabet) for _ in range(int(match.group(2))))
            return self._fixed[head]
        if head in ("UUID", "UUID-ST"):
            return str(self._uuid)
        if head in ("UUID-NODASH", "UUID-ST-NODASH"):
            return self._uuid.hex
        if head in ("CURRENTDATE", "CURRENTDATETIME"):
            moment = _shift(self.now, parts[1:])
            return moment.date().isoformat() if head == "CURRENTDATE" else moment.isoformat()
        if head in ("DATE", "DATETIME") and len(parts) >= 2:
            base = lookup(parts[1])
            if base is None:
                return None
            moment = datetime.fromisoformat(base) if "T" in base else datetime.combine(
                date.fromisoformat(base), datetime.min.time())
            moment = _shift(moment, parts[2:])
            return moment.date().isoformat() if head == "DATE" else moment.isoformat()
        return None

    def expand(self, text: str, lookup: Lookup, missing: set[str] | None = None) -> str:
        """``text`` with every ``${…}`` replaced: variables first, then placeholders.

        Tokens neither knows are left as written and added to ``missing``.
        """

        def replace(match: re.Match[str]) -> str:
            token = match.group(1).strip()
            found = lookup(token)
            if found is None:
                try:
                    found = self.value(token, lookup)
                except ValueError as error:
                    raise ValueError(f"${{{token}}}: {error}") from None
            if found is None:
                if missing is not None:
                    missing.add(token)
                return match.group(0)
            return found

        return TOKEN.sub(replace, text)

    def expand_all(self, value: Any, lookup: Lookup, missing: set[str] | None = None) -> Any:
        """Every string inside a JSON value expanded (fixtures: values, never keys)."""
        if isinstance(value, str):
            return self.expand(value, lookup, missing) if "${" in value else value
        if isinstance(value, dict):
            return {k: self.expand_all(v, lookup, missing) for k, v in value.items()}
        if isinstance(value, list):
            return [self.expand_all(v, lookup, missing) for v in value]
        return value

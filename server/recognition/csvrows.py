"""The import CSV files read into catalogue items and qualifications (pure; issue 15 §3).

- catalogue: ``item_system,item_code,item_name,category,validity_days,scope``
- qualifications: ``institution,item_system,item_code,valid_from,valid_to``

A header row naming the columns is required (in any order; extra columns are ignored). A file with
a missing column is refused as a whole (400); a bad row is rejected with its reason and the rest are
read. Text is UTF-8 (with or without BOM), else GB18030.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from typing import Generic, TypeVar

from server.errors import BadRequest
from server.recognition.model import SCOPES, Category, Item

CATALOG_COLUMNS = ("item_system", "item_code", "item_name", "category", "validity_days", "scope")
QUALIFICATION_COLUMNS = ("institution", "item_system", "item_code", "valid_from", "valid_to")
CATEGORIES: dict[str, Category] = {"laboratory": "laboratory", "检验": "laboratory", "imaging": "imaging",
                                   "检查": "imaging"}
MAX_VALIDITY_DAYS = 3660


@dataclass(frozen=True, slots=True)
class Rejected:
    row: int
    """Line number in the file (the header is line 1)."""
    reason: str


@dataclass(frozen=True, slots=True)
class QualificationRow:
    institution: str
    system: str
    code: str
    valid_from: date
    valid_to: date


T = TypeVar("T")


@dataclass
class Read(Generic[T]):
    rows: list[tuple[int, T]]
    rejected: list[Rejected]
    read: int


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError:
            raise BadRequest("The CSV body is neither UTF-8 nor GB18030 text") from None


def _table(data: bytes, columns: tuple[str, ...]) -> tuple[dict[str, int], list[tuple[int, list[str]]]]:
    text = decode(data)
    lines = list(csv.reader(io.StringIO(text)))
    numbered = [(n, row) for n, row in enumerate(lines, start=1) if any(cell.strip() for cell in row)]
    if not numbered:
        raise BadRequest(f"The CSV body is empty; expected a header row: {','.join(columns)}")
    _, header = numbered[0]
    names = [h.strip().lower() for h in header]
    missing = [c for c in columns if c not in names]
    if missing:
        raise BadRequest(f"The CSV header lacks the column(s) {', '.join(missing)}; expected {','.join(columns)}")
    return {c: names.index(c) for c in columns}, numbered[1:]


def _cells(row: list[str], at: dict[str, int]) -> dict[str, str] | str:
    if len(row) < max(at.values()) + 1:
        return f"{len(row)} column(s), expected at least {max(at.values()) + 1}"
    cells = {name: row[i].strip() for name, i in at.items()}
    empty = [name for name, value in cells.items() if not value]
    return f"empty {', '.join(empty)}" if empty else cells


def read_catalog(data: bytes) -> Read[Item]:
    at, rows = _table(data, CATALOG_COLUMNS)
    out: Read[Item] = Read([], [], len(rows))
    seen: dict[tuple[str, str], int] = {}
    for line, row in rows:
        cells = _cells(row, at)
        if isinstance(cells, str):
            out.rejected.append(Rejected(line, cells))
            continue
        category = CATEGORIES.get(cells["category"].lower())
        scope = SCOPES.get(cells["scope"].lower())
        problem = None
        try:
            days = int(cells["validity_days"])
        except ValueError:
            days = -1
        if category is None:
            problem = f"category '{cells['category']}' is not laboratory or imaging"
        elif not 0 < days <= MAX_VALIDITY_DAYS:
            problem = f"validity_days '{cells['validity_days']}' is not a whole number of days from 1 to " \
                      f"{MAX_VALIDITY_DAYS}"
        elif scope is None:
            problem = f"scope '{cells['scope']}' is not national, province, city or 医联体"
        elif (cells["item_system"], cells["item_code"]) in seen:
            problem = f"item {cells['item_system']}|{cells['item_code']} is already on line " \
                      f"{seen[(cells['item_system'], cells['item_code'])]}"
        if problem is not None or category is None or scope is None:
            out.rejected.append(Rejected(line, problem or "invalid row"))
            continue
        seen[(cells["item_system"], cells["item_code"])] = line
        out.rows.append((line, Item(cells["item_system"], cells["item_code"], cells["item_name"], category, days,
                                    scope)))
    return out


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        return None


def read_qualifications(data: bytes) -> Read[QualificationRow]:
    at, rows = _table(data, QUALIFICATION_COLUMNS)
    out: Read[QualificationRow] = Read([], [], len(rows))
    seen: dict[tuple[str, str, str, date], int] = {}
    for line, row in rows:
        cells = _cells(row, at)
        if isinstance(cells, str):
            out.rejected.append(Rejected(line, cells))
            continue
        start, end = _date(cells["valid_from"]), _date(cells["valid_to"])
        if start is None or end is None:
            bad = "valid_from" if start is None else "valid_to"
            out.rejected.append(Rejected(line, f"{bad} '{cells[bad]}' is not a date (YYYY-MM-DD)"))
            continue
        if end < start:
            out.rejected.append(Rejected(line, f"valid_to {end} is before valid_from {start}"))
            continue
        key = (cells["institution"], cells["item_system"], cells["item_code"], start)
        if key in seen:
            out.rejected.append(Rejected(line, f"the same institution, item and valid_from are on line {seen[key]}"))
            continue
        seen[key] = line
        out.rows.append((line, QualificationRow(cells["institution"], cells["item_system"], cells["item_code"],
                                                start, end)))
    return out

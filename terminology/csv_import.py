"""Turn a CSV code table into a CodeSystem and its all-codes ValueSet (``yidang terminology load FILE``).

Regional platforms receive their code tables (local lab item catalogues, the rest of a WS 364
value domain, a provincial 互认项目目录) as spreadsheets. Columns, by header name:

- ``code`` (required) and ``display`` (required; the display in the table's own language);
- ``parent`` (optional): the code of the parent concept, giving an is-a hierarchy by nesting;
- ``definition`` (optional);
- ``display_<lang>`` (optional, e.g. ``display_en``): a designation in that language;
- any other column: a string concept property with the column name as its code (empty cells skipped).

Files saved by Excel on Chinese Windows are often GB18030/GBK rather than UTF-8, so the reader
tries UTF-8 (with or without BOM) first and then GB18030.
http://hl7.org/fhir/R4/codesystem.html, http://hl7.org/fhir/R4/valueset.html.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

from terminology.errors import InvalidCodeTable

RESERVED = frozenset({"code", "display", "parent", "definition"})
ENCODINGS = ("utf-8-sig", "gb18030")


def decode(data: bytes) -> str:
    """The CSV text, from UTF-8 (BOM optional) or GB18030."""
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidCodeTable("The CSV file is neither UTF-8 nor GB18030 text")


def _rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = {"code", "display"} - set(header)
    if missing:
        raise InvalidCodeTable("The CSV header needs the columns code and display "
                               f"(missing: {', '.join(sorted(missing))})")
    rows = []
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not row.get("code"):
            if any(row.values()):
                raise InvalidCodeTable(f"Line {line}: the code is empty")
            continue
        if not row.get("display"):
            raise InvalidCodeTable(f"Line {line}: code {row['code']!r} has no display")
        rows.append(row)
    return header, rows


def _concept(row: dict[str, str], extra: list[str]) -> dict[str, Any]:
    concept: dict[str, Any] = {"code": row["code"], "display": row["display"]}
    if row.get("definition"):
        concept["definition"] = row["definition"]
    designations = [{"language": col.removeprefix("display_"), "value": row[col]}
                    for col in extra if col.startswith("display_") and row.get(col)]
    if designations:
        concept["designation"] = designations
    properties = [{"code": col, "valueString": row[col]}
                  for col in extra if not col.startswith("display_") and row.get(col)]
    if properties:
        concept["property"] = properties
    return concept


def _nest(rows: list[dict[str, str]], concepts: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    parents = {row["code"]: row.get("parent") for row in rows}
    for code in parents:
        seen, current = set(), code
        while current:
            if current in seen:
                raise InvalidCodeTable(f"The parent column has a cycle through {code!r}")
            seen.add(current)
            current = parents.get(current) or ""
    roots: list[dict[str, Any]] = []
    for row in rows:
        parent = row.get("parent")
        if not parent:
            roots.append(concepts[row["code"]])
            continue
        if parent not in concepts:
            raise InvalidCodeTable(f"Code {row['code']!r} names parent {parent!r}, which is not in the table")
        concepts[parent].setdefault("concept", []).append(concepts[row["code"]])
    return roots


def read_csv(source: Path | str | bytes, *, url: str, name: str, title: str | None = None,
             version: str | None = None, language: str = "zh-CN", valueset_url: str | None = None,
             status: str = "active") -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a code table into ``(CodeSystem, ValueSet)``; ``source`` is a path, raw bytes or text.

    ``url`` is the code system uri (``urn:oid:...`` for national tables); the ValueSet url
    defaults to ``url`` + ``/vs`` for http(s) urls and must be given for ``urn:`` ones.
    """
    if isinstance(source, Path):
        text = decode(source.read_bytes())
    elif isinstance(source, bytes):
        text = decode(source)
    else:
        text = source
    header, rows = _rows(text)
    duplicates = sorted(code for code, n in Counter(row["code"] for row in rows).items() if n > 1)
    if duplicates:
        raise InvalidCodeTable(f"Duplicate codes in the table: {', '.join(duplicates[:10])}")
    extra = [col for col in header if col and col not in RESERVED]
    concepts = {row["code"]: _concept(row, extra) for row in rows}
    hierarchical = any(row.get("parent") for row in rows)
    roots = _nest(rows, concepts)
    if valueset_url is None:
        if url.startswith("urn:"):
            raise InvalidCodeTable("A urn: code system needs an explicit ValueSet url")
        valueset_url = url.rstrip("/") + "/vs"
    identifier = name.replace(" ", "-").replace("_", "-").lower()[:64]
    cs: dict[str, Any] = {"resourceType": "CodeSystem", "id": identifier, "language": language, "url": url}
    if version:
        cs["version"] = version
    cs.update({"name": name, "title": title or name, "status": status, "caseSensitive": True,
               "valueSet": valueset_url, "content": "complete", "count": len(rows)})
    if hierarchical:
        cs["hierarchyMeaning"] = "is-a"
    properties = [{"code": col, "type": "string"} for col in extra if not col.startswith("display_")]
    if properties:
        cs["property"] = properties
    cs["concept"] = roots
    vs: dict[str, Any] = {"resourceType": "ValueSet", "id": identifier, "language": language, "url": valueset_url}
    if version:
        vs["version"] = version
    vs.update({"name": name, "title": title or name, "status": status,
               "compose": {"include": [{"system": url}]}})
    return cs, vs

"""Reading local data-set files: CSV (UTF-8 or GB18030), JSON (array of objects), XML (<records><record>).

Every reader yields ``(headers, rows)``: the column names as found and each row as a header → text
mapping. CSV bytes are decoded as UTF-8 (with or without BOM) and, when that fails, as GB18030, the
encoding most Chinese hospital systems export in.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from xml.etree import ElementTree

Rows = tuple[list[str], list[dict[str, str]]]


def decode(data: bytes) -> str:
    """UTF-8 (BOM stripped) when valid, else GB18030 (a superset of GBK and GB2312)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("gb18030")


def read_csv(data: bytes) -> Rows:
    reader = csv.DictReader(io.StringIO(decode(data), newline=""))
    rows = [{k: (v or "") for k, v in row.items() if k is not None} for row in reader]
    return list(reader.fieldnames or []), rows


def _text(value: object) -> str:
    return "" if value is None else str(value)


def read_json(data: bytes) -> Rows:
    parsed = json.loads(decode(data))
    if not isinstance(parsed, list) or not all(isinstance(r, dict) for r in parsed):
        raise ValueError("a JSON data set must be an array of objects")
    headers: dict[str, None] = {}
    for row in parsed:
        headers.update(dict.fromkeys(row))
    return list(headers), [{k: _text(v) for k, v in row.items()} for row in parsed]


def read_xml(data: bytes) -> Rows:
    root = ElementTree.fromstring(data)
    headers: dict[str, None] = {}
    rows: list[dict[str, str]] = []
    for record in root.iter("record"):
        row = {child.tag: (child.text or "") for child in record}
        headers.update(dict.fromkeys(row))
        rows.append(row)
    return list(headers), rows


def sniff(data: bytes, name: str = "") -> str:
    """``csv``, ``json`` or ``xml`` from the file name, else from the first non-blank byte."""
    lowered = name.lower()
    for kind in ("csv", "json", "xml"):
        if lowered.endswith("." + kind):
            return kind
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return {b"[": "json", b"<": "xml"}.get(head, "csv")


def read(data: bytes, kind: str) -> Rows:
    """The rows of ``data`` in format ``kind`` (``ValueError`` for malformed input)."""
    try:
        return {"csv": read_csv, "json": read_json, "xml": read_xml}[kind](data)
    except (ElementTree.ParseError, json.JSONDecodeError, csv.Error) as exc:
        raise ValueError(f"cannot read the {kind} data: {exc}") from exc


def iter_rows(data: bytes, kind: str) -> Iterator[dict[str, str]]:
    yield from read(data, kind)[1]

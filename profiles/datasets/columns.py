"""The CSV columns of every data set, as a Markdown reference generated from the map files.

``python -m profiles.datasets.columns > profiles/datasets/COLUMNS.md`` writes the file shipped
beside the maps; a test keeps it equal to what the maps say, so the reference cannot go stale.
A column header may be the element id, its Chinese name or one of its aliases.
"""

from __future__ import annotations

from profiles.datasets import spec

FORMATS = "D8 = 日期 YYYYMMDD; DT15 = 日期时间 YYYYMMDDThhmmss; N1 = one digit; N..4,1 = up to 4 digits, 1 decimal; " \
          "AN..18 = up to 18 letters/digits; A..50 = up to 50 characters; L = T/F"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def dataset_columns(dataset: spec.DataSet) -> str:
    lines = [f"## `{dataset.name}` — {dataset.title}", ""]
    if dataset.standard:
        lines += [dataset.standard, ""]
    lines += ["| column (element id) | 中文名 / aliases | format | required | value domain | FHIR |",
              "|---|---|---|---|---|---|"]
    for e in dataset.elements:
        names = " / ".join([e.name, *e.aliases])
        domain = ""
        if e.domain is not None:
            table = e.domain.valueset.rsplit("/", 1)[-1] if e.domain.valueset else None
            domain = f"`{e.domain.system}`" + (f" ({table})" if table else "")
        targets = ", ".join(dict.fromkeys(f"`{w.resource}.{w.path}`" for w in e.writes)) or "QC only"
        lines.append(f"| `{e.id}` | {_cell(names)} | {e.format} | {'yes' if e.required else ''} | {domain} "
                     f"| {_cell(targets)} |")
    if dataset.one_of:
        groups = "; ".join(" or ".join(f"`{i}`" for i in group) for group in dataset.one_of)
        lines += ["", f"At least one of: {groups}."]
    return "\n".join(lines) + "\n"


def reference() -> str:
    parts = [
        "# Data-set columns (generated from `maps/`; do not edit)",
        "",
        "Regenerate with `python -m profiles.datasets.columns > profiles/datasets/COLUMNS.md`. A CSV "
        "column header may be the element id, its 中文名 or an alias; the source institution comes from "
        "the `医疗卫生机构代码` column or `--source`. Formats (WS 363): " + FORMATS + ".",
        "",
    ]
    parts += [dataset_columns(spec.load(name)) for name in spec.names()]
    return "\n".join(parts)


if __name__ == "__main__":
    print(reference(), end="")

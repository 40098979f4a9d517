"""Han names split into family and given name (profiles/datasets/names.py)."""

from __future__ import annotations

import pytest

from profiles.datasets.names import split_chinese_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("王芳", ("王", "芳")),
        ("李建国", ("李", "建国")),
        (" 张三 ", ("张", "三")),
        ("欧阳娜娜", ("欧阳", "娜娜")),
        ("司马光", ("司马", "光")),
        ("上官婉儿", ("上官", "婉儿")),
        ("诸葛亮", ("诸葛", "亮")),
        ("欧阳", ("欧", "阳")),  # two characters: a one-character surname and a given name
        ("买买提·艾力", None),  # minority names with a middle dot keep text only
        ("John Smith", None),
        ("王", None),
        ("王芳2", None),
        ("", None),
        ("王 芳", None),
    ],
)
def test_split(text: str, expected: tuple[str, str] | None) -> None:
    assert split_chinese_name(text) == expected

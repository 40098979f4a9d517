"""The shipped column reference (profiles/datasets/COLUMNS.md) says what the maps say."""

from __future__ import annotations

from pathlib import Path

from profiles.datasets import spec
from profiles.datasets.columns import reference

SHIPPED = Path(spec.__file__).with_name("COLUMNS.md")


def test_columns_reference_is_current() -> None:
    assert SHIPPED.read_text(encoding="utf-8") == reference(), (
        "regenerate: python -m profiles.datasets.columns > profiles/datasets/COLUMNS.md")


def test_every_data_set_and_element_is_listed() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    for name in spec.names():
        assert f"## `{name}`" in text
        for element in spec.load(name).elements:
            assert f"| `{element.id}` |" in text

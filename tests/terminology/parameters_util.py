"""Reading FHIR Parameters in assertions."""

from __future__ import annotations

from typing import Any


def param(parameters: dict[str, Any], name: str) -> Any:
    """The value[x] of the first parameter called ``name`` (None when absent)."""
    for entry in parameters["parameter"]:
        if entry["name"] == name:
            return next((v for k, v in entry.items() if k.startswith("value")), entry.get("part"))
    return None


def params(parameters: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [entry for entry in parameters["parameter"] if entry["name"] == name]


def parts(entry: dict[str, Any]) -> dict[str, Any]:
    """A part list as {name: value[x]} (last wins)."""
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in entry["part"]}

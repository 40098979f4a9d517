"""Layers import downward only: http -> operations, bundles, jobs -> interactions -> search -> stores.

``search`` knows no database or web framework; stores know no HTTP; the ``profiles`` and
``terminology`` packages stand on their own. Checked by reading every module's imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "server/search": ("pymongo", "sqlite3", "fastapi", "starlette", "server.stores.sqlite", "server.stores.mongo",
                      "server.http", "server.interactions", "server.bundles"),
    "server/stores": ("fastapi", "starlette", "server.http", "server.interactions", "server.bundles"),
    "server/interactions": ("fastapi", "starlette", "server.http", "server.bundles", "pymongo", "sqlite3"),
    "server/bundles": ("fastapi", "starlette", "server.http", "pymongo", "sqlite3"),
    "server/jobs": ("fastapi", "starlette", "server.http", "server.operations", "pymongo", "sqlite3"),
    "server/operations": ("fastapi", "starlette", "server.http", "pymongo", "sqlite3"),
    "server/fhir": ("fastapi", "starlette", "server.http", "server.interactions", "server.stores", "pymongo"),
    "profiles": ("server",),
    "terminology": ("server",),
    "conformance": ("server",),
}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


CASES = [(folder, path) for folder in FORBIDDEN for path in sorted((ROOT / folder).rglob("*.py"))]


@pytest.mark.parametrize(("folder", "path"), CASES, ids=[str(p.relative_to(ROOT)) for _, p in CASES])
def test_module_imports_only_downward(folder: str, path: Path) -> None:
    bad = sorted(
        name for name in imports(path)
        for banned in FORBIDDEN[folder]
        if name == banned or name.startswith(banned + ".")
    )
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}, which sits above or beside its layer"

"""Layers import downward only, checked module by module.

Every module of ``server``, ``profiles``, ``terminology`` and ``conformance`` has a rank (the
longest prefix of its dotted name in :data:`RANKS`); a module may import a module of a *higher*
rank (a lower layer), or a module of its own group. Relative imports are resolved before the
check. Two groups of the same rank are siblings and may not import each other: the SQLite and
MongoDB stores know nothing of one another. Besides ranks, a few third-party packages are banned
from layers that must not know them (``search`` knows no database or web framework, stores know
no HTTP).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("server", "profiles", "terminology", "conformance")

RANKS: dict[str, int] = {
    # entry points
    "server.asgi": 0,
    "server.cli": 0,
    # CLI commands that run the app in-process
    "server.ingest_local": 1,
    "server.export_local": 1,
    "server.terminology_load": 1,
    "server.load_runner": 2,
    "server.app": 3,
    "server.load": 3,
    # the request path, top to bottom
    "server.http": 4,
    "server.operations": 5,
    "server.jobs": 6,
    "server.bulk": 6,  # bulk data (issue 16 §2): the persisted request and the NDJSON files
    "server.bulk.jobs": 5,  # the $export/$import job kinds (on server.jobs) and their status/files for HTTP
    "server.bulk.cli": 1,  # yidang export / import: a Bulk Data client, or the app in-process
    "server.bundles": 6,
    "server.auth": 6,
    "server.identity": 6,  # the master patient index (issue 15): Persons, $match scoring, $merge
    "server.recognition": 6,  # mutual recognition (issue 15 §3): catalogue, status rules, decisions, statistics
    "server.recognition.cli": 1,  # yidang recognition import: runs the app in-process
    "server.transfer": 6,  # record transfer and data return (issue 16 §1, §3); handlers registered by operations
    "server.interactions": 7,
    "server.audit": 7,  # AuditEvents: may use stores, search, fhir, access; the token endpoints may call it
    "server.stores.sqlite": 8,
    "server.stores.mongo": 8,
    "server.access": 8,
    "server.consent": 9,  # Consent decisions (pure): the policy compiles them
    "server.consent.load": 6,  # fetches a request's Consents from the store; called by server.http
    "server.grading": 8,  # data grading and masking (issue 14 §3): pure, over a policy file
    "server.stores": 9,
    "server.search": 10,
    "server.fhir": 11,
    "server.hooks": 12,
    "server.settings": 12,
    "server.errors": 13,
    "server": 14,  # the package itself: __version__ only
    # stand-alone packages the server builds on
    "conformance": 20,
    "profiles": 21,
    "terminology": 22,
}

BANNED = {
    "server.search": ("pymongo", "sqlite3", "fastapi", "starlette", "httpx"),
    "server.stores": ("fastapi", "starlette"),
    "server.interactions": ("fastapi", "starlette", "pymongo", "sqlite3"),
    "server.bundles": ("fastapi", "starlette", "pymongo", "sqlite3"),
    "server.jobs": ("fastapi", "starlette", "pymongo", "sqlite3"),
    "server.operations": ("fastapi", "starlette", "pymongo", "sqlite3"),
    "server.fhir": ("fastapi", "starlette", "pymongo", "sqlite3"),
    "server.access": ("fastapi", "starlette", "pymongo", "sqlite3", "httpx", "jwt"),
    "server.grading": ("fastapi", "starlette", "pymongo", "sqlite3", "httpx"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def group(name: str) -> str | None:
    """The longest prefix of ``name`` that has a rank."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in RANKS:
            return prefix
    return None


def imports(path: Path) -> set[str]:
    """Absolute names of everything ``path`` imports, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                up = package[: len(package) - (node.level - 1)]
                base = ".".join([*up, *([node.module] if node.module else [])])
            names.add(base)
            # ``from pkg import mod`` imports a module when pkg.mod is one
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if (ROOT / Path(*candidate.split("."))).with_suffix(".py").exists() or (
                    ROOT / Path(*candidate.split(".")) / "__init__.py"
                ).exists():
                    names.add(candidate)
    return names


MODULES = sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(ROOT)) for p in MODULES])
def test_every_module_is_ranked(path: Path) -> None:
    assert group(module_name(path)) is not None, f"{module_name(path)} has no rank in RANKS: give it one"


def violations(name: str, imported: set[str]) -> list[str]:
    mine = group(name)
    assert mine is not None
    bad = []
    for other in sorted(imported):
        theirs = group(other)
        if theirs is None:
            if any(other == b or other.startswith(b + ".") for key, ban in BANNED.items()
                   if mine == key or mine.startswith(key + ".") for b in ban):
                bad.append(f"{other} (banned in {mine})")
            continue
        if theirs == mine or RANKS[theirs] > RANKS[mine]:
            continue
        kind = "beside" if RANKS[theirs] == RANKS[mine] else "above"
        bad.append(f"{other} (rank {RANKS[theirs]}, {kind} {mine} at rank {RANKS[mine]})")
    return bad


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(ROOT)) for p in MODULES])
def test_module_imports_only_downward(path: Path) -> None:
    name = module_name(path)
    if group(name) is None:
        pytest.skip("unranked (reported by test_every_module_is_ranked)")
    bad = violations(name, imports(path))
    assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("server.stores.sqlite.store", "server.stores.mongo.reads"),
        ("server.stores.mongo.compile", "server.stores.sqlite.compile"),
        ("server.search.parse", "server.interactions.search"),
        ("server.interactions.read", "server.http.routes"),
        ("server.stores.base", "server.stores.sqlite.store"),
        ("profiles.validator", "server.errors"),
        ("server.search.parse", "pymongo"),
        ("server.interactions.read", "fastapi"),
    ],
)
def test_the_check_catches_planted_imports(importer: str, imported: str) -> None:
    assert violations(importer, {imported}), f"{importer} -> {imported} should be refused"


def test_the_check_allows_downward_imports() -> None:
    assert not violations("server.http.routes", {"server.interactions.read", "server.errors", "profiles.x"})
    assert not violations("server.stores.sqlite.store", {"server.stores.base", "server.search.model"})
    assert not violations("server.stores.mongo.reads", {"server.stores.mongo.compile"})

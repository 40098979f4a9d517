"""Shared fixtures: a fresh service per test over the shipped package (the package itself is shared)."""

from __future__ import annotations

import pytest

from terminology.package import Package, default_package
from terminology.service import Terminology


@pytest.fixture(scope="session")
def package() -> Package:
    return default_package()


@pytest.fixture
def term(package: Package) -> Terminology:
    """A service with empty caches and no API-added resources."""
    return Terminology(package)

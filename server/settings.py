"""Configuration: one pydantic-settings class, read from ``YIDANG_*`` environment variables and
mirrored by ``yidang serve`` flags (flags win)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="YIDANG_", frozen=True)

    store: Literal["sqlite", "mongo"] = "sqlite"
    """Which store to use; ``mongo`` is chosen automatically when ``mongodb_uri`` is set."""
    data_dir: Path = Path("data")
    """Directory of the embedded store."""
    mongodb_uri: str | None = None
    mongodb_database: str | None = None
    mongodb_query_forms: Literal["detect", "efficient", "fallback"] = "detect"
    """Query forms compiled for MongoDB: ``detect`` probes the server at start-up (see
    server/stores/mongo/capabilities.py); ``efficient`` / ``fallback`` force them."""
    base_url: str = ""
    """Public base URL used in Location headers and Bundle links; derived from the request if empty."""
    max_body_bytes: int = 16 * 1024 * 1024
    max_depth: int = 100
    """Deepest nesting of JSON objects/arrays (or XML elements) a request body may have (400 beyond);
    see :class:`server.fhir.json.Limits` for why 100."""
    max_elements: int = 1_000_000
    """Most JSON values (objects, arrays, strings, numbers, …) one request body may hold (400 beyond)."""
    max_array_length: int = 100_000
    """Most items one JSON array (a repeating element, Bundle.entry) may hold (400 beyond)."""
    default_count: int = 20
    max_count: int = 1000
    history_default_count: int = 50
    conditional_delete: Literal["not-supported", "single", "multiple"] = "multiple"
    conditional_delete_max: int = 100
    validate_on_write: bool = True
    validation: Literal["structure", "core"] = "structure"
    """What every write is checked against: ``structure`` (the R4 StructureDefinitions' elements,
    types, cardinality and formats, and required bindings to value sets that list their codes, such
    as ``Patient.gender``) or ``core`` (also their invariants and the other required and extensible
    bindings).
    Resources claiming a profile (``meta.profile``) or covered by ``required_profiles`` are always
    validated completely against those profiles; ``$validate`` always validates completely."""
    required_profiles: dict[str, list[str]] = {}
    """Profiles every write of a type must conform to, e.g. ``{"Patient": ["http://…/cn-patient"]}``
    (``YIDANG_REQUIRED_PROFILES`` as JSON)."""
    log_requests: bool = True


def resolve_store(settings: Settings) -> Settings:
    """``mongodb_uri`` alone selects MongoDB."""
    if settings.mongodb_uri and settings.store == "sqlite":
        return settings.model_copy(update={"store": "mongo"})
    return settings

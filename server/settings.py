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

    # --- access control (server/auth, server/access) -------------------------------------------
    auth: Literal["", "off", "smart"] = ""
    """``smart``: every FHIR request needs a bearer token; ``off``: open (refused by ``yidang serve``
    on a non-loopback address unless given explicitly); ``''``: not configured (open on loopback)."""
    auth_issuer: str = ""
    """``iss`` of the tokens this server issues; the base URL when empty."""
    auth_keys_dir: Path | None = None
    """Directory of the server's token-signing keys (PEM); ``<data_dir>/auth/keys`` when empty."""
    token_lifetime: int = 300
    """Seconds an access token issued to a backend-services client is valid."""
    user_token_lifetime: int = 3600
    """Seconds an access token issued to a user (authorization code) is valid."""
    clock_skew: int = 60
    """Seconds of clock difference allowed when checking ``exp``/``nbf``/``iat``."""
    oidc_issuers: list[dict[str, object]] = []
    """External OpenID Connect issuers whose tokens are accepted beside ours
    (``YIDANG_OIDC_ISSUERS`` as JSON): ``issuer``, ``audience``, ``jwks_url`` or ``jwks_file``, and
    ``claims`` mapping our names (``role``, ``institution``, ``scope``, ``patient``, ``subject``)
    to the issuer's claim names."""
    public_readyz: bool = True
    """``/readyz`` answers without a token (load balancers probe it)."""
    public_metrics: bool = False
    """``/metrics`` answers without a token (otherwise: role ``platform``)."""
    cors_origins: list[str] = []
    """Browser origins allowed to call the API (CORS); ``["*"]`` allows any (no credentials)."""
    rate_limits: dict[str, float] = {"platform": 2000, "institution": 500, "district": 200, "auditor": 100,
                                     "resident": 20}
    """Requests per second per client, by role (token bucket; bursts of twice the rate); 0 = no limit."""

    # --- audit (server/audit, issue 14 §2) -----------------------------------------------------
    audit: bool | None = None
    """Write an AuditEvent for every request (``YIDANG_AUDIT``); unset: on exactly when ``auth`` is
    ``smart``. Off costs nothing per request."""
    audit_queue_size: int = 100_000
    """Events spooled but not yet in the store beyond which requests are answered 503 (Retry-After).
    They wait on disk (about 1.5 kB each), not in memory."""
    audit_batch_size: int = 500
    """Most events the writer stores in one store session."""
    audit_batch_interval: float = 0.05
    """Seconds without a request after which the server counts as idle and the writer stores the
    events that wait."""
    audit_max_delay: float = 30.0
    """Longest an event waits in the spool while requests keep the server busy; after it (or once
    half the queue is used) the writer stores at full speed. Readers of AuditEvents never wait for
    it: they first have everything answered before them stored."""
    audit_spool_dir: Path | None = None
    """Where events are spooled before the response; ``<data_dir>/audit`` when empty. Also
    holds the Ed25519 key that signs checkpoints and prune anchors."""
    audit_fsync: bool = False
    """fsync the spool before answering. Off (the default), an answered request's event is written to
    the spool (the operating system's page cache) before the response: it survives the death of the
    process (kill -9), as the embedded store's own commits do (WAL, ``synchronous=NORMAL``), not a power
    cut. On, it survives a power cut too, at the cost of waiting for a (group) fsync per request."""
    audit_checkpoint_every: int = 1000
    """A signed checkpoint of the chain every this many events …"""
    audit_checkpoint_seconds: float = 300.0
    """… or after this many seconds with new events."""

    # --- consent (server/consent, issue 14 §1) -------------------------------------------------
    consent_default: Literal["opt-out", "opt-in"] = "opt-out"
    """The regional default where no Consent of the patient decides an access to another
    institution's data about him or her: ``opt-out`` permits (unless the resident denies), ``opt-in``
    denies (unless the resident permits)."""
    consent_break_glass_roles: list[str] = ["institution"]
    """Roles whose requests declaring purpose of use ``BTG`` or ``ETREAT`` override a denying Consent
    (break-glass: flagged and always audited); institution clinicians by default."""

    # --- data grading and masking (server/grading, issue 14 §3) ---------------------------------
    grading: bool = True
    """Stamp every write's GB/T 39725 level and category in ``meta.security`` and mask what is above
    the reader's clearance in every response (with authorization off nothing is masked)."""
    grading_policy: Path | None = None
    """The grading policy (YAML); the shipped ``server/grading/policy.yaml`` when empty."""
    clearance: dict[str, int] = {"platform": 5, "institution": 4, "district": 3, "resident": 5, "auditor": 2}
    """The highest data level each role reads unmasked (``YIDANG_CLEARANCE`` as JSON)."""
    clearance_clients: dict[str, int] = {}
    """Per-client clearances overriding the role's, by client id (``YIDANG_CLEARANCE_CLIENTS`` as JSON)."""

    # --- bulk data $export / $import (server/bulk, issue 16 §2) --------------------------------
    bulk_dir: Path | None = None
    """Where export files are written (one directory per job); ``<data_dir>/bulk`` when empty."""
    bulk_retention: float = 86400.0
    """Seconds a finished bulk job's files and status are kept; then both are removed (status 404)."""
    bulk_gzip: bool = False
    """Store export files gzip-compressed (served with ``Content-Encoding: gzip`` to clients that
    accept it, decompressed on the fly for the others)."""
    bulk_import_dirs: list[Path] = []
    """Directories ``$import`` may read ``input`` files from (``file://`` URLs or paths); empty: none,
    only NDJSON uploads."""
    bulk_page_size: int = 1000
    """Resources per store page (and per saved cursor) of an export: what bounds its memory."""
    bulk_file_resources: int = 500_000
    """Resources per export file; a type with more is split over ``Type-2.ndjson`` …"""
    job_lease_seconds: float = 60.0
    """A background job whose process died is taken over after this many seconds without progress."""

    # --- record transfer (server/transfer, issue 16 §1 档案转迁) -----------------------------------
    transfer_record_number: Literal["keep", "reissue"] = "keep"
    """What ``Patient/$transfer`` does with the 健康档案编号 (``urn:oid:2.16.156.10011.1.2``): ``keep`` it, or
    ``reissue`` one for the receiving district (the old one stays on the Patient with ``use: old``)."""


def resolve_store(settings: Settings) -> Settings:
    """``mongodb_uri`` alone selects MongoDB."""
    if settings.mongodb_uri and settings.store == "sqlite":
        return settings.model_copy(update={"store": "mongo"})
    return settings

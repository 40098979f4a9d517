"""Registered OAuth clients (kv space ``clients``): backend services with a JWKS (inline or by URL),
and authorization-code clients (confidential with a key, or public with PKCE only).

Every client has one role and one institution (server.access.principal). Removing a client makes
its tokens stop verifying: :data:`generation` tells the token service of this process at once,
other processes notice within a second.
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, cast
from urllib.parse import urlsplit

from server.access.principal import ROLES, Role
from server.auth import scopes
from server.errors import BadRequest, Conflict
from server.stores.base import Store

SPACE = "clients"
CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
INSTITUTION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{1,63}")
"""统一社会信用代码 (18 characters) or 医疗机构执业许可证登记号: letters and digits, no spaces (it
becomes part of ``meta.source`` and a tag code)."""
PATIENT_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
ASSERTION_ALGS = ("RS384", "ES384")
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k", "oth")

generation = 0
"""Bumped by every change through this process, so cached client look-ups are dropped at once."""


@dataclass(frozen=True)
class ClientRecord:
    id: str
    role: Role
    institution: str
    scope: str
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    patient: str | None = None
    redirect_uris: tuple[str, ...] = ()
    """For authorization-code clients."""
    public: bool = False
    """A public client: PKCE only, no key."""
    created: int = field(default=0)
    """Microseconds since 1970."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "role": self.role, "institution": self.institution,
                               "scope": self.scope, "created": self.created}
        if self.jwks is not None:
            out["jwks"] = self.jwks
        if self.jwks_url is not None:
            out["jwks_url"] = self.jwks_url
        if self.patient is not None:
            out["patient"] = self.patient
        if self.redirect_uris:
            out["redirect_uris"] = list(self.redirect_uris)
        if self.public:
            out["public"] = True
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClientRecord:
        return cls(id=str(data["id"]), role=cast(Role, data["role"]), institution=str(data["institution"]),
                   scope=str(data.get("scope", "")), jwks=data.get("jwks"), jwks_url=data.get("jwks_url"),
                   patient=data.get("patient"), redirect_uris=tuple(data.get("redirect_uris") or ()),
                   public=bool(data.get("public", False)), created=int(data.get("created", 0)))


def patient_id(value: str) -> str:
    """``Patient/ID`` or ``ID`` → ``ID`` (the form stored and put in the ``patient`` claim)."""
    return value.removeprefix("Patient/")


def is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def check_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return
    raise BadRequest(f"{what} must be an https URL (http only on loopback): '{url}'", expression=(what,))


def check_jwks(jwks: Any) -> None:
    """A public JWKS with at least one key usable for RS384 or ES384 client assertions."""
    from jwt import PyJWK
    from jwt.exceptions import PyJWKError, PyJWTError

    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise BadRequest("jwks must be a JWK Set: {\"keys\": [...]} with at least one key", expression=("jwks",))
    usable = 0
    for n, key in enumerate(jwks["keys"]):
        if not isinstance(key, dict):
            raise BadRequest(f"jwks key {n} is not a JSON object", expression=("jwks",))
        secret = [m for m in PRIVATE_MEMBERS if m in key]
        if secret:
            raise BadRequest(f"jwks key {n} holds private or secret key material ({', '.join(secret)}): "
                             "register the public key only", expression=("jwks",))
        kty, alg = key.get("kty"), key.get("alg")
        if kty == "RSA" and alg in (None, "RS384"):
            wanted = "RS384"
        elif kty == "EC" and key.get("crv") == "P-384" and alg in (None, "ES384"):
            wanted = "ES384"
        else:
            continue
        try:
            PyJWK(key, algorithm=wanted)
        except (PyJWKError, PyJWTError, ValueError, TypeError, KeyError) as error:
            raise BadRequest(f"jwks key {n} is not a valid {kty} public key: {error}", expression=("jwks",)) from None
        usable += 1
    if not usable:
        raise BadRequest("jwks has no RSA (RS384) or EC P-384 (ES384) public key", expression=("jwks",))


def check_client(record: ClientRecord) -> None:
    """BadRequest naming the first field that is not acceptable."""
    if not CLIENT_ID.fullmatch(record.id):
        raise BadRequest(f"client id '{record.id}' must be 1-128 letters, digits or . _ : - (no spaces)",
                         expression=("id",))
    if record.role not in ROLES:
        raise BadRequest(f"role '{record.role}' is not one of {', '.join(ROLES)}", expression=("role",))
    if not INSTITUTION.fullmatch(record.institution or ""):
        raise BadRequest(f"institution '{record.institution}' must be the institution's identifier "
                         "(统一社会信用代码 or 医疗机构执业许可证登记号: letters and digits, no spaces)",
                         expression=("institution",))
    try:
        scopes.check(record.scope)
    except ValueError as error:
        raise BadRequest(f"scope: {error}", expression=("scope",)) from None
    if record.patient is not None:
        if record.role != "resident":
            raise BadRequest("patient binds a client of role resident only", expression=("patient",))
        if not PATIENT_ID.fullmatch(record.patient):
            raise BadRequest(f"patient '{record.patient}' is not a Patient id (Patient/ID)", expression=("patient",))
    for uri in record.redirect_uris:
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            raise BadRequest(f"redirect URI '{uri}' must be an absolute http(s) URL without a fragment",
                             expression=("redirect_uris",))
    if record.public:
        if record.jwks is not None or record.jwks_url is not None:
            raise BadRequest("a public client has no key (jwks/jwks_url)", expression=("public",))
        if not record.redirect_uris:
            raise BadRequest("a public client needs at least one redirect URI", expression=("redirect_uris",))
        return
    if (record.jwks is None) == (record.jwks_url is None):
        raise BadRequest("give exactly one of jwks (inline JWK Set) and jwks_url", expression=("jwks",))
    if record.jwks is not None:
        check_jwks(record.jwks)
    if record.jwks_url is not None:
        check_url(record.jwks_url, "jwks_url")


def _changed() -> None:
    global generation
    generation += 1


async def add_client(store: Store, record: ClientRecord) -> None:
    """Register ``record`` (checked); Conflict when the id exists."""
    check_client(record)
    if not record.created:
        record = replace(record, created=time.time_ns() // 1000)
    if not await store.kv_put(SPACE, record.id, record.to_json(), create_only=True):
        raise Conflict(f"client '{record.id}' exists")
    _changed()


async def get_client(store: Store, client_id: str) -> ClientRecord | None:
    data = await store.kv_get(SPACE, client_id)
    return ClientRecord.from_json(data) if data is not None else None


async def list_clients(store: Store) -> list[ClientRecord]:
    return [ClientRecord.from_json(v) for _, v in await store.kv_list(SPACE)]


async def remove_client(store: Store, client_id: str) -> bool:
    """Remove the client; its tokens stop verifying (at once in this process, ≤ 1 s elsewhere)."""
    removed = await store.kv_delete(SPACE, client_id)
    _changed()
    return removed

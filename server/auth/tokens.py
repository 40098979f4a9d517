"""Access tokens: issued as RS256 JWTs signed by the server's newest key, verified into a
:class:`~server.access.principal.Principal`.

A token is accepted when it is ours (``iss`` = ``settings.auth_issuer`` or the base URL, ``aud`` =
the FHIR base URL, RS256 only, a ``kid`` of the key ring, ``exp``/``nbf``/``iat`` within
``settings.clock_skew``, its ``jti`` not revoked, its client still registered) or an external
OpenID Connect issuer's (:mod:`server.auth.external`). Anything else is
:class:`~server.errors.Unauthenticated`.

Verifying the same string again is answered from an LRU cache until the token expires; the
revocation and client checks behind it are re-done at most a second later (at once after a
revocation or client change through this process), so those take effect within a second everywhere.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
from jwt.exceptions import InvalidTokenError

from server.access.principal import ROLES, Principal, Role
from server.auth import clients
from server.auth.external import ExternalIssuer, issuers, verify_external
from server.auth.jwks import JwksCache
from server.auth.keys import KeyRing
from server.consent.purpose import CLAIM as PURPOSE_CLAIM
from server.consent.purpose import PURPOSES
from server.errors import Unauthenticated
from server.settings import Settings
from server.stores.base import Store

ALGORITHM = "RS256"
REVOKED = "revoked"
RECHECK_S = 1.0
CACHE_SIZE = 10_000


@dataclass
class Verified:
    principal: Principal
    claims: dict[str, Any]
    until: float
    """Seconds since 1970 after which the token is no longer accepted (exp + skew)."""
    checked: float = 0.0
    """time.monotonic() of the last revocation/client check."""
    generation: int = field(default=-1)
    kid: str | None = None
    """The key of ours that signed it (its removal ends the token at the next check)."""


def _same_authority(principal: Principal, record: dict[str, Any]) -> bool:
    """Whether the stored client or user ``record`` still has the role, institution and patient the
    token was issued with (a token never outlives a change of who its holder is)."""
    return (record.get("role") == principal.role and record.get("institution") == principal.institution
            and (record.get("patient") or None) == principal.patient)


def _role(value: object) -> Role:
    for role in ROLES:
        if role == value:
            return role
    raise Unauthenticated("The access token's role claim is not a role")


class TokenService:
    def __init__(self, settings: Settings, store: Store, keys: KeyRing, jwks: JwksCache | None = None) -> None:
        self.settings = settings
        self.store = store
        self.keys = keys
        self.jwks = jwks or JwksCache()
        self.external: dict[str, ExternalIssuer] = issuers(settings.oidc_issuers)
        self._cache: OrderedDict[tuple[str, str | None], Verified] = OrderedDict()
        self._clients: dict[str, tuple[float, int, dict[str, Any] | None]] = {}

    # --- names -------------------------------------------------------------------------------
    def audience(self, base: str | None) -> str | None:
        """The FHIR base URL tokens are for (settings.base_url, else the request's)."""
        return self.settings.base_url.rstrip("/") or (base.rstrip("/") if base else None)

    def issuer(self, base: str | None) -> str | None:
        return self.settings.auth_issuer or self.audience(base)

    # --- issuing -----------------------------------------------------------------------------
    async def issue(self, *, subject: str, client_id: str, kind: Literal["client", "user"], role: Role,
                    institution: str, scope: str, patient: str | None, lifetime: int, audience: str,
                    purpose: str | None = None) -> dict[str, Any]:
        """Sign a token; the OAuth token response body. ``purpose``: the ``purpose_of_use`` claim
        (a v3 PurposeOfUse code the token binds its requests to, issue 14)."""
        key = self.keys.signing_key()
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.settings.auth_issuer or audience, "sub": subject, "aud": audience, "iat": now, "nbf": now,
            "exp": now + lifetime, "jti": secrets.token_urlsafe(18), "scope": scope, "client_id": client_id,
            "role": role, "institution": institution, "kind": kind,
        }
        if patient:
            claims["patient"] = patient
        if purpose:
            claims[PURPOSE_CLAIM] = purpose
        token = jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": lifetime,
                                "scope": scope}
        if patient:
            body["patient"] = patient
        return body

    # --- verifying ---------------------------------------------------------------------------
    async def verify(self, token: str, base: str | None = None) -> Principal:
        """The principal of a valid token; Unauthenticated (401) naming the defect otherwise.
        ``base``: the request's base URL (needed when settings.base_url is empty)."""
        return (await self.verified(token, base)).principal

    async def verified(self, token: str, base: str | None = None) -> Verified:
        key = (token, base)
        entry = self._cache.get(key)
        now = time.time()
        if entry is not None:
            if now > entry.until:
                del self._cache[key]
                raise Unauthenticated("The access token has expired")
            self._cache.move_to_end(key)
        else:
            entry = await self._decode(token, base)
        if entry.generation != clients.generation or time.monotonic() - entry.checked >= RECHECK_S:
            await self._recheck(entry)
        if key not in self._cache:
            self._cache[key] = entry
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return entry

    async def _recheck(self, entry: Verified) -> None:
        principal = entry.principal
        generation = clients.generation
        if entry.kid is not None and self.keys.verifying_key(entry.kid) is None:
            raise Unauthenticated("The access token's kid is not a key of this server")
        if principal.token_id and await self.store.kv_get(REVOKED, principal.token_id) is not None:
            self._forget(principal.token_id)
            raise Unauthenticated("The access token has been revoked")
        if principal.kind in ("client", "user"):
            client = await self._client(principal.client_id) if principal.client_id is not None else None
            if client is None:
                raise Unauthenticated("The access token's client is no longer registered")
            holder = client if principal.kind == "client" else await self.store.kv_get("users", principal.subject)
            if holder is None:
                raise Unauthenticated(f"The access token's {principal.kind} is no longer registered")
            if not _same_authority(principal, holder):  # removed and registered anew with another role
                raise Unauthenticated(f"The access token's {principal.kind} is now registered with another role, "
                                      "institution or patient")
        entry.checked = time.monotonic()
        entry.generation = generation

    async def _client(self, client_id: str) -> dict[str, Any] | None:
        """The stored record of a client (None: not registered), cached for :data:`RECHECK_S`."""
        cached = self._clients.get(client_id)
        now = time.monotonic()
        if cached is not None and cached[1] == clients.generation and now - cached[0] < RECHECK_S:
            return cached[2]
        generation = clients.generation
        record = await self.store.kv_get(clients.SPACE, client_id)
        self._clients[client_id] = (now, generation, record)
        if len(self._clients) > CACHE_SIZE:
            self._clients.clear()
        return record

    async def _decode(self, token: str, base: str | None) -> Verified:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except InvalidTokenError:
            raise Unauthenticated("The access token is not a JWT") from None
        iss = unverified.get("iss")
        ours = self.issuer(base)
        if (ours is not None and iss == ours) or (ours is None and iss == unverified.get("aud")):
            return self._decode_ours(token, header, str(iss), self.audience(base))
        external = self.external.get(iss) if isinstance(iss, str) else None
        if external is None:
            raise Unauthenticated("The access token's issuer is not accepted")
        principal, exp = await verify_external(token, header, external, self.jwks, self.settings.clock_skew)
        claims = jwt.decode(token, options={"verify_signature": False})
        return Verified(principal, claims, exp + self.settings.clock_skew)

    def _decode_ours(self, token: str, header: dict[str, Any], iss: str, audience: str | None) -> Verified:
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(f"The access token's alg {header.get('alg')!r} is not accepted (RS256)")
        kid = header.get("kid")
        key = self.keys.verifying_key(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthenticated("The access token's kid is not a key of this server")
        try:
            claims = jwt.decode(
                token, key.private_key.public_key(), algorithms=[ALGORITHM], audience=audience, issuer=iss,
                leeway=self.settings.clock_skew,
                options={"require": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"],
                         "verify_aud": audience is not None})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("The access token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("The access token is not yet valid") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("The access token is not for this server (aud)") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("The access token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as error:
            raise Unauthenticated(f"The access token has no {error.claim} claim") from None
        except InvalidTokenError as error:
            raise Unauthenticated(f"The access token is not valid: {error}") from None
        kind = claims.get("kind")
        institution = claims.get("institution")
        if kind not in ("client", "user") or not isinstance(institution, str) or not institution:
            raise Unauthenticated("The access token lacks the kind or institution claim")
        scope = claims.get("scope")
        principal = Principal(
            subject=str(claims["sub"]), kind=kind, role=_role(claims.get("role")), institution=institution,
            scopes=tuple(scope.split()) if isinstance(scope, str) else (),
            patient=str(claims["patient"]) if claims.get("patient") else None, issuer=iss,
            token_id=str(claims["jti"]), client_id=str(claims.get("client_id") or claims["sub"]),
            purpose=_purpose_claim(claims.get(PURPOSE_CLAIM)))
        return Verified(principal, claims, float(claims["exp"]) + self.settings.clock_skew, kid=key.kid)

    # --- revocation and introspection --------------------------------------------------------
    def _forget(self, token_id: str) -> None:
        for key in [k for k, v in self._cache.items() if v.principal.token_id == token_id]:
            del self._cache[key]

    async def revoke(self, token: str, base: str | None = None) -> None:
        """Revoke a valid token until it expires (RFC 7009: an invalid token needs nothing)."""
        try:
            entry = await self.verified(token, base)
        except Unauthenticated:
            return
        token_id = entry.principal.token_id
        if token_id is None:
            return
        await self.store.kv_put(REVOKED, token_id, {"exp": int(entry.until)},
                                expires=int(entry.until) * 1_000_000 + 1_000_000)
        self._forget(token_id)

    async def introspect(self, token: str, base: str | None = None) -> dict[str, Any]:
        """RFC 7662: ``{"active": false}`` for anything not accepted, else the token's claims."""
        try:
            entry = await self.verified(token, base)
        except Unauthenticated:
            return {"active": False}
        p, c = entry.principal, entry.claims
        out: dict[str, Any] = {"active": True, "token_type": "Bearer", "scope": " ".join(p.scopes),
                               "sub": p.subject, "iss": p.issuer, "role": p.role, "institution": p.institution,
                               "kind": p.kind}
        for name in ("exp", "iat", "nbf", "aud", "jti"):
            if name in c:
                out[name] = c[name]
        if p.client_id:
            out["client_id"] = p.client_id
        if p.patient:
            out["patient"] = p.patient
        if p.kind == "user":
            out["username"] = p.subject
        return out


def _purpose_claim(value: object) -> str | None:
    """The ``purpose_of_use`` claim (issue 14): a v3 PurposeOfUse code, or the token is not valid."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in PURPOSES:
        raise Unauthenticated(f"The access token's {PURPOSE_CLAIM} claim {value!r} is not a v3 PurposeOfUse code")
    return value

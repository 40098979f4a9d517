"""External OpenID Connect issuers (Keycloak and the like) whose access tokens are accepted beside
ours, from ``settings.oidc_issuers``:

``{"issuer": "https://idp/realms/r", "audience": "yidang", "jwks_url": "…" | "jwks_file": "…",
"claims": {"role": "yidang_role", "institution": "org", "scope": "scope", "patient": "patient",
"subject": "sub"}, "algorithms": ["RS256"]}``

A claim name may be a dotted path (``realm_access.roles``); a role claim holding a list is read as
the one item that is a role (several roles: refused). A token without a role or institution is refused naming the claim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jwt
from jwt.exceptions import InvalidTokenError, PyJWKError, PyJWTError

from server.access.principal import ROLES, Principal, Role
from server.auth.jwks import JwksCache, JwksUnavailable, find_keys
from server.errors import Unauthenticated

ALGORITHMS = ("RS256", "RS384", "ES256", "ES384", "PS256")
KTY = {"RS": "RSA", "PS": "RSA", "ES": "EC"}
DEFAULT_CLAIMS = {"role": "role", "institution": "institution", "scope": "scope", "patient": "patient",
                  "subject": "sub"}


@dataclass(frozen=True)
class ExternalIssuer:
    issuer: str
    audience: str
    jwks_url: str | None = None
    jwks_file: str | None = None
    claims: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CLAIMS))
    algorithms: tuple[str, ...] = ALGORITHMS

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> ExternalIssuer:
        """ValueError naming what is missing or wrong (raised at start-up, not per request)."""
        issuer, audience = data.get("issuer"), data.get("audience")
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("oidc_issuers: an entry has no issuer")
        if not isinstance(audience, str) or not audience:
            raise ValueError(f"oidc_issuers: {issuer} has no audience")
        url, path = data.get("jwks_url"), data.get("jwks_file")
        if bool(url) == bool(path):
            raise ValueError(f"oidc_issuers: {issuer} needs exactly one of jwks_url and jwks_file")
        claims = data.get("claims") or {}
        if not isinstance(claims, dict) or set(claims) - set(DEFAULT_CLAIMS):
            raise ValueError(f"oidc_issuers: {issuer} claims may map only {', '.join(DEFAULT_CLAIMS)}")
        algorithms = tuple(data.get("algorithms") or ALGORITHMS)
        if set(algorithms) - set(ALGORITHMS):
            raise ValueError(f"oidc_issuers: {issuer} algorithms must be among {', '.join(ALGORITHMS)}")
        return cls(issuer, audience, str(url) if url else None, str(path) if path else None,
                   {**DEFAULT_CLAIMS, **{k: str(v) for k, v in claims.items()}}, algorithms)


def issuers(config: list[dict[str, object]]) -> dict[str, ExternalIssuer]:
    out = {}
    for entry in config:
        parsed = ExternalIssuer.from_config(dict(entry))
        out[parsed.issuer] = parsed
    return out


def claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


async def verify_external(token: str, header: dict[str, Any], config: ExternalIssuer, cache: JwksCache,
                          leeway: int) -> tuple[Principal, int]:
    """The Principal of a token of ``config``'s issuer and its ``exp``; Unauthenticated otherwise."""
    alg = header.get("alg")
    if alg not in config.algorithms:
        raise Unauthenticated(f"The access token's alg {alg!r} is not accepted for issuer {config.issuer}")
    kid = header.get("kid")
    try:
        jwks = await cache.get(config.jwks_url, kid=kid) if config.jwks_url else cache.read_file(
            config.jwks_file or "")
    except JwksUnavailable as error:
        raise Unauthenticated(f"The keys of issuer {config.issuer} are not available: {error}") from None
    keys = find_keys(jwks, kid if isinstance(kid, str) else None, KTY[str(alg)[:2]])
    if not keys:
        raise Unauthenticated(f"The access token's kid is not a key of issuer {config.issuer}")
    claims: dict[str, Any] | None = None
    for jwk in keys:
        try:
            claims = jwt.decode(token, key=jwt.PyJWK(jwk, algorithm=str(alg)).key, algorithms=[str(alg)],
                                audience=config.audience, issuer=config.issuer, leeway=leeway,
                                options={"require": ["iss", "aud", "exp"]})
            break
        except jwt.InvalidSignatureError:
            continue
        except (InvalidTokenError, PyJWKError, PyJWTError, ValueError, TypeError) as error:
            raise Unauthenticated(f"The access token is not valid: {error}") from None
    if claims is None:
        raise Unauthenticated("The access token's signature does not verify")
    names = config.claims
    role = claim(claims, names["role"])
    if isinstance(role, list):
        roles = {r for r in role if r in ROLES}
        if len(roles) > 1:  # which one would be a guess, and the order of a list is the issuer's
            raise Unauthenticated(f"The access token's '{names['role']}' claim names several roles "
                                  f"({', '.join(sorted(roles))}); one is expected")
        role = next(iter(roles), None)
    if role is None:
        raise Unauthenticated(f"The access token has no '{names['role']}' claim (the role)")
    if role not in ROLES:
        raise Unauthenticated(f"The access token's '{names['role']}' claim is not a role ({', '.join(ROLES)})")
    institution = claim(claims, names["institution"])
    if not isinstance(institution, str) or not institution:
        raise Unauthenticated(f"The access token has no '{names['institution']}' claim (the institution)")
    scope = claim(claims, names["scope"])
    scopes = tuple(scope.split()) if isinstance(scope, str) else tuple(str(s) for s in scope) if isinstance(
        scope, list) else ()
    subject = claim(claims, names["subject"])
    patient = claim(claims, names["patient"])
    client_id = claims.get("azp") or claims.get("client_id")
    principal = Principal(
        subject=str(subject) if subject is not None else "", kind="external", role=_role(role),
        institution=institution, scopes=scopes, patient=str(patient).removeprefix("Patient/") if patient else None,
        issuer=config.issuer, token_id=str(claims["jti"]) if claims.get("jti") else None,
        client_id=str(client_id) if client_id else None)
    return principal, int(claims["exp"])


def _role(value: str) -> Role:
    for role in ROLES:
        if role == value:
            return role
    raise AssertionError(value)

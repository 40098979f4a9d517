"""SMART Backend Services client authentication: ``private_key_jwt`` (RFC 7523, SMART App Launch
2.0 backend-services.html).

The client signs a short JWT (RS384 or ES384; RS256/ES256 also accepted) with ``iss`` = ``sub`` =
its client id, ``aud`` = this server's token URL, ``exp`` at most 5 minutes ahead and a fresh
``jti``; the server checks it against the client's registered JWKS (inline or fetched from its
``jwks_url``) and refuses a ``jti`` seen before (kv space ``jti``, kept until ``exp`` + skew,
atomic across servers). Every failure is an :class:`OAuthError` ``invalid_client``.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
from jwt.exceptions import InvalidTokenError, PyJWKError, PyJWTError

from server.auth.clients import ClientRecord, get_client
from server.auth.jwks import JwksCache, JwksUnavailable, find_keys
from server.auth.oauth import JWT_BEARER, OAuthError
from server.settings import Settings
from server.stores.base import Store

ALGORITHMS = {"RS384": "RSA", "ES384": "EC", "RS256": "RSA", "ES256": "EC"}
MAX_LIFETIME_S = 300
JTI_SPACE = "jti"


def _fail(description: str) -> OAuthError:
    return OAuthError("invalid_client", description)


async def client_keys(client: ClientRecord, cache: JwksCache, kid: str | None, kty: str) -> list[dict[str, Any]]:
    if client.jwks is not None:
        return find_keys(client.jwks, kid, kty)
    if client.jwks_url is None:
        return []
    try:
        return find_keys(await cache.get(client.jwks_url, kid=kid), kid, kty)
    except JwksUnavailable as error:
        raise _fail(f"the client's keys could not be obtained: {error}") from None


async def authenticate(store: Store, settings: Settings, cache: JwksCache, form: dict[str, str],
                       token_url: str) -> ClientRecord:
    """The registered client the form's ``client_assertion`` proves to be; OAuthError otherwise."""
    kind = form.get("client_assertion_type")
    assertion = form.get("client_assertion")
    if not assertion:
        raise _fail("client authentication required: client_assertion (private_key_jwt)")
    if kind != JWT_BEARER:
        raise _fail(f"client_assertion_type must be {JWT_BEARER}")
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except InvalidTokenError:
        raise _fail("client_assertion is not a JWT") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise _fail(f"client_assertion alg must be RS384 or ES384, not {alg!r}")
    client_id = unverified.get("iss")
    if not isinstance(client_id, str) or not client_id:
        raise _fail("client_assertion has no iss (the client id)")
    if unverified.get("sub") != client_id:
        raise _fail("client_assertion sub must equal iss (the client id)")
    if form.get("client_id") not in (None, client_id):
        raise _fail("client_id does not match the client_assertion's iss")
    client = await get_client(store, client_id)
    if client is None or client.public:
        raise _fail(f"client '{client_id}' is not registered for private_key_jwt")
    kid = header.get("kid")
    keys = await client_keys(client, cache, kid if isinstance(kid, str) else None, ALGORITHMS[alg])
    if not keys:
        raise _fail("no registered key of the client matches the client_assertion's kid"
                    if kid else "the client has no key of the assertion's type")
    claims = None
    for jwk in keys:
        try:
            key = jwt.PyJWK(jwk, algorithm=alg).key
            claims = jwt.decode(assertion, key=key, algorithms=[alg], audience=token_url, issuer=client_id,
                                leeway=settings.clock_skew,
                                options={"require": ["iss", "sub", "aud", "exp", "jti"]})
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise _fail("client_assertion has expired") from None
        except jwt.InvalidAudienceError:
            raise _fail(f"client_assertion aud must be the token URL {token_url}") from None
        except jwt.MissingRequiredClaimError as error:
            raise _fail(f"client_assertion lacks the {error.claim} claim") from None
        except (InvalidTokenError, PyJWKError, PyJWTError, ValueError, TypeError) as error:
            raise _fail(f"client_assertion is not valid: {error}") from None
    if claims is None:
        raise _fail("client_assertion signature does not verify with the client's registered keys")
    now = int(time.time())
    exp = claims["exp"]
    if not isinstance(exp, int) or exp > now + MAX_LIFETIME_S + settings.clock_skew:
        raise _fail("client_assertion exp must be at most 5 minutes ahead")
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti:
        raise _fail("client_assertion jti must be a non-empty string")
    fresh = await store.kv_put(JTI_SPACE, f"{client_id} {jti}", {"exp": exp}, create_only=True,
                               expires=(exp + settings.clock_skew) * 1_000_000)
    if not fresh:
        raise _fail("client_assertion jti was used before (replay)")
    return client

"""The client's side of SMART Backend Services, for operators and scripts: make a key pair and its
JWKS (``yidang clients keygen``), and fetch an access token with a signed client assertion
(``yidang clients token``), as a hospital system does
(https://hl7.org/fhir/smart-app-launch/backend-services.html).

Keys are ES384 (P-384) by default or RS384 (RSA 3072); the ``kid`` is the key's RFC 7638
thumbprint, so the token command finds it from the private key alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any, Literal

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

Algorithm = Literal["ES384", "RS384"]
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 240
"""Seconds a client assertion is valid (SMART: at most 5 minutes)."""


def public_jwk(private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> dict[str, Any]:
    """The public JWK of ``private_key`` with ``kid`` (its thumbprint), ``alg`` and ``use``."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key()))
        alg = "ES384"
        members: tuple[str, ...] = ("crv", "kty", "x", "y")
    else:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
        alg = "RS384"
        members = ("e", "kty", "n")
    canonical = json.dumps({k: jwk[k] for k in members}, separators=(",", ":"), sort_keys=True)
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


def generate(key_path: Path, jwks_path: Path, algorithm: Algorithm = "ES384") -> dict[str, Any]:
    """Write a new private key (PEM, mode 0600) and its public JWKS; returns the JWKS."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        ec.generate_private_key(ec.SECP384R1()) if algorithm == "ES384"
        else rsa.generate_private_key(public_exponent=65537, key_size=3072))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    if key_path.exists():
        raise FileExistsError(f"{key_path} exists; not overwriting a private key")
    key_path.touch(mode=0o600)
    key_path.write_bytes(pem)
    jwks = {"keys": [public_jwk(key)]}
    jwks_path.write_text(json.dumps(jwks, indent=2) + "\n", encoding="utf-8")
    return jwks


def load_key(key_path: Path) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"{key_path} is neither an EC nor an RSA private key")
    return key


def assertion(client_id: str, token_url: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    """A client assertion JWT: iss = sub = the client, aud = the token URL, 4 minutes, a new jti."""
    jwk = public_jwk(key)
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "iat": now, "exp": now + ASSERTION_LIFETIME,
              "jti": uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm=jwk["alg"], headers={"kid": jwk["kid"]})


def fetch_token(server: str, client_id: str, key_path: Path, scope: str, *, verify: bool | str = True
                ) -> dict[str, Any]:
    """The token response of ``server`` (its FHIR base URL) for ``client_id``: the token endpoint is
    discovered from ``/.well-known/smart-configuration``."""
    key = load_key(key_path)
    with httpx.Client(timeout=30, verify=verify) as http:
        config = http.get(f"{server.rstrip('/')}/.well-known/smart-configuration")
        if config.status_code != 200:
            raise ValueError(f"{server} has no SMART configuration (HTTP {config.status_code}); "
                             "is it running with --auth smart?")
        token_url = str(config.json()["token_endpoint"])
        response = http.post(token_url, data={
            "grant_type": "client_credentials", "scope": scope, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(client_id, token_url, key)})
    body = response.json()
    if response.status_code != 200:
        raise ValueError(f"the token endpoint refused: {body.get('error')}: {body.get('error_description', '')}")
    return dict(body)

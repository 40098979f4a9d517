"""The server's token-signing keys: RS256 key pairs kept as PEM files in one directory.

The directory is ``settings.auth_keys_dir`` or ``<data_dir>/auth/keys`` (created 0700, files 0600),
also with MongoDB: several servers share the keys by sharing that path. A key is generated on
first use. The newest key signs; every key in the directory verifies, so a rotation (a new file)
needs no restart and tokens signed by the previous key keep verifying until its file is removed.
The directory is re-scanned when its mtime changes, checked at most once a second (and at once
for a token naming an unknown ``kid``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from server.settings import Settings

KEY_BITS = 2048
SCAN_INTERVAL_S = 1.0
SUFFIX = ".pem"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    """The RFC 7638 JWK thumbprint of the public key (stable whichever server reads the file)."""
    created: int
    """Microseconds since 1970 (from the file name: the newest key signs)."""
    path: Path
    private_key: rsa.RSAPrivateKey

    @property
    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {"kty": "RSA", "kid": self.kid, "alg": "RS256", "use": "sig", "n": jwk["n"], "e": jwk["e"]}


def keys_dir(settings: Settings) -> Path:
    return Path(settings.auth_keys_dir) if settings.auth_keys_dir else Path(settings.data_dir) / "auth" / "keys"


def _ensure_dir(directory: Path) -> None:
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)


def _rfc7638(jwk: dict[str, Any]) -> str:
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def _load(path: Path) -> SigningKey | None:
    """The key of one PEM file; None for a file that is not an RSA private key (skipped)."""
    try:
        created = int(path.stem.split("-", 1)[0])
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, rsa.RSAPrivateKey):
        return None
    return SigningKey(_rfc7638(RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)), created, path, key)


def list_keys(directory: Path) -> list[SigningKey]:
    """Every key in ``directory``, newest first."""
    if not directory.is_dir():
        return []
    found = [k for p in directory.glob("*" + SUFFIX) if (k := _load(p)) is not None]
    return sorted(found, key=lambda k: (k.created, k.kid), reverse=True)


def rotate(directory: Path) -> SigningKey:
    """Add a new key (it signs from now on; the others keep verifying until pruned)."""
    _ensure_dir(directory)
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    created = time.time_ns() // 1000
    path = directory / f"{created}-{secrets.token_hex(4)}{SUFFIX}"
    tmp = directory / f".{path.name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)  # readers never see half a file
    loaded = _load(path)
    assert loaded is not None
    return loaded


def prune(directory: Path, keep: int) -> list[SigningKey]:
    """Remove all but the ``keep`` newest keys (at least one stays); the removed keys.
    Tokens they signed stop verifying: prune only after the longest token lifetime has passed."""
    removed = list_keys(directory)[max(1, keep):]
    for key in removed:
        key.path.unlink(missing_ok=True)
    return removed


class KeyRing:
    """The keys of one directory as the running server sees them (re-scanned on change)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._keys: list[SigningKey] = []
        self._by_kid: dict[str, SigningKey] = {}
        self._mtime: int | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        return cls(keys_dir(settings))

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < SCAN_INTERVAL_S and self._keys:
            return
        with self._lock:
            self._checked = now
            try:
                mtime = self.directory.stat().st_mtime_ns
            except FileNotFoundError:
                mtime = None
            if mtime is not None and mtime == self._mtime and self._keys:
                return
            keys = list_keys(self.directory)
            if not keys:
                keys = [rotate(self.directory)]
                mtime = self.directory.stat().st_mtime_ns
            self._keys = keys
            self._by_kid = {k.kid: k for k in keys}
            self._mtime = mtime

    def signing_key(self) -> SigningKey:
        """The newest key (generated when the directory has none)."""
        self._refresh()
        return self._keys[0]

    def verifying_key(self, kid: str) -> SigningKey | None:
        """The key named ``kid``; the directory is re-read at once when it is not known."""
        self._refresh()
        key = self._by_kid.get(kid)
        if key is None:
            self._refresh(force=True)
            key = self._by_kid.get(kid)
        return key

    def jwks(self) -> dict[str, Any]:
        """The public JWKS (``/.well-known/jwks.json``): every key that verifies."""
        self._refresh()
        return {"keys": [k.public_jwk for k in self._keys]}

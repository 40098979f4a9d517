"""The audit signing key: Ed25519, in ``<audit dir>/checkpoint-key.pem`` (created on first use, 0600).

Checkpoints and prune anchors are signed with it, so a person who can edit the store but not the
server's disk cannot forge where the chain starts or what its hash was at a checkpoint.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_FILE = "checkpoint-key.pem"


@dataclass(frozen=True)
class AuditKey:
    private: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        raw = self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return hashlib.sha256(raw).hexdigest()[:16]

    def sign(self, message: str) -> str:
        return self.private.sign(message.encode()).hex()

    def verify(self, message: str, signature: str) -> bool:
        public: Ed25519PublicKey = self.private.public_key()
        try:
            public.verify(bytes.fromhex(signature), message.encode())
        except (InvalidSignature, ValueError):
            return False
        return True


def load_key(directory: Path, *, create: bool = True) -> AuditKey | None:
    """The key in ``directory`` (made when missing and ``create``); several processes starting at
    once agree on one file (``O_EXCL``: the loser reads the winner's)."""
    path = directory / KEY_FILE
    if not path.exists():
        if not create:
            return None
        directory.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
    for _ in range(50):  # another process may be writing it right now
        data = path.read_bytes()
        if data:
            break
        import time

        time.sleep(0.01)
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return AuditKey(key)


def message(kind: str, sequence: int, hash_: str, at: int) -> str:
    """What a checkpoint or anchor signature covers."""
    return f"yidang-audit:{kind}:{sequence}:{hash_}:{at}"

"""The signing key ring: files and permissions, generation on first use, rotation picked up
without restart, prune."""

from __future__ import annotations

import stat
import time
from pathlib import Path

from server.auth.keys import KeyRing, keys_dir, list_keys, prune, rotate
from server.settings import Settings


def test_generated_on_first_use_with_private_permissions(tmp_path: Path) -> None:
    directory = tmp_path / "data" / "auth" / "keys"
    ring = KeyRing.from_settings(Settings(data_dir=tmp_path / "data"))
    assert ring.directory == directory
    key = ring.signing_key()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = list(directory.glob("*.pem"))
    assert files == [key.path] and stat.S_IMODE(key.path.stat().st_mode) == 0o600
    assert ring.signing_key().kid == key.kid  # no second key
    assert [k["kid"] for k in ring.jwks()["keys"]] == [key.kid]
    # another process (another ring on the same directory) sees the same key
    assert KeyRing(directory).signing_key().kid == key.kid


def test_auth_keys_dir_wins(tmp_path: Path) -> None:
    assert keys_dir(Settings(data_dir=tmp_path, auth_keys_dir=tmp_path / "k")) == tmp_path / "k"


def test_rotation_is_picked_up_and_old_keys_verify(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path)
    old = ring.signing_key()
    new = rotate(tmp_path)
    time.sleep(1.05)
    assert ring.signing_key().kid == new.kid
    assert ring.verifying_key(old.kid) is not None
    assert {k["kid"] for k in ring.jwks()["keys"]} == {old.kid, new.kid}
    newest = rotate(tmp_path)
    # an unknown kid re-reads the directory at once
    assert ring.verifying_key(newest.kid) is not None
    assert [k.kid for k in list_keys(tmp_path)] == [newest.kid, new.kid, old.kid]
    removed = prune(tmp_path, keep=2)
    assert [k.kid for k in removed] == [old.kid]
    time.sleep(1.05)
    assert ring.verifying_key(old.kid) is None
    assert prune(tmp_path, keep=0) and len(list_keys(tmp_path)) == 1  # one key always stays


def test_foreign_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "README.pem").write_text("not a key")
    (tmp_path / "notes.txt").write_text("x")
    ring = KeyRing(tmp_path)
    assert len(ring.jwks()["keys"]) == 1

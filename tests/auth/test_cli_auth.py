"""``yidang clients|users|keys``: the exact forms scripts rely on, through typer's CliRunner and the
installed console script, on a store a running server uses; errors are one ``error: …`` line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner

from server.auth import passwords
from server.cli import app
from tests.auth.conftest import INSTITUTION, public_jwk, rsa_key
from tests.served import served

YIDANG = Path(sys.executable).with_name("yidang")
PASSWORD = "cli password 123"


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def jwks_file(folder: Path) -> Path:
    path = folder / f"jwks-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps({"keys": [public_jwk(rsa_key(), "k1")]}))
    return path


def yidang(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def one_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if not line.startswith("store: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


# --- clients ------------------------------------------------------------------------------------

def test_clients_add_list_show_remove(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    jwks = jwks_file(tmp_path)
    code, out, err = yidang("clients", "add", "--id", "lab-system", "--role", "institution", "--institution",
                            INSTITUTION, "--scope", "system/Observation.cruds system/Patient.rs", "--jwks", str(jwks),
                            "--data-dir", data)
    assert code == 0, err
    assert out.strip() == f"client lab-system added (role institution, institution {INSTITUTION})"
    assert "store: sqlite" in err and "yidang.db" in err
    code, out, _ = yidang("clients", "add", "--id", "city-app", "--role", "resident", "--institution", INSTITUTION,
                          "--scope", "patient/*.rs", "--jwks-url", "https://app.example/jwks.json",
                          "--patient", "Patient/p-7", "--data-dir", data)
    assert code == 0
    code, out, _ = yidang("clients", "add", "--id", "portal", "--role", "institution", "--institution", INSTITUTION,
                          "--scope", "user/*.rs launch/patient", "--public", "--redirect-uri", "https://p.example/a",
                          "--redirect-uri", "https://p.example/b", "--data-dir", data)
    assert code == 0
    code, out, _ = yidang("clients", "list", "--data-dir", data)
    assert code == 0
    for expected in ("lab-system", "city-app", "portal", "p-7", "public (PKCE)", "jwks (inline)",
                     "https://app.example/jwks.json", "2 redirect URI(s)"):
        assert expected in out, out
    assert '"n"' not in out and "kty" not in out
    code, out, _ = yidang("clients", "show", "lab-system", "--data-dir", data)
    shown = json.loads(out)
    assert shown["scope"] == "system/Observation.cruds system/Patient.rs" and shown["jwks"]["keys"][0]["kid"] == "k1"
    assert not {"d", "p", "q"} & set(shown["jwks"]["keys"][0])
    assert json.loads(yidang("clients", "show", "city-app", "--data-dir", data)[1])["patient"] == "p-7"
    assert json.loads(yidang("clients", "show", "portal", "--data-dir", data)[1])["redirect_uris"] == [
        "https://p.example/a", "https://p.example/b"]
    code, out, _ = yidang("clients", "remove", "lab-system", "--data-dir", data)
    assert code == 0 and out.strip() == "client lab-system removed"
    code, _, err = yidang("clients", "show", "lab-system", "--data-dir", data)
    assert code == 1 and one_error(err) == "error: no client 'lab-system'"
    code, _, err = yidang("clients", "remove", "lab-system", "--data-dir", data)
    assert code == 1 and one_error(err) == "error: no client 'lab-system'"


@pytest.mark.parametrize(("change", "message"), [
    (["--role", "root"], "role 'root' is not one of"),
    (["--institution", "has space"], "institution 'has space'"),
    (["--scope", "everything"], "scope:"),
    (["--jwks", "/no/such/file.json"], "--jwks: cannot read /no/such/file.json"),
    (["--jwks", "NOTJSON"], "is not JSON"),
    (["--jwks", None], "give exactly one of jwks"),
    (["--patient", "Patient/p1"], "patient binds a client of role resident only"),
])
def test_clients_add_errors_are_one_line(tmp_path: Path, change: list[str | None], message: str) -> None:
    args = {"--id": "svc", "--role": "institution", "--institution": INSTITUTION, "--scope": "system/*.rs",
            "--jwks": str(jwks_file(tmp_path))}
    if change[1] == "NOTJSON":
        bad = tmp_path / "bad.json"
        bad.write_text("{not json")
        change = [change[0], str(bad)]
    args[str(change[0])] = change[1]  # type: ignore[assignment]
    flat = [item for key, value in args.items() if value is not None for item in (key, value)]
    code, out, err = yidang("clients", "add", *flat, "--data-dir", str(tmp_path / "data"))
    assert code == 1 and out == ""
    assert message in one_error(err), err


def test_clients_add_twice_is_an_error(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    args = ["clients", "add", "--id", "svc", "--role", "platform", "--institution", INSTITUTION, "--scope",
            "system/*.rs", "--jwks", str(jwks_file(tmp_path)), "--data-dir", data]
    assert yidang(*args)[0] == 0
    code, _, err = yidang(*args)
    assert code == 1 and one_error(err) == "error: client 'svc' exists"


def test_reading_commands_refuse_a_missing_store(tmp_path: Path) -> None:
    for args in (["clients", "list"], ["users", "list"], ["clients", "show", "x"], ["users", "remove", "x"]):
        code, _, err = yidang(*args, "--data-dir", str(tmp_path / "nowhere"))
        assert code == 1 and "error: no store at" in one_error(err)
    assert not (tmp_path / "nowhere" / "yidang.db").exists()


# --- users --------------------------------------------------------------------------------------

def test_users_add_list_passwd_remove(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    code, out, err = yidang("users", "add", "zhang.wei", "--role", "institution", "--institution", INSTITUTION,
                            "--scope", "user/*.rs", "--password-stdin", "--data-dir", data, input=PASSWORD + "\n")
    assert code == 0, err
    assert out.strip() == f"user zhang.wei added (role institution, institution {INSTITUTION})"
    code, out, err = yidang("users", "add", "li.na", "--role", "resident", "--institution", INSTITUTION,
                            "--scope", "patient/*.rs", "--patient", "Patient/p-1", "--data-dir", data,
                            input=f"{PASSWORD}\n{PASSWORD}\n")  # asked twice, hidden
    assert code == 0, err
    assert PASSWORD not in out
    code, out, _ = yidang("users", "list", "--data-dir", data)
    assert code == 0 and "zhang.wei" in out and "li.na" in out and "p-1" in out
    assert "argon2" not in out and PASSWORD not in out
    code, out, _ = yidang("users", "passwd", "zhang.wei", "--password-stdin", "--data-dir", data,
                          input="the new password\n")
    assert code == 0 and out.strip() == "password of zhang.wei changed"
    code, _, err = yidang("users", "passwd", "nobody", "--password-stdin", "--data-dir", data, input=PASSWORD)
    assert code == 1 and one_error(err) == "error: no user 'nobody'"
    code, _, err = yidang("users", "add", "zhang.wei", "--role", "institution", "--institution", INSTITUTION,
                          "--scope", "user/*.rs", "--password-stdin", "--data-dir", data, input=PASSWORD)
    assert code == 1 and one_error(err) == "error: a user named 'zhang.wei' exists"
    code, out, _ = yidang("users", "remove", "zhang.wei", "--data-dir", data)
    assert code == 0 and out.strip() == "user zhang.wei removed"
    code, _, err = yidang("users", "remove", "zhang.wei", "--data-dir", data)
    assert code == 1 and one_error(err) == "error: no user 'zhang.wei'"


@pytest.mark.parametrize(("change", "message"), [
    (["--role", "root"], "error: --role: role must be one of"),
    (["--patient", "Patient/p1"], "error: --patient: patient binds only a resident user"),
    (["--scope", "x"], "error: --scope: scope:"),
])
def test_users_add_refuses_bad_fields_before_asking_a_password(tmp_path: Path, change: list[str],
                                                                message: str) -> None:
    args = {"--role": "institution", "--institution": INSTITUTION, "--scope": "user/*.rs", change[0]: change[1]}
    flat = [item for pair in args.items() for item in pair]
    code, out, err = yidang("users", "add", "someone", *flat, "--data-dir", str(tmp_path / "data"))
    assert code == 1 and "Password" not in out
    assert one_error(err).startswith(message), err


def test_users_short_password_is_refused(tmp_path: Path) -> None:
    code, _, err = yidang("users", "add", "someone", "--role", "institution", "--institution", INSTITUTION, "--scope",
                          "user/*.rs", "--password-stdin", "--data-dir", str(tmp_path / "data"), input="tiny-pw\n")
    assert code == 1 and "at least 10 characters" in one_error(err) and "tiny-pw" not in err


# --- keys ---------------------------------------------------------------------------------------

def test_keys_rotate_and_list(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    code, out, _ = yidang("keys", "rotate", "--data-dir", data)
    assert code == 0 and out.startswith("key ")
    first = out.split()[1]
    code, out, _ = yidang("keys", "rotate", "--data-dir", data)
    second = out.split()[1]
    code, out, _ = yidang("keys", "list", "--data-dir", data)
    assert code == 0 and first in out and second in out
    assert out.index(second) < out.index(first)  # the newest signs, listed first
    assert "PRIVATE" not in out
    assert oct((tmp_path / "data" / "auth" / "keys").stat().st_mode)[-3:] == "700"
    own = tmp_path / "elsewhere"
    assert yidang("keys", "rotate", "--keys-dir", str(own))[0] == 0 and len(list(own.glob("*.pem"))) == 1


# --- the installed command, beside a running server ---------------------------------------------

def run_yidang(*args: str, input: str | None = None, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(YIDANG), *args], input=input, capture_output=True, text=True, cwd=cwd, timeout=60,
                          env={**os.environ, "YIDANG_DEBUG": ""})


def test_console_script_beside_a_running_server(tmp_path: Path) -> None:
    store = tmp_path / "store"
    jwks = jwks_file(tmp_path)
    with served(tmp_path, "--log-level", "warning", store_args=["--data-dir", str(store)]) as server:
        added = run_yidang("clients", "add", "--id", "hospital-a", "--role", "institution", "--institution",
                           INSTITUTION, "--scope", "system/*.cruds", "--jwks", str(jwks), "--data-dir", str(store),
                           cwd=tmp_path)
        assert added.returncode == 0, added.stderr
        assert added.stdout.strip() == f"client hospital-a added (role institution, institution {INSTITUTION})"
        user = run_yidang("users", "add", "wang.fang", "--role", "platform", "--institution", INSTITUTION,
                          "--scope", "user/*.cruds", "--password-stdin", "--data-dir", str(store),
                          input=PASSWORD + "\n", cwd=tmp_path)
        assert user.returncode == 0, user.stderr
        listed = run_yidang("clients", "list", "--data-dir", str(store), cwd=tmp_path)
        assert listed.returncode == 0 and "hospital-a" in listed.stdout
        again = run_yidang("clients", "add", "--id", "hospital-a", "--role", "institution", "--institution",
                           INSTITUTION, "--scope", "system/*.cruds", "--jwks", str(jwks), "--data-dir", str(store),
                           cwd=tmp_path)
        assert again.returncode == 1 and again.stderr.splitlines()[-1] == "error: client 'hospital-a' exists"
        assert "Traceback" not in again.stderr
        with urllib.request.urlopen(f"{server.base}/readyz", timeout=5) as response:
            assert response.status == 200


def test_clients_and_users_on_mongodb(mongo_server_uri: str, tmp_path: Path) -> None:
    from tests.conftest import database_uri

    uri = database_uri(mongo_server_uri, f"cli_{uuid.uuid4().hex[:10]}")
    code, _, err = yidang("clients", "add", "--id", "svc", "--role", "district", "--institution", INSTITUTION,
                          "--scope", "system/Patient.rs", "--jwks", str(jwks_file(tmp_path)), "--mongodb-uri", uri)
    assert code == 0, err
    assert "store: mongo" in err and "@" not in err.split("store: mongo", 1)[1].splitlines()[0]
    code, _, err = yidang("users", "add", "chen", "--role", "district", "--institution", INSTITUTION, "--scope",
                          "user/Patient.rs", "--password-stdin", "--mongodb-uri", uri, input=PASSWORD + "\n")
    assert code == 0, err
    assert "svc" in yidang("clients", "list", "--mongodb-uri", uri)[1]
    assert "chen" in yidang("users", "list", "--mongodb-uri", uri)[1]

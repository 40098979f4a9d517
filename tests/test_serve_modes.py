"""How ``yidang serve`` starts (issue 13 §1): open on loopback with one loud warning, refused on any
other address without authorization configured, ``--auth off`` on purpose (warned), ``--auth smart``
(says where tokens come from); and HTTPS directly with ``--ssl-certfile/--ssl-keyfile``.

The rule is a pure function (:func:`server.http.modes.decide`), tested here case by case; the real
process tests start the console script as an operator does."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from server.http.modes import decide, is_loopback
from tests.served import YIDANG, free_port, served

URL = "http://h:8080"
NO_AUTH_ENV = {"YIDANG_AUTH": ""}


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "example.org", "", "my-host",
                                  "fe80::1%eth0"])
def test_other_addresses(host: str) -> None:
    assert not is_loopback(host)


def test_loopback_without_auth_runs_open_with_a_warning() -> None:
    mode = decide("127.0.0.1", "", url=URL)
    assert mode.refusal is None and mode.auth == ""
    assert mode.warning is not None and "authorization is OFF" in mode.warning and "--auth smart" in mode.warning
    assert "\n" not in mode.warning


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20"])
def test_other_address_without_auth_is_refused(host: str) -> None:
    mode = decide(host, "", url=URL)
    assert mode.refusal is not None
    assert "--auth smart" in mode.refusal and "yidang clients add" in mode.refusal and "--auth off" in mode.refusal


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_auth_off_starts_with_a_warning_everywhere(host: str) -> None:
    mode = decide(host, "off", url=URL)
    assert mode.refusal is None and mode.auth == "off"
    assert mode.warning is not None and "--auth off" in mode.warning


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_auth_smart_starts_and_names_the_token_endpoint(host: str) -> None:
    mode = decide(host, "smart", url=URL)
    assert mode.refusal is None and mode.warning is None and mode.auth == "smart"
    assert mode.note is not None and f"{URL}/auth/token" in mode.note


def test_unknown_auth_value_is_refused() -> None:
    assert decide("127.0.0.1", "basic", url=URL).refusal is not None


# --- the real process ------------------------------------------------------------------------------------------

def run_refused(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(YIDANG), "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "d"),
                           *args], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, **NO_AUTH_ENV, **(env or {})})


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_serve_on_all_interfaces_without_auth_refuses_to_start(tmp_path: Path, host: str) -> None:
    done = run_refused(tmp_path, "--host", host)
    assert done.returncode == 2, done
    assert "refusing to serve" in done.stderr and "--auth smart" in done.stderr and "--auth off" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_host_from_the_environment_is_refused_too(tmp_path: Path) -> None:
    done = run_refused(tmp_path, env={"YIDANG_HOST": "0.0.0.0"})
    assert done.returncode == 2 and "refusing to serve" in done.stderr


def test_bad_auth_value_is_a_usage_error(tmp_path: Path) -> None:
    done = run_refused(tmp_path, "--auth", "maybe")
    assert done.returncode == 2 and "--auth" in done.stderr


def warnings(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "authorization is OFF" in line]


def test_serve_on_all_interfaces_with_auth_off_serves_and_warns(tmp_path: Path) -> None:
    with served(tmp_path, "--host", "0.0.0.0", "--auth", "off", "--log-level", "warning", env=NO_AUTH_ENV) as srv:
        r = httpx.get(f"{srv.base}/healthz", timeout=10)
        assert r.status_code == 200
        assert httpx.get(f"{srv.base}/Patient", timeout=10).status_code == 200  # open on purpose
        assert len(warnings(srv.log)) == 1


def test_auth_off_from_the_environment(tmp_path: Path) -> None:
    with served(tmp_path, "--host", "0.0.0.0", "--log-level", "warning", env={"YIDANG_AUTH": "off"}) as srv:
        assert httpx.get(f"{srv.base}/healthz", timeout=10).status_code == 200
        assert len(warnings(srv.log)) == 1


def test_serve_on_loopback_without_auth_serves_with_one_warning(tmp_path: Path) -> None:
    with served(tmp_path, "--log-level", "warning", env=NO_AUTH_ENV) as srv:
        assert httpx.get(f"{srv.base}/healthz", timeout=10).status_code == 200
        assert httpx.get(f"{srv.base}/metadata", timeout=10).status_code == 200
        (line,) = warnings(srv.log)
        assert "--auth smart" in line


def test_serve_with_auth_smart_names_the_token_endpoint(tmp_path: Path) -> None:
    with served(tmp_path, "--host", "0.0.0.0", "--auth", "smart", "--log-level", "warning", env=NO_AUTH_ENV) as srv:
        assert httpx.get(f"{srv.base}/healthz", timeout=10).status_code == 200
        text = srv.log.read_text()
        assert warnings(srv.log) == []
        assert f"http://0.0.0.0:{srv.port}/auth/token" in text


# --- TLS -------------------------------------------------------------------------------------------------------

def self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


def test_serve_https_directly(tmp_path: Path) -> None:
    certfile, keyfile = self_signed(tmp_path)
    port = free_port()
    log = tmp_path / "tls.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(YIDANG), "serve", "--port", str(port), "--data-dir", str(tmp_path / "d"), "--log-level", "warning",
             "--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env={**os.environ, **NO_AUTH_ENV})
    try:
        base = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        with httpx.Client(verify=ssl.create_default_context(cafile=str(certfile)), timeout=5) as client:
            while True:
                try:
                    r = client.get(f"{base}/metadata")
                    break
                except httpx.TransportError:
                    assert process.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
            assert r.status_code == 200 and r.json()["resourceType"] == "CapabilityStatement"
            assert r.headers["strict-transport-security"].startswith("max-age=")  # HSTS over TLS
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)  # plain HTTP is not answered
        assert f"https://127.0.0.1:{port}/" in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_tls_needs_both_files(tmp_path: Path) -> None:
    certfile, _ = self_signed(tmp_path)
    done = run_refused(tmp_path, "--ssl-certfile", str(certfile))
    assert done.returncode == 2 and "--ssl-keyfile" in done.stderr
    missing = run_refused(tmp_path, "--ssl-certfile", str(tmp_path / "nope.pem"), "--ssl-keyfile", str(certfile))
    assert missing.returncode == 2 and "nope.pem" in missing.stderr

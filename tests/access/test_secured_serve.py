"""The secured setup end to end, as an operator runs it: ``yidang serve --auth smart`` as a real
process, clients registered with ``yidang clients add`` (the exact form scripts use) while it runs,
SMART Backend Services tokens fetched from it over the wire, and two institutions that cannot see
each other's records."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.served import YIDANG, Served, served

HOSPITAL_A = "12440000455858436X"
HOSPITAL_B = "12440000455858999Y"
KEY = ec.generate_private_key(ec.SECP384R1())


def jwks_file(directory: Path) -> Path:
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(KEY.public_key()))
    path = directory / "jwks.json"
    path.write_text(json.dumps({"keys": [{**public, "kid": "k1", "alg": "ES384", "use": "sig"}]}))
    return path


def add_client(data: Path, jwks: Path, client_id: str, role: str, institution: str, scope: str) -> None:
    done = subprocess.run([str(YIDANG), "clients", "add", "--id", client_id, "--role", role, "--institution",
                           institution, "--scope", scope, "--jwks", str(jwks), "--data-dir", str(data)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def token(base: str, client_id: str, scope: str) -> str:
    url = f"{base}/auth/token"
    now = int(time.time())
    assertion = jwt.encode({"iss": client_id, "sub": client_id, "aud": url, "exp": now + 240,
                            "jti": uuid.uuid4().hex}, KEY, algorithm="ES384", headers={"kid": "k1"})
    response = httpx.post(url, data={
        "grant_type": "client_credentials", "scope": scope,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return str(response.json()["access_token"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("secured")
    data = work / "store"
    env = {"YIDANG_RATE_LIMITS": json.dumps({"auth": 0})}
    with served(work, "--auth", "smart", env=env) as running:
        jwks = jwks_file(work)  # registered while the server runs
        add_client(data, jwks, "his-a", "institution", HOSPITAL_A, "system/*.cruds")
        add_client(data, jwks, "his-b", "institution", HOSPITAL_B, "system/*.cruds")
        add_client(data, jwks, "platform-ops", "platform", "12440000MB0000000P", "system/*.rs")
        yield running


def test_public_endpoints_need_no_token(server: Served) -> None:
    for path in ("/metadata", "/.well-known/smart-configuration", "/.well-known/jwks.json", "/healthz"):
        assert httpx.get(server.base + path).status_code == 200, path
    security = httpx.get(server.base + "/metadata").json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    config = httpx.get(server.base + "/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == f"{server.base}/auth/token"


def test_fhir_requests_need_a_token(server: Served) -> None:
    response = httpx.get(server.base + "/Patient")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["resourceType"] == "OperationOutcome"
    bad = httpx.get(server.base + "/Patient", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401


def test_institutions_see_only_their_own_records(server: Served) -> None:
    a = {"Authorization": f"Bearer {token(server.base, 'his-a', 'system/*.cruds')}"}
    b = {"Authorization": f"Bearer {token(server.base, 'his-b', 'system/*.cruds')}"}
    platform = {"Authorization": f"Bearer {token(server.base, 'platform-ops', 'system/*.rs')}"}
    family = f"Chen{uuid.uuid4().hex[:8]}"
    created = httpx.post(server.base + "/Patient", headers=a,
                         json={"resourceType": "Patient", "name": [{"family": family}]})
    assert created.status_code == 201, created.text
    patient = created.json()
    assert patient["meta"]["source"].endswith(HOSPITAL_A)
    path = f"/Patient/{patient['id']}"

    assert httpx.get(server.base + path, headers=a).status_code == 200
    hidden = httpx.get(server.base + path, headers=b)
    missing = httpx.get(server.base + "/Patient/no-such-patient", headers=b)
    assert hidden.status_code == missing.status_code == 404
    found_b = httpx.get(server.base + f"/Patient?family={family}&_total=accurate", headers=b).json()
    assert found_b["total"] == 0 and not found_b.get("entry")
    found_a = httpx.get(server.base + f"/Patient?family={family}&_total=accurate", headers=a).json()
    assert found_a["total"] == 1
    assert httpx.get(server.base + path, headers=platform).status_code == 200

    update = httpx.put(server.base + path, headers=b, json={**patient, "active": False})
    assert update.status_code == 403
    assert httpx.delete(server.base + path, headers=b).status_code == 403
    assert "active" not in httpx.get(server.base + path, headers=a).json()
    assert httpx.post(server.base + "/Patient", headers=platform,
                      json={"resourceType": "Patient"}).status_code == 403  # a read-only token


def test_a_removed_client_loses_its_tokens(server: Served, tmp_path: Path) -> None:
    data = Path(server.log).parent / "store"
    add_client(data, jwks_file(tmp_path), "short-lived", "institution", HOSPITAL_A, "system/*.rs")
    headers = {"Authorization": f"Bearer {token(server.base, 'short-lived', 'system/*.rs')}"}
    assert httpx.get(server.base + "/Patient?_count=1", headers=headers).status_code == 200
    removed = subprocess.run([str(YIDANG), "clients", "remove", "short-lived", "--data-dir", str(data)],
                             capture_output=True, text=True, timeout=60)
    assert removed.returncode == 0, removed.stderr
    time.sleep(1.2)  # another process removed it: the server looks again within a second
    assert httpx.get(server.base + "/Patient?_count=1", headers=headers).status_code == 401


def test_command_line_clients_use_the_token(server: Served, tmp_path: Path) -> None:
    """`yidang load` / `export-local` against a server with authorization on: the token in YIDANG_TOKEN
    (as `yidang clients token` prints it); what the command sees is what the token may see."""
    import os

    family = f"Zhou{uuid.uuid4().hex[:8]}"
    patient = tmp_path / "p.json"
    patient.write_text(json.dumps({
        "resourceType": "Patient", "name": [{"text": family, "family": family}],
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": "11010519491231002X"}]}))
    env = {**os.environ, "YIDANG_TOKEN": token(server.base, "his-a", "system/*.cruds")}
    loaded = subprocess.run([str(YIDANG), "load", str(patient), "--server", server.base], capture_output=True,
                            text=True, timeout=120, env=env)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    refused = subprocess.run([str(YIDANG), "load", str(patient), "--server", server.base], capture_output=True,
                             text=True, timeout=120, env={k: v for k, v in os.environ.items() if k != "YIDANG_TOKEN"})
    assert refused.returncode != 0
    for who, expected in (("his-a", 1), ("his-b", 0)):
        out = tmp_path / f"{who}.csv"
        env["YIDANG_TOKEN"] = token(server.base, who, "system/*.rs")
        done = subprocess.run([str(YIDANG), "export-local", "--dataset", "person", "--out", str(out), "--server",
                               server.base], capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert out.read_text(encoding="utf-8-sig").count(family) == expected, who

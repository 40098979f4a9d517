"""``yidang export`` / ``yidang import`` (issue 16 §4) from the outside: straight on both stores (a data
directory, and MongoDB through nx-27017), against a real ``yidang serve`` open and with ``--auth smart``
(a client made with ``clients keygen`` + ``clients add``), and bad input: an unknown type, a bad line,
conflicting options."""

from __future__ import annotations

import gzip
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from server.cli import app
from tests.conftest import database_uri
from tests.served import YIDANG, served

RESOURCES = 30


def seed_lines(tag: str, patients: int = RESOURCES // 3) -> list[bytes]:
    """Patients with two Observations each (ids carry ``tag``, so stores shared by tests never mix)."""
    lines: list[bytes] = []
    for n in range(patients):
        pid = f"{tag}-p{n}"
        lines.append(orjson.dumps({"resourceType": "Patient", "id": pid, "gender": "female",
                                   "name": [{"family": f"F{n}", "given": ["名"]}]}))
        for m in range(2):
            lines.append(orjson.dumps({"resourceType": "Observation", "id": f"{tag}-o{n}-{m}", "status": "final",
                                       "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                                       "subject": {"reference": f"Patient/{pid}"}, "valueString": f"{n}/{m}"}))
    return lines


def write(path: Path, lines: list[bytes], gz: bool = False) -> Path:
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def cli(*args: str | Path) -> Any:
    """``yidang ARGS`` in this process (stdout and stderr apart)."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def read_out(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The exported resources by (type, id), without ``meta``."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in directory.iterdir():
        if not path.name.endswith((".ndjson", ".ndjson.gz")) or path.name.startswith("OperationOutcome"):
            continue
        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        for line in data.splitlines():
            resource = orjson.loads(line)
            resource.pop("meta", None)
            found[(resource["resourceType"], resource["id"])] = resource
    return found


def ours(found: dict[tuple[str, str], dict[str, Any]], tag: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {k: v for k, v in found.items() if k[1].startswith(tag)}


@pytest.fixture(params=["sqlite", "mongo"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[list[str], list[str]]]:
    """Options naming two fresh stores of one kind."""
    if request.param == "sqlite":
        yield ["--data-dir", str(tmp_path / "a")], ["--data-dir", str(tmp_path / "b")]
        return
    base = request.getfixturevalue("mongo_server_uri")
    yield ([f"--mongodb-uri={database_uri(base, f't_{uuid.uuid4().hex[:12]}')}"],
           [f"--mongodb-uri={database_uri(base, f't_{uuid.uuid4().hex[:12]}')}"])


def test_store_round_trip(stores: tuple[list[str], list[str]], tmp_path: Path) -> None:
    first, second = stores
    tag = uuid.uuid4().hex[:8]
    lines = seed_lines(tag)
    seeded = cli("import", write(tmp_path / "seed.ndjson.gz", lines, gz=True), *first)
    assert seeded.exit_code == 0, seeded.output
    assert f"{len(lines)} resources imported, 0 lines failed" in seeded.stdout

    out = tmp_path / "out"
    exported = cli("export", "--out", out, *first)
    assert exported.exit_code == 0, exported.output
    assert sorted(p.name for p in out.iterdir()) == ["Observation.ndjson", "Patient.ndjson"]  # no work dir left
    assert "yidang export" in exported.stderr and "Observation" in exported.stderr
    original = ours(read_out(out), tag)
    assert len(original) == len(lines)
    assert original[("Patient", f"{tag}-p0")]["name"] == [{"family": "F0", "given": ["名"]}]

    imported = cli("import", out, *second)
    assert imported.exit_code == 0, imported.output
    again = tmp_path / "again"
    assert cli("export", "--out", again, "--gzip", *second).exit_code == 0
    assert sorted(p.name for p in again.iterdir()) == ["Observation.ndjson.gz", "Patient.ndjson.gz"]
    assert ours(read_out(again), tag) == original  # same ids, same content apart from meta


def test_export_of_types_since_and_filters(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "s")]
    tag = uuid.uuid4().hex[:8]
    assert cli("import", write(tmp_path / "seed.ndjson", seed_lines(tag)), *data).exit_code == 0
    only = cli("export", "--out", tmp_path / "o1", "--type", "Patient", *data)
    assert only.exit_code == 0, only.output
    assert [p.name for p in (tmp_path / "o1").iterdir()] == ["Patient.ndjson"]
    later = cli("export", "--out", tmp_path / "o2", "--since", "2999-01-01T00:00:00Z", *data)
    assert later.exit_code == 0 and "0 resources exported" in later.stdout
    filtered = cli("export", "--out", tmp_path / "o3", "--type-filter", f"Patient?_id={tag}-p1", "--type",
                   "Patient,Observation", *data)
    assert filtered.exit_code == 0, filtered.output
    assert set(read_out(tmp_path / "o3")) >= {("Patient", f"{tag}-p1")}
    assert ("Patient", f"{tag}-p2") not in read_out(tmp_path / "o3")
    patient_level = cli("export", "--out", tmp_path / "o4", "--patient-level", "--type", "Observation", *data)
    assert patient_level.exit_code == 0 and len(read_out(tmp_path / "o4")) == 2 * (RESOURCES // 3)


def test_bad_input(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "s")]
    tag = uuid.uuid4().hex[:8]
    good = seed_lines(tag, 2)
    bad = write(tmp_path / "bad.ndjson", [good[0], b"{not json", good[1], b"",
                                           orjson.dumps({"resourceType": "Patient", "id": f"{tag}-x",
                                                         "gender": "nonsense"}), good[2]])
    result = cli("import", bad, *data)
    assert result.exit_code == 1
    assert "bad.ndjson line 2: not JSON" in result.stderr
    assert "bad.ndjson line 5:" in result.stderr and "nonsense" in result.stderr
    assert "3 resources imported, 2 lines failed" in result.stdout

    unknown = cli("export", "--out", tmp_path / "o", "--type", "Nope", *data)
    assert unknown.exit_code == 1
    errors = [line for line in unknown.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "'Nope' is not a resource type" in errors[0], unknown.stderr

    assert cli("export", "--out", tmp_path / "o", "--group", "g", "--patient-level", *data).exit_code == 2
    assert cli("export", "--out", tmp_path / "o", "--server", "http://x", *data).exit_code == 2
    missing = cli("export", "--out", tmp_path / "o", "--data-dir", tmp_path / "nothing-here")
    assert missing.exit_code == 1 and "no store at" in missing.stderr
    assert cli("import", tmp_path / "missing.ndjson", *data).exit_code == 1
    assert cli("export", "--out", tmp_path / "o5", *data).exit_code == 0
    twice = cli("export", "--out", tmp_path / "o5", *data)
    assert twice.exit_code == 1 and "already holds NDJSON" in twice.stderr


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``yidang ARGS`` as a process (as operators run it against a server)."""
    return subprocess.run([str(YIDANG), *map(str, args)], capture_output=True, text=True, timeout=180)


def test_against_a_server(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    lines = seed_lines(tag)
    with served(tmp_path) as server:
        bad = write(tmp_path / "seed.ndjson", [*lines, b'{"resourceType": "Patient"}'])
        imported = run("import", bad, "--server", server.base)
        assert imported.returncode == 1, imported.stderr
        assert f"seed.ndjson line {len(lines) + 1}:" in imported.stderr and "id" in imported.stderr
        assert f"{len(lines)} resources imported, 1 lines failed" in imported.stdout
        exported = run("export", "--out", tmp_path / "out", "--server", server.base)
        assert exported.returncode == 0, exported.stderr
        assert len(ours(read_out(tmp_path / "out"), tag)) == len(lines)
        zipped = run("export", "--out", tmp_path / "gz", "--gzip", "--type", "Patient", "--server", server.base)
        assert zipped.returncode == 0, zipped.stderr
        assert [p.name for p in (tmp_path / "gz").iterdir()] == ["Patient.ndjson.gz"]
        assert ours(read_out(tmp_path / "gz"), tag) == {k: v for k, v in ours(read_out(tmp_path / "out"), tag).items()
                                                        if k[0] == "Patient"}
        unknown = run("export", "--out", tmp_path / "x", "--type", "Nope", "--server", server.base)
        assert unknown.returncode == 1 and "error: $export refused (HTTP 400)" in unknown.stderr
        original = ours(read_out(tmp_path / "out"), tag)
    with served(tmp_path, store_args=["--data-dir", str(tmp_path / "fresh")]) as fresh:
        assert run("import", tmp_path / "out", "--server", fresh.base).returncode == 0
        assert run("export", "--out", tmp_path / "again", "--server", fresh.base).returncode == 0
        assert ours(read_out(tmp_path / "again"), tag) == original


def test_against_a_secured_server(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    lines = seed_lines(tag, 3)
    env = {"YIDANG_RATE_LIMITS": json.dumps({"auth": 0})}
    with served(tmp_path, "--auth", "smart", env=env) as server:
        key, jwks = tmp_path / "client.pem", tmp_path / "client.jwks.json"
        assert run("clients", "keygen", "--key", key, "--jwks", jwks).returncode == 0
        added = run("clients", "add", "--id", "bulk-cli", "--role", "platform", "--institution", "12440000MB0000000P",
                    "--scope", "system/*.cruds", "--jwks", jwks, "--data-dir", tmp_path / "store")
        assert added.returncode == 0, added.stderr
        client = ["--server", server.base, "--client-id", "bulk-cli", "--key", str(key)]
        seed = write(tmp_path / "seed.ndjson", lines)
        refused = run("import", seed, "--server", server.base)
        assert refused.returncode == 1 and "HTTP 401" in refused.stderr
        imported = run("import", seed, *client)
        assert imported.returncode == 0, imported.stderr
        exported = run("export", "--out", tmp_path / "out", "--type", "Patient,Observation", *client)
        assert exported.returncode == 0, exported.stderr
        assert len(ours(read_out(tmp_path / "out"), tag)) == len(lines)
        bad_token = run("export", "--out", tmp_path / "o2", "--server", server.base, "--token", "nonsense")
        assert bad_token.returncode == 1 and "HTTP 401" in bad_token.stderr

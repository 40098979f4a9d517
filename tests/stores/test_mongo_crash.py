"""``kill -9`` of a real ``yidang serve`` process in the middle of a 1,000-entry transaction Bundle
on MongoDB without isolated transactions (nx-27017): after the restart either all of the
transaction is visible or none of it, versions are contiguous, and nothing is left claimed.

The process is killed at the two moments that matter (server/stores/mongo/journal.py): while its
journal is ``open`` (claims and entries being written: the restart rolls it back) and while it is
``committed`` (being applied: the restart completes it). The moment is found by watching the
journal collection, not by timing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pymongo import MongoClient

from server.search.model import Entry
from server.stores.base import Version, Write
from server.stores.mongo import MongoStore
from server.stores.mongo.schema import JOURNAL, PENDING, RESOURCES
from tests.conftest import database_uri

pytestmark = [pytest.mark.mongo, pytest.mark.slow]  # kills real server processes: CI runs it

YIDANG = Path(sys.executable).with_name("yidang")
N = 1000
ATTEMPTS = 3
"""A transaction can finish before the watcher sees the moment; then the scenario is run again."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One ``yidang serve --mongodb-uri`` process, restartable on the same port and database."""

    def __init__(self, uri: str, log: Path) -> None:
        self.uri, self.log, self.port = uri, log, _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [str(YIDANG), "serve", "--port", str(self.port), "--mongodb-uri", self.uri, "--log-level", "warning"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, f"server exited at start-up: {self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture
def database(mongo_server_uri: str) -> Iterator[tuple[str, MongoClient[dict[str, Any]]]]:
    name = f"t_crash_{uuid.uuid4().hex[:8]}"
    uri = database_uri(mongo_server_uri, name)
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    yield uri, client
    client.drop_database(name)
    client.close()


def _create(uri: str, ids: list[str], family: str) -> None:
    """Version 1 of every resource, written straight into the store (fast, no HTTP)."""

    async def run() -> None:
        store = MongoStore(uri)
        await store.open()
        try:
            async with store.session() as s:
                for id_ in ids:
                    body = {"resourceType": "Patient", "id": id_, "meta": {"versionId": "1"},
                            "name": [{"family": family}]}
                    v = Version("Patient", id_, 1, time.time_ns() // 1000, False, "PUT", orjson.dumps(body))
                    await s.write(Write(v, [Entry("string", "family", (family.lower(), family))], None))
        finally:
            await store.close()

    asyncio.run(run())


def _bundle(ids: list[str], family: str) -> bytes:
    entries = [{"resource": {"resourceType": "Patient", "id": id_, "name": [{"family": family}]},
                "request": {"method": "PUT", "url": f"Patient/{id_}"}} for id_ in ids]
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def _post(base: str, body: bytes, outcome: list[object]) -> None:
    try:
        r = httpx.post(f"{base}/", content=body, headers={"Content-Type": "application/fhir+json"}, timeout=300)
        outcome.append(r.status_code)
    except httpx.HTTPError as exc:  # the server was killed under it
        outcome.append(exc)


def _count(base: str, family: str) -> int:
    r = httpx.get(f"{base}/Patient", params={"family:exact": family, "_summary": "count"}, timeout=60)
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


@pytest.mark.parametrize("moment", ["open", "committed"])
def test_kill_9_mid_transaction_leaves_all_or_nothing(
    database: tuple[str, MongoClient[dict[str, Any]]], moment: str, tmp_path: Path
) -> None:
    uri, client = database
    db = client.get_default_database()
    server = Server(uri, tmp_path / "serve.log")
    try:
        for attempt in range(1, ATTEMPTS + 1):
            run = uuid.uuid4().hex[:8]
            ids = [f"crash-{run}-{i}" for i in range(N)]
            old, new = f"Old{run}", f"New{run}"
            _create(uri, ids, old)
            server.start()
            outcome: list[object] = []
            poster = threading.Thread(target=_post, args=(server.base, _bundle(ids, new), outcome))
            poster.start()
            while poster.is_alive() and db[JOURNAL].find_one({"state": moment}, {"_id": 1}) is None:
                time.sleep(0.005)  # watch for the moment (its window is a second or so)
            server.kill()
            poster.join()
            header = db[JOURNAL].find_one({"state": {"$exists": True}})
            if header is None:  # finished (or not begun) before the kill: nothing was interrupted
                assert attempt < ATTEMPTS, f"never caught the transaction {moment}: {outcome}"
                continue
            assert header["state"] == moment
            server.start()  # recovery runs at start-up
            updated = _count(server.base, new)
            assert updated == (N if moment == "committed" else 0)
            assert _count(server.base, old) == N - updated
            # versions are contiguous: 1, or 1 and 2, for every resource; nothing left claimed
            rids = [f"Patient/{i}" for i in ids]
            assert db[RESOURCES].count_documents({"_id": {"$in": rids}, "version": 2 if updated else 1}) == N
            history = sorted((d["rid"], d["version"]) for d in db["history"].find({"rid": {"$in": rids}}))
            assert history == sorted((rid, v) for rid in rids for v in range(1, 3 if updated else 2))
            assert db[JOURNAL].count_documents({}) == 0
            assert db[RESOURCES].count_documents({PENDING: {"$exists": True}}) == 0
            assert "recovery:" in server.log.read_text()
            # and the resources are writable again, at the next version
            r = httpx.put(f"{server.base}/Patient/{ids[0]}", json={"resourceType": "Patient", "id": ids[0]}, timeout=60)
            assert r.status_code == 200, r.text
            assert r.json()["meta"]["versionId"] == str(3 if updated else 2)
            return
    finally:
        server.stop()

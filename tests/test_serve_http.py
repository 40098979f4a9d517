"""The real ``yidang serve`` process on the wire: what an in-process ASGI client cannot show.

The HTTP/1.1 parser and the event loop belong to the ASGI server, so these tests start the
server process on a free port with an embedded store in a temporary directory and talk to it
over TCP: an ``Upgrade: h2c`` offer (sent by Java's HTTP client and ``curl --http2`` by default)
must not lose the request body, and one large resource must not stall every other request.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from tests.served import served as serve

H2C_OFFER = {
    "Connection": "Upgrade, HTTP2-Settings",
    "Upgrade": "h2c",
    "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA",  # what curl --http2 sends
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """``yidang serve`` exactly as an operator starts it; yields (host, port) once it is ready."""
    with serve(tmp_path_factory.mktemp("serve"), "--log-level", "warning") as server:
        yield "127.0.0.1", server.port


def _send(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, Any]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    raw = response.read()
    return response.status, orjson.loads(raw) if raw else None


def _patient(family: str) -> bytes:
    return orjson.dumps({"resourceType": "Patient", "name": [{"family": family}]})


JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def test_h2c_upgrade_offer_keeps_the_body_of_a_create(served: tuple[str, int]) -> None:
    family = f"Smith-{uuid.uuid4().hex[:8]}"
    conn = http.client.HTTPConnection(*served, timeout=30)
    try:
        status, body = _send(conn, "POST", "/Patient", _patient(family), {**JSON, **H2C_OFFER})
        assert status == 201, body
        assert body["name"][0]["family"] == family
        # the connection stays usable HTTP/1.1 after the declined offer (no 101 was sent)
        status, read = _send(conn, "GET", f"/Patient/{body['id']}", headers={"Accept": "application/fhir+json"})
        assert status == 200
        assert read["name"][0]["family"] == family
        status, again = _send(conn, "POST", "/Patient", _patient(family + "-2"), {**JSON, **H2C_OFFER})
        assert status == 201, again
        assert again["name"][0]["family"] == family + "-2"
    finally:
        conn.close()


def test_h2c_upgrade_offer_keeps_the_form_of_a_post_search(served: tuple[str, int]) -> None:
    family = f"Smith-{uuid.uuid4().hex[:8]}"
    conn = http.client.HTTPConnection(*served, timeout=30)
    try:
        for name in (family, f"Jones-{uuid.uuid4().hex[:8]}"):
            assert _send(conn, "POST", "/Patient", _patient(name), JSON)[0] == 201
        form = urlencode({"family": family}).encode()
        status, bundle = _send(conn, "POST", "/Patient/_search", form, {
            "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/fhir+json", **H2C_OFFER})
        assert status == 200, bundle
        assert [e["resource"]["name"][0]["family"] for e in bundle.get("entry", [])] == [family]
    finally:
        conn.close()


def test_h2c_upgrade_offer_with_a_chunked_body(served: tuple[str, int]) -> None:
    family = f"Smith-{uuid.uuid4().hex[:8]}"
    conn = http.client.HTTPConnection(*served, timeout=30)
    try:
        conn.request("POST", "/Patient", body=iter([_patient(family)[:10], _patient(family)[10:]]),
                     headers={**JSON, **H2C_OFFER}, encode_chunked=True)
        response = conn.getresponse()
        created = orjson.loads(response.read())
        assert response.status == 201, created
        assert created["name"][0]["family"] == family
    finally:
        conn.close()


def test_h2c_upgrade_offer_with_the_body_in_a_later_packet(served: tuple[str, int]) -> None:
    family = f"Smith-{uuid.uuid4().hex[:8]}"
    body = _patient(family)
    head = "".join(f"{k}: {v}\r\n" for k, v in {**JSON, **H2C_OFFER, "Host": "localhost",
                                                   "Content-Length": str(len(body))}.items())
    with socket.create_connection(served, timeout=30) as sock:
        sock.sendall(f"POST /Patient HTTP/1.1\r\n{head}\r\n".encode())
        time.sleep(0.2)  # let the server see the headers alone before the body arrives
        sock.sendall(body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        created = orjson.loads(response.read())
    assert response.status == 201, created
    assert created["name"][0]["family"] == family


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_http2_offer_creates_the_resource(served: tuple[str, int]) -> None:
    family = f"Smith-{uuid.uuid4().hex[:8]}"
    host, port = served
    out = subprocess.run(
        ["curl", "-s", "--http2", "-X", "POST", "-H", "Content-Type: application/fhir+json",
         "--data-binary", _patient(family).decode(), "-w", "\n%{http_code}", f"http://{host}:{port}/Patient"],
        capture_output=True, check=True, timeout=60,
    ).stdout.decode()
    text, _, code = out.rpartition("\n")
    assert code == "201", text
    assert orjson.loads(text)["name"][0]["family"] == family


HEALTHZ_ROUNDS = 100
"""/healthz round trips that must complete while one large request is in progress. Were the event
loop blocked, only those answered while its body was still being received would (about ten); with
the work in a thread, the seconds it takes leave room for hundreds."""


def _large_patient() -> bytes:
    """A valid Patient of about 3.5 MiB whose validating and indexing takes seconds (280,000 entries)."""
    return orjson.dumps({
        "resourceType": "Patient",
        "name": [{"family": f"Fam{i}", "given": [f"Given{i}"]} for i in range(40_000)],
        "identifier": [{"system": "urn:oid:1.2.3", "value": f"v{i}"} for i in range(40_000)],
    })


def _healthz_while(served: tuple[str, int], request: bytes) -> tuple[list[str], int, bytes]:
    """Send ``request`` on one connection and poll /healthz on another until it is answered; the
    order in which the answers came, and the large request's status and body."""
    events: list[str] = []
    sent = threading.Event()
    outcome: dict[str, Any] = {}

    def large() -> None:
        with socket.create_connection(served, timeout=300) as sock:
            sock.sendall(request)
            sent.set()
            response = http.client.HTTPResponse(sock)
            response.begin()
            outcome["status"], outcome["body"] = response.status, response.read()
            events.append("large")

    worker = threading.Thread(target=large)
    worker.start()
    try:
        assert sent.wait(120), "the large request was not sent"
        conn = http.client.HTTPConnection(*served, timeout=300)
        try:
            while worker.is_alive() and events.count("healthz") < HEALTHZ_ROUNDS:
                status, body = _send(conn, "GET", "/healthz")
                assert status == 200 and body == {"status": "ok"}
                events.append("healthz")
        finally:
            conn.close()
    finally:
        worker.join(300)
    return events, outcome["status"], outcome["body"]


def test_a_large_resource_does_not_stall_other_requests(served: tuple[str, int]) -> None:
    body = _large_patient()
    head = (f"POST /Patient HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/fhir+json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    events, status, answer = _healthz_while(served, head + body)
    assert status == 201, answer[:500]
    assert events.index("large") >= HEALTHZ_ROUNDS, events  # /healthz kept answering meanwhile
    created = orjson.loads(answer)

    # serialising it as FHIR XML is as costly, and no more blocking
    path = f"/Patient/{created['id']}?_format=xml"
    get = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
    events, status, answer = _healthz_while(served, get)
    assert status == 200 and answer.startswith(b"<"), answer[:500]
    assert events.index("large") >= HEALTHZ_ROUNDS, events


@pytest.mark.parametrize("target", [b"/Patient?family=\xe7\x8e\x8b", b"/Patient?family=a b"])
def test_a_url_that_is_not_percent_encoded_gets_an_operation_outcome(served: tuple[str, int], target: bytes) -> None:
    """The HTTP parser refuses a raw non-ASCII character or space in the request line; the answer
    is still a FHIR OperationOutcome that says how to encode the URL, not uvicorn's plain text."""
    with socket.create_connection(served, timeout=30) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"content-type: application/fhir+json" in head.lower()
    outcome = orjson.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert "percent-encoded" in outcome["issue"][0]["diagnostics"]

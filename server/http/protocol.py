"""The HTTP/1.1 protocol uvicorn runs: httptools, with upgrade offers handed over to h11.

llhttp (the parser inside httptools) takes a request carrying ``Connection: Upgrade`` and
``Upgrade: h2c`` -- which Java's ``HttpClient`` and ``curl --http2`` send by default -- as ending at
its headers: the body is skipped and the bytes after the headers are left for the "upgraded"
protocol. uvicorn's httptools protocol only knows WebSocket upgrades, so it ran such a request with
an empty body (a create failed with "request body is empty", a ``POST _search`` lost its criteria)
and then read the body as the next request.

h11 parses the same request correctly (the body is read; a declined upgrade keeps the connection
HTTP/1.1) but costs 1.4-2x the server CPU per request, so it is used only where it is needed: a
connection whose request offers a non-WebSocket upgrade is handed to uvicorn's h11 protocol, with
the request head rebuilt and the unparsed bytes passed on -- the same hand-over uvicorn does for
WebSockets. Every other connection keeps httptools' speed.

Run with ``uvicorn server.asgi:app --http server.http.protocol:UpgradeSafeHttpToolsProtocol``;
``yidang serve`` does this.
"""

from __future__ import annotations

import httptools
import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

MALFORMED = (
    "The HTTP request could not be parsed: its request line or a header is malformed. URLs must be "
    "percent-encoded (UTF-8): a raw space or a raw non-ASCII character such as 王 is not allowed in a URL; "
    "send family=%E7%8E%8B for family=王."
)


def malformed_request_outcome() -> bytes:
    """The OperationOutcome answered to a request the HTTP parser refuses, before any FHIR code runs
    (http://hl7.org/fhir/R4/http.html#2.21.0.5: errors are OperationOutcomes where the server can)."""
    return orjson.dumps({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "structure", "diagnostics": MALFORMED}],
    })


class UpgradeSafeHttpToolsProtocol(HttpToolsProtocol):
    """httptools for plain requests; WebSocket upgrades as in uvicorn; any other upgrade offer -> h11."""

    def _should_upgrade(self) -> bool:
        """Whether a request llhttp parsed as an upgrade leaves this protocol (uvicorn asks only
        then): always, so no request cycle is started with the body llhttp skipped."""
        return True

    def _is_websocket_upgrade(self) -> bool:
        return super()._should_upgrade()

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            message = "Invalid HTTP request received."
            self.logger.warning(message)
            self.send_400_response(message)
        except httptools.HttpParserUpgrade as upgrade:
            if self._is_websocket_upgrade():
                self.handle_websocket_upgrade()
            else:
                offset = upgrade.args[0] if upgrade.args and isinstance(upgrade.args[0], int) else len(data)
                self._continue_with_h11(data[offset:])

    def send_400_response(self, msg: str) -> None:
        """uvicorn answers a request llhttp refuses with plain text; FHIR clients get an OperationOutcome."""
        body = malformed_request_outcome()
        content = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend([
            b"content-type: application/fhir+json; charset=utf-8\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n",
            b"\r\n",
            body,
        ])
        self.transport.write(b"".join(content))
        self.transport.close()

    def _continue_with_h11(self, rest: bytes) -> None:
        """Hand the connection to h11: the parsed request head, rebuilt, then the unparsed bytes
        (the body and anything after it)."""
        self.connections.discard(self)
        version = self.parser.get_http_version().encode("ascii")
        head = [self.scope["method"].encode("ascii"), b" ", self.url, b" HTTP/", version, b"\r\n"]
        for name, value in self.headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        protocol = H11Protocol(config=self.config, server_state=self.server_state, app_state=self.app_state)
        protocol.connection_made(self.transport)
        self.transport.set_protocol(protocol)
        protocol.data_received(b"".join(head) + rest)

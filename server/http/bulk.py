"""Routes of bulk data jobs (issue 16 §2): the status URL ``[base]/_bulk/{job}`` (GET polls,
DELETE cancels) and the files ``[base]/_bulk/{job}/{Type}-{n}.ndjson``. Through :func:`endpoint`
like every FHIR route (token, policy, rate limit, metrics, audit); the work is in
:mod:`server.bulk.status`.

A file is NDJSON, not a FHIR JSON resource: the download answers ``application/fhir+ndjson`` to an
``Accept`` naming NDJSON (or any type), so the negotiation of FHIR formats is told JSON for it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.bulk.jobs import status
from server.http.endpoint import Call, endpoint
from server.interactions.result import Result

NDJSON_ACCEPT = ("ndjson", "*/*")


async def job_status(call: Call) -> Result:
    return await status.status(call.svc, call.path("job"), call.base)


async def job_cancel(call: Call) -> Result:
    return await status.cancel(call.svc, call.path("job"))


async def job_file(call: Call) -> Result:
    accepts = call.request.headers.get("accept-encoding", "")
    gzip = any(part.split(";")[0].strip() in ("gzip", "*") for part in accepts.split(","))
    return await status.download(call.svc, call.path("job"), call.path("name"), gzip)


def bulk_routes() -> list[BaseRoute]:
    poll = endpoint("bulk-status", job_status)
    cancel = endpoint("bulk-cancel", job_cancel)
    download = endpoint("bulk-download", job_file)

    async def on_status(request: Request) -> Response:
        return await (cancel if request.method == "DELETE" else poll)(request)

    async def on_file(request: Request) -> Response:
        raw = request.scope["headers"]
        accept = b",".join(v for k, v in raw if k == b"accept").decode("latin-1")
        if any(kind in accept for kind in NDJSON_ACCEPT):  # the file's own type: negotiated as JSON
            request = Request({**request.scope, "headers": [(k, v) for k, v in raw if k != b"accept"]},
                              request.receive)
        return await download(request)

    return [
        Route("/_bulk/{job}", on_status, methods=["GET", "HEAD", "DELETE"]),
        Route("/_bulk/{job}/{name}", on_file, methods=["GET", "HEAD"]),
    ]

"""Invoking an operation over HTTP: find it in the table, read its input, run it."""

from __future__ import annotations

from typing import Any

from server.http.endpoint import Call, parse_resource
from server.http.negotiation import body_format
from server.interactions.result import Result
from server.interactions.write import check_type
from server.operations.parameters import from_parameters, is_input
from server.operations.registry import Invocation, Level


async def invoke(call: Call, level: Level) -> Result:
    path = call.request.path_params
    type_ = path.get("type")
    if type_ is not None:
        check_type(call.svc, type_)
    method = "GET" if call.request.method == "HEAD" else call.request.method
    op = call.request.app.state.operations.find(path["name"], level, type_, method)
    params: list[tuple[str, Any]] = [(k, v) for k, v in call.params if k not in ("_format", "_pretty")]
    resource: dict[str, Any] | None = None
    body = b""
    content_type = call.request.headers.get("content-type", "")
    if method == "POST":
        body = await call.body()
        if not op.raw_body and body.strip():
            data = parse_resource(body, body_format(content_type), limits=call.limits)
            if data["resourceType"] == "Parameters" and is_input(data, op.inputs):
                params.extend(from_parameters(data))
            else:
                resource = data
    return await op.handler(Invocation(
        svc=call.svc, name=op.name, level=level, method=method, base=call.base, type=type_, id=path.get("id"),
        params=params, resource=resource, body=body, content_type=content_type, strict=call.neg.strict,
        headers=call.request.headers,
    ))

"""The wrapper every FHIR route runs in: negotiation, access policy, error mapping, metrics,
logging and audit, in one place so handlers stay a few lines each."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from profiles.fhirxml import FhirXmlError, XmlTooLarge, from_xml
from profiles.numbers import json_decimal
from server.access.grant import OPEN_GRANT, Grant
from server.access.principal import OPEN, Principal
from server.auth.service import request_base
from server.consent.load import with_consents
from server.consent.purpose import HEADER as PURPOSE_HEADER
from server.consent.purpose import declared_purpose
from server.errors import BadRequest, FhirError, NotFound, PayloadTooLarge
from server.fhir.json import Limits, check_shape, load_resource, loads
from server.hooks import Access
from server.http.negotiation import Format, Negotiated, check_content_type, negotiate
from server.http.observability import Metrics, log_request
from server.http.responses import error_response, render_off_loop
from server.interactions.masking import mask_result
from server.interactions.offload import off_loop
from server.interactions.result import Result
from server.interactions.services import Services

log = logging.getLogger("yidang")


@dataclass
class Call:
    """What a handler gets: the request, its negotiated format, the services and the base URL."""

    request: Request
    neg: Negotiated
    svc: Services
    base: str

    @property
    def params(self) -> list[tuple[str, str]]:
        return list(self.request.query_params.multi_items())

    async def form(self) -> list[tuple[str, str]]:
        """The ``application/x-www-form-urlencoded`` body of ``POST .../_search``, in order
        (http://hl7.org/fhir/R4/http.html#search); decoded here, within the body size limit, so
        search needs no multipart parser."""
        content_type = self.request.headers.get("content-type", "")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            raise BadRequest("POST .../_search takes application/x-www-form-urlencoded parameters")
        try:
            text = (await self.body()).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("The form body is not UTF-8") from None
        return parse_qsl(text, keep_blank_values=True)

    def path(self, name: str) -> str:
        return self.request.path_params[name]

    async def body(self) -> bytes:
        limit = self.svc.settings.max_body_bytes
        declared = self.request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    @property
    def limits(self) -> Limits:
        return parse_limits(self.svc)

    async def resource(self) -> dict[str, Any]:
        fmt = check_content_type(self.request)
        body = await self.body()
        return await off_loop(len(body), partial(parse_resource, limits=self.limits), body, fmt)

    async def json_patch(self) -> Any:
        check_content_type(self.request, patch=True)
        body = await self.body()
        return await off_loop(len(body), partial(loads, what="JSON Patch document", limits=self.limits), body)


Handler = Callable[[Call], Awaitable[Result]]


def parse_limits(svc: Services) -> Limits:
    settings = svc.settings
    return Limits(settings.max_depth, settings.max_elements, settings.max_array_length)


def parse_resource(body: bytes, fmt: Format, *, what: str = "request body",
                   limits: Limits | None = None) -> dict[str, Any]:
    """The JSON form of a resource sent as FHIR JSON or FHIR XML (400 with the reason if it is neither),
    within the same size limits either way (XML is held to them while it is read, and its JSON form
    checked like parsed JSON), with decimals keeping their lexical form."""
    limits = limits or Limits()
    if fmt == "json":
        return load_resource(body, what=what, limits=limits)
    if not body.strip():
        raise BadRequest(f"The {what} is empty; a FHIR XML resource was expected")
    try:
        resource = from_xml(body, decimal=json_decimal, max_depth=limits.max_depth,
                            max_elements=limits.max_elements)
    except XmlTooLarge as error:
        raise BadRequest(f"The {what} {error}") from None
    except FhirXmlError as error:
        raise BadRequest(f"The {what} is not FHIR XML: {error}") from None
    check_shape(resource, what=what, limits=limits)
    return resource


def base_url(request: Request, svc: Services) -> str:
    return request_base(svc.settings, request)


PUBLIC = frozenset({"capabilities"})
"""Interactions answered without a token when authorization is on (``GET /metadata``)."""


async def principal_of(request: Request) -> Principal:
    """Who the request acts as: the verified bearer token's principal (401 without one when
    authorization is on), or :data:`OPEN` when it is off."""
    auth = getattr(request.app.state, "auth", None)
    return OPEN if auth is None else await auth.principal(request)


def grant_for(request: Request, principal: Principal) -> Grant:
    """The policy's decision for ``principal`` (the open grant when authorization is off)."""
    policy = getattr(request.app.state, "policy", None)
    return OPEN_GRANT if policy is None or principal.is_open else policy.grant(principal)


def endpoint(interaction: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        started = time.perf_counter()
        svc: Services = request.app.state.services
        metrics: Metrics = request.app.state.metrics
        neg: Negotiated | None = None
        params = request.path_params
        address = request.client.host if request.client else None
        access = Access(interaction, request.method, request.url.path, params.get("type"), params.get("id"),
                        address, query=request.url.query, address=address)
        outcome: str | None = None
        body: object | None = None
        reference: str | None = None
        try:
            neg = negotiate(request)
            for name in ("type", "id"):
                if str(params.get(name, "")).startswith("$"):
                    raise NotFound(f"Operation '{params[name]}' is not supported by this server")
            if interaction not in PUBLIC:
                principal = await principal_of(request)
                purpose = declared_purpose(request.headers.get(PURPOSE_HEADER), principal.purpose)
                principal = principal if purpose == principal.purpose else replace(principal, purpose=purpose)
                limiter = getattr(request.app.state, "rate_limiter", None)
                if limiter is not None and not principal.is_open:
                    # per client, and per user of a client (one person cannot use up an app's bucket)
                    limiter.hit(f"{principal.client_id or ''}/{principal.subject}", principal.role)
                svc = svc.for_grant(grant_for(request, principal))
                # built anew, not dataclasses.replace: this runs for every request
                access = Access(interaction, request.method, access.path, access.resource_type, access.resource_id,
                                access.client if principal.is_open else principal.client_id or principal.subject,
                                principal=principal, query=access.query, address=address)
                svc.grant.check_interaction(interaction if interaction != "operation" else
                                            f"operation:{params.get('name', '')}", params.get("type"))
                svc = await with_consents(svc)  # the patients' Consents, for a caller subject to them
            await svc.hooks.check(access)
            call = Call(request, neg, svc, base_url(request, svc))
            result = mask_result(svc, await handler(call))  # what is above the caller's clearance
            if svc.hooks.audit_sinks:  # what was read or written, for the AuditEvent's entities and patients
                found = result.version
                body = result.body()
                reference = None if found is None else f"{found.type}/{found.id}/_history/{found.version}"
            response = await render_off_loop(result, neg, base=call.base)
        except FhirError as error:
            outcome = error.message
            response = error_response(error, neg)
        except Exception:
            outcome = "Internal server error"
            log.exception("unexpected error in %s %s", request.method, request.url.path)
            response = error_response(FhirError("Internal server error; the request was not completed"), neg)
        elapsed = time.perf_counter() - started
        metrics.observe(interaction, response.status_code, elapsed)
        if svc.settings.log_requests:
            log_request(request, interaction, response.status_code, elapsed, svc.store.kind)
        if svc.hooks.audit_sinks:  # built anew, not dataclasses.replace (several times slower, every request)
            await svc.hooks.audit(Access(access.interaction, access.method, access.path, access.resource_type,
                                         access.resource_id, access.client, response.status_code, access.principal,
                                         access.query, address, outcome, body, reference))
        return response

    return run

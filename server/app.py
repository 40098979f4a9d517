"""The ASGI application factory.

``create_app`` wires settings, the store, the search registry, the validator and the hooks into
one :class:`~server.interactions.services.Services`, registers the route table and maps every
error to an OperationOutcome. The store is opened in the lifespan, so a process that cannot reach
its store fails at start-up, not at the first request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from profiles.bindings import LayeredChecker
from profiles.definitions import core
from profiles.engine import ProfileEngine
from profiles.issues import ERROR
from profiles.regional import definitions as regional_definitions
from profiles.registry import ProfileRegistry
from profiles.required import for_terminology
from profiles.validator import default_validator
from server import __version__
from server.access.policy import Policy
from server.audit.log import install as install_audit
from server.auth.admin import admin_routes
from server.auth.service import AuthService
from server.bulk.jobs.export import Acting, ExportJob
from server.bulk.jobs.imports import ImportJob
from server.consent.load import with_consents
from server.errors import FhirError, Issue, MethodNotAllowed, NotFound, UpstreamError
from server.grading.policy import load_policy
from server.hooks import Hooks
from server.http.docs import docs_page
from server.http.endpoint import grant_for
from server.http.observability import Metrics
from server.http.openapi import openapi_json
from server.http.ratelimit import RateLimiter
from server.http.responses import error_response
from server.http.routes import fhir_routes
from server.http.security import install as install_security
from server.identity import linking as identity_linking
from server.interactions import search_parameters
from server.interactions.conformance import conformance_listener, load_stored
from server.interactions.services import Services
from server.jobs.reindex import ReindexJob
from server.jobs.runner import JobRunner
from server.operations.table import operation_table
from server.search.index import Indexer
from server.search.registry import SearchRegistry
from server.settings import Settings, resolve_store
from server.stores.base import Store
from terminology import Terminology


def make_store(settings: Settings) -> Store:
    if settings.store == "mongo":
        from server.stores.mongo import MongoStore

        if not settings.mongodb_uri:
            raise ValueError("YIDANG_MONGODB_URI (or --mongodb-uri) is required for the mongo store")
        return MongoStore(settings.mongodb_uri, database=settings.mongodb_database,
                          capabilities=settings.mongodb_query_forms)
    from server.stores.sqlite import SqliteStore

    return SqliteStore(settings.data_dir)


def make_validator(settings: Settings, registry: ProfileRegistry, terminology: Terminology) -> Any:
    """The validation seam: structure and required bindings on every write; core invariants and the other
    bindings, claimed and required profiles with the profile engine."""
    engine = ProfileEngine(registry, terminology=LayeredChecker(registry, terminology))
    # every write checks required bindings to enumerable value sets against the same terminology
    # the engine asks, so a write refuses the binding errors $validate and `yidang validate` report
    structural = default_validator().with_bindings(for_terminology(terminology))
    full = structural.with_engine(engine)
    # $validate (complete=True) answers as the HL7 reference validator: an unresolvable extension outside the
    # HL7/example domains is an error; the profiles a resource must meet unclaimed (a vital sign's, an
    # ImplementationGuide's global ones) apply; a code its code system (held in full) lacks is an error.
    # Writes stay lenient: FHIR lets an application ignore extensions it does not understand
    # (http://hl7.org/fhir/R4/extensibility.html), and a write checks what the resource claims and the
    # server requires, so stored data stays writable as it was. tests/profiles/test_validator_cases.py
    # builds its validator here too, so the harness and the server cannot drift.
    conformance = structural.with_engine(engine.with_options(
        unknown_extensions=ERROR, implied=True, code_systems=lambda s, c: terminology.check_code(s, c).result))
    required = settings.required_profiles
    core = settings.validation == "core"

    def validate(resource: dict[str, Any], *, profiles: Sequence[str] = (), complete: bool = False) -> list[Issue]:
        wanted = [*profiles, *required.get(str(resource.get("resourceType")), ())]
        meta = resource.get("meta")
        claims = isinstance(meta, dict) and bool(meta.get("profile"))
        validator = conformance if complete else full if (core or wanted or claims) else structural
        return [Issue(i.severity, i.code, i.message, (i.expression,) if i.expression else ())
                for i in validator.validate(resource, profiles=wanted)]

    return validate


def create_app(settings: Settings | None = None, *, store: Store | None = None, hooks: Hooks | None = None) -> FastAPI:
    settings = resolve_store(settings or Settings())
    store = store or make_store(settings)
    registry = SearchRegistry()
    operations = operation_table()
    terminology = Terminology()
    profile_registry = ProfileRegistry()
    for resource in regional_definitions():  # the regional profiles ship with the server
        profile_registry.add(resource)
        if resource["resourceType"] in ("CodeSystem", "ValueSet", "ConceptMap"):
            terminology.add(resource)
    services = Services(
        settings=settings,
        store=store,
        registry=registry,
        indexer=Indexer(registry, base_url=settings.base_url),
        validate=make_validator(settings, profile_registry, terminology),
        resource_types=core().resource_types,
        hooks=hooks or Hooks(),
        operations=operations,
        terminology=terminology,
        profiles=profile_registry,
    )
    if settings.grading:
        load_policy(settings.grading_policy)  # a mistake in the grading policy stops the start, named
    services.listeners.append(conformance_listener(services))
    services.listeners.append(search_parameters.listener(services))
    services.listeners.append(identity_linking.listener(services))  # Persons follow the Patients (issue 15)
    bulk = Acting(with_consents)  # bulk jobs act for the Principal that asked (issue 16 §2)
    jobs = JobRunner(services, [ReindexJob(), ExportJob(bulk), ImportJob(bulk)], lease_s=settings.job_lease_seconds)
    services.jobs = jobs

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.open()
        await load_stored(services)
        await search_parameters.load(services)
        await jobs.start()  # resumes the jobs a previous process left unfinished
        try:
            yield
        finally:
            await jobs.stop()  # running jobs are released, to be resumed at the next start
            await store.close()

    app = FastAPI(title="Yidang FHIR R4 server", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    app.state.policy = Policy(registry, core(), services.resource_types)
    auth = AuthService(settings, store)
    app.state.auth = auth
    app.state.operations = operations
    app.state.metrics = Metrics()
    install_audit(app, services)  # AuditEvents for every request when auditing is on (issue 14)
    app.state.rate_limiter = RateLimiter(settings)  # per client, by role; /auth/* per IP (AuthThrottle)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if auth.enabled and not settings.public_readyz:
            await auth.principal(request)  # any valid token (401 otherwise)
        ok = await store.ping()
        return JSONResponse({"status": "ok" if ok else "unavailable", "store": store.kind},
                            status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        if auth.enabled and not settings.public_metrics:  # the policy decides who may (role platform)
            principal = await auth.principal(request)
            grant_for(request, principal).check_interaction("metrics", None)
        return app.state.metrics.response()

    app.router.routes.extend([
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),  # OpenAPI 3 from the CapabilityStatement
        Route("/docs", docs_page, methods=["GET"]),
        # the OAuth endpoints come before the FHIR routes (``GET /{type}/{id}`` would answer ``/.well-known/…``)
        *(auth.routes() if auth.enabled else ()),
        *admin_routes(auth),
        *fhir_routes(),
    ])

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            return error_response(MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}"))
        if exc.status_code == 404:
            return error_response(NotFound(f"No FHIR endpoint at {request.url.path}"))
        return error_response(UpstreamError(str(exc.detail), status=exc.status_code))

    async def fhir_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FhirError)
        return error_response(exc)

    app.add_middleware(BaseWithoutSlash)
    install_security(app, settings, app.state.rate_limiter)  # security headers, CORS, /auth/* IP limit
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(FhirError, fhir_error)
    return app


class BaseWithoutSlash:
    """``POST [base]`` is the same as ``POST [base]/`` (batch/transaction, system search): when the
    server sits under a path prefix, answer it instead of redirecting (clients do not re-POST)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            root = scope.get("root_path", "")
            if root and scope["path"] == root:
                scope = {**scope, "path": root + "/", "raw_path": (root + "/").encode()}
        await self.app(scope, receive, send)

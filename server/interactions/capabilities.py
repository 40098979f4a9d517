"""The CapabilityStatement (http://hl7.org/fhir/R4/capabilitystatement.html), generated from what
is implemented: resource types from the definitions, search parameters from the live registry
(only the ones the indexer can extract and the parser can answer), interactions from the table
below. It never claims more than works: declined parameters (``_text``, ``_content``, ``near``)
are left out.
"""

from __future__ import annotations

from typing import Any

from server import __version__
from server.fhir.instant import now_us, to_instant
from server.interactions.services import Services
from server.search.compartment import COMPARTMENTS

TYPE_INTERACTIONS = (
    "read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type",
)
SYSTEM_INTERACTIONS = ("transaction", "batch", "search-system", "history-system")


def _search_params(svc: Services, type_: str) -> list[dict[str, Any]]:
    out = []
    for code, param in sorted(svc.registry.for_type(type_).items()):
        if not svc.registry.is_supported(param):
            continue
        entry: dict[str, Any] = {"name": code, "type": param.type}
        if param.url:
            entry["definition"] = param.url
        out.append(entry)
    return out


def _operations(svc: Services, type_: str | None, base: str) -> list[dict[str, Any]]:
    out = []
    for op in svc.operations.all() if svc.operations is not None else []:
        if type_ is None and "system" not in op.levels:
            continue
        if type_ is not None and not ({"type", "instance"} & op.levels and (op.types is None or type_ in op.types)):
            continue
        entry: dict[str, Any] = {"name": op.name}
        entry["definition"] = op.definition or f"{base}/OperationDefinition/{op.name}"
        out.append(entry)
    return out


OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def security(svc: Services, base: str) -> dict[str, Any]:
    """``rest.security``: SMART on FHIR with the OAuth endpoints when ``auth = smart``; otherwise only
    what holds (no service is claimed: the server is open), and CORS when origins are allowed."""
    settings = svc.settings
    cors = {"cors": True} if settings.cors_origins else {}
    if settings.auth != "smart":
        return {**cors, "description": "Authorization is off: this server answers every request without a token."}
    return {
        "extension": [{"url": OAUTH_URIS, "extension": [
            {"url": name, "valueUri": f"{base}/auth/{name}"} for name in ("token", "authorize", "introspect", "revoke")
        ]}],
        **cors,
        "service": [{"coding": [{"system": SECURITY_SERVICE, "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"}],
                     "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)"}],
        "description": f"SMART on FHIR: every request but /metadata needs a bearer token from {base}/auth/token "
                       f"(discovery: {base}/.well-known/smart-configuration).",
    }


def capability_statement(svc: Services, *, base: str) -> dict[str, Any]:
    conditional_delete = {"not-supported": "not-supported", "single": "single", "multiple": "multiple"}
    resources = []
    for type_ in sorted(svc.resource_types):
        resources.append({
            "type": type_,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{type_}",
            "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "full-support",
            "conditionalUpdate": True,
            "conditionalDelete": conditional_delete[svc.settings.conditional_delete],
            "referencePolicy": ["literal", "logical"],
            "searchInclude": ["*"],
            "searchRevInclude": ["*"],
            "searchParam": _search_params(svc, type_),
            **({"operation": ops} if (ops := _operations(svc, type_, base)) else {}),
        })
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": to_instant(now_us()),
        "publisher": "Yidang",
        "kind": "instance",
        "software": {"name": "Yidang", "version": __version__},
        "implementation": {"description": f"Yidang FHIR R4 server on the {svc.store.kind} store", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json", "application/fhir+xml", "xml"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [{
            "mode": "server",
            "security": security(svc, base),
            "resource": resources,
            "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
            "searchParam": [
                {"name": "_id", "type": "token"},
                {"name": "_lastUpdated", "type": "date"},
                {"name": "_type", "type": "token"},
            ],
            **({"operation": ops} if (ops := _operations(svc, None, base)) else {}),
            "compartment": [f"http://hl7.org/fhir/CompartmentDefinition/{c[0].lower()}{c[1:]}" for c in COMPARTMENTS],
        }],
    }

"""The ``capability`` suite: TestScripts generated at run time from the target's CapabilityStatement
(:mod:`conformance.capability.generate`), with minimal valid resources derived from the R4
definitions (:mod:`conformance.capability.minimal`)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import httpx

from conformance.capability.generate import capability_scripts
from conformance.runner import LoadedScript
from conformance.runner.operations import parse_body
from conformance.runner.script import ScriptError

__all__ = ["capability_scripts", "fetch_statement", "generate"]


async def fetch_statement(client: httpx.AsyncClient, base_url: str) -> dict[str, Any]:
    """GET [base]/metadata (http://hl7.org/fhir/R4/http.html#capabilities) as JSON."""
    try:
        response = await client.get(f"{base_url.rstrip('/')}/metadata", headers={"Accept": "application/fhir+json"})
    except httpx.HTTPError as error:
        raise ScriptError(f"cannot read the CapabilityStatement: {type(error).__name__}: {error}") from None
    body = parse_body(response.content, response.headers.get("content-type"))
    if response.status_code != 200 or not isinstance(body, dict):
        raise ScriptError(f"GET {base_url}/metadata answered {response.status_code} without a CapabilityStatement")
    return body


async def generate(client: httpx.AsyncClient, base_url: str, *, types: Collection[str] | None = None,
                   system: bool = True) -> list[LoadedScript]:
    """The ``capability`` scripts for the server at ``base_url`` (optionally only for ``types``)."""
    return capability_scripts(await fetch_statement(client, base_url), types=types, system=system)

"""``validateProfileId`` through the project's validator (:mod:`profiles.validator`).

A core resource profile (``http://hl7.org/fhir/StructureDefinition/Patient``) is checked with the
structural validator; any other canonical URL goes to the validator with the profile engine, which
knows the core profiles (vitalsigns, bp…) and the regional profiles Yidang ships
(:mod:`profiles.regional`), so the ``regional`` suite can check what a server stored.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from profiles.definitions import core
from profiles.validator import Validator, default_validator

CORE = "http://hl7.org/fhir/StructureDefinition/"
BLOCKING = ("error", "fatal")


@cache
def profile_validator() -> Validator:
    """The validator with the core definitions, bindings and the regional profiles (built once)."""
    from profiles.regional import regional_registry
    from profiles.report import build_validator

    return build_validator(registry=regional_registry())


def profile_check(resource: dict[str, Any], url: str) -> list[str]:
    """Error messages of ``resource`` against the profile ``url`` (empty: it conforms)."""
    type_name = url[len(CORE):] if url.startswith(CORE) else None
    if type_name is not None and core().is_resource_type(type_name):
        if resource.get("resourceType") != type_name:
            return [f"the resource is a {resource.get('resourceType')}, not a {type_name}"]
        issues = default_validator().validate(resource)
    else:
        try:
            issues = profile_validator().validate(resource, profiles=[url])
        except (KeyError, ValueError) as error:
            return [f"profile {url} cannot be checked: {error}"]
    return [f"{i.expression or resource.get('resourceType')}: {i.message}" for i in issues if i.severity in BLOCKING]

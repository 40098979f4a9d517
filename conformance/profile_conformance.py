"""``yidang conformance validate``: how well the data a server holds conforms to profiles.

Testers point it at a server that a vendor's interface has filled: it searches the profile's
resource type, follows the Bundles' ``next`` links (http://hl7.org/fhir/R4/http.html#paging) until
``count`` resources are fetched, validates each against the profile with the project's validator
(R4 core, the regional profiles, plus any implementation-guide folder given), and reports per
profile the conformance rate and the issues found most often. Issues are grouped by severity,
location with list indices dropped (``Patient.identifier[3].value`` -> ``Patient.identifier.value``)
and message with quoted values blanked, so one defect repeated over a thousand records is one line.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from conformance.runner import validation
from conformance.runner.operations import parse_body
from profiles.issues import ValidationIssue
from profiles.regional import regional_registry
from profiles.report import build_validator
from profiles.validator import Validator

PAGE = 100
BLOCKING = ("error", "fatal")
_INDEX = re.compile(r"\[\d+\]")
_QUOTED = re.compile(r"'[^']*'")


class ConformanceError(ValueError):
    """The run cannot be done: unknown profile, unreadable server answer."""


@dataclass
class Checked:
    reference: str
    """``Type/id`` of the resource validated."""
    issues: list[ValidationIssue]

    @property
    def errors(self) -> int:
        return sum(1 for i in self.issues if i.severity in BLOCKING)

    @property
    def warnings(self) -> int:
        return sum(1 for i in self.issues if i.severity == "warning")


@dataclass
class ProfileReport:
    profile: str
    type: str
    checked: list[Checked] = field(default_factory=list)

    @property
    def conforming(self) -> int:
        return sum(1 for c in self.checked if not c.errors)

    @property
    def rate(self) -> float:
        """Percentage of the fetched resources without errors (100 when none was fetched)."""
        return round(100.0 * self.conforming / len(self.checked), 1) if self.checked else 100.0

    def top_issues(self, limit: int = 10) -> list[dict[str, Any]]:
        """The most frequent issues (errors first), each with how many resources showed it."""
        counts: Counter[tuple[str, str, str, str]] = Counter()
        examples: dict[tuple[str, str, str, str], str] = {}
        for checked in self.checked:
            for key, message in {_key(i): i.message for i in checked.issues if i.severity != "information"}.items():
                counts[key] += 1
                examples.setdefault(key, message)
        ranked = sorted(counts.items(), key=lambda kv: (kv[0][0] not in BLOCKING, -kv[1], kv[0]))
        return [{"count": n, "severity": k[0], "code": k[1], "expression": k[2], "message": k[3],
                 "example": examples[k]} for k, n in ranked[:limit]]


def _key(issue: ValidationIssue) -> tuple[str, str, str, str]:
    return issue.severity, issue.code, _INDEX.sub("", issue.expression or ""), _QUOTED.sub("'…'", issue.message)


def profile_validator(ig_dirs: Sequence[Path] = ()) -> Validator:
    """The validator with the R4 core, the regional profiles and the implementation guides given."""
    if not ig_dirs:
        return validation.profile_validator()  # built once per process
    return build_validator(ig_dirs, registry=regional_registry())


def profile_type(validator: Validator, url: str) -> str:
    """The resource type a profile constrains (``ConformanceError`` when it is not a known resource profile)."""
    engine = validator.engine
    sd = engine.registry.structure_definition(url) if engine is not None else None
    if sd is None:
        raise ConformanceError(f"profile {url} is not known (give its implementation guide with --ig)")
    if sd.get("kind") != "resource":
        raise ConformanceError(f"{url} does not profile a resource (kind {sd.get('kind')!r})")
    return str(sd["type"])


async def fetch(client: httpx.AsyncClient, base_url: str, type_: str, count: int) -> list[dict[str, Any]]:
    """Up to ``count`` resources of ``type_``: a search, then its ``next`` links."""
    url: str | None = f"{base_url.rstrip('/')}/{type_}?_count={min(count, PAGE)}"
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    while url and len(found) < count and url not in seen:
        seen.add(url)
        try:
            response = await client.get(url, headers={"Accept": "application/fhir+json"})
        except httpx.HTTPError as error:
            raise ConformanceError(f"GET {url}: {type(error).__name__}: {error}") from None
        bundle = parse_body(response.content, response.headers.get("content-type"))
        if response.status_code != 200 or not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise ConformanceError(f"GET {url} answered {response.status_code} without a Bundle")
        for entry in bundle.get("entry", []):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            mode = (entry.get("search") or {}).get("mode", "match") if isinstance(entry, dict) else "match"
            if isinstance(resource, dict) and resource.get("resourceType") == type_ and mode == "match":
                found.append(resource)
        url = next((link.get("url") for link in bundle.get("link", []) if link.get("relation") == "next"), None)
    return found[:count]


def check(resources: Iterable[dict[str, Any]], profile: str, type_: str, validator: Validator) -> ProfileReport:
    report = ProfileReport(profile, type_)
    for resource in resources:
        reference = f"{resource.get('resourceType')}/{resource.get('id', '?')}"
        report.checked.append(Checked(reference, validator.validate(resource, profiles=[profile])))
    return report


async def run(server: str, profiles: Sequence[str], *, type_: str | None = None, count: int = 100,
              ig_dirs: Sequence[Path] = (), timeout: float = 30.0,
              client: httpx.AsyncClient | None = None) -> list[ProfileReport]:
    """Fetch and validate, one report per profile (``client`` for in-process use)."""
    validator = profile_validator(ig_dirs)
    targets = [(url, type_ or profile_type(validator, url)) for url in profiles]
    own = client is None
    active = client if client is not None else httpx.AsyncClient(timeout=timeout)
    try:
        fetched: dict[str, list[dict[str, Any]]] = {}
        for _, target in targets:
            if target not in fetched:
                fetched[target] = await fetch(active, server, target, count)
    finally:
        if own:
            await active.aclose()
    return [check(fetched[target], url, target, validator) for url, target in targets]


def to_text(reports: Sequence[ProfileReport], *, server: str, top: int = 10) -> str:
    lines = [f"Profile conformance of {server}"]
    for report in reports:
        lines.append(f"{report.profile} ({report.type}): {report.conforming}/{len(report.checked)} conform "
                     f"({report.rate:.1f}%)")
        for issue in report.top_issues(top):
            where = f" at {issue['expression']}" if issue["expression"] else ""
            lines.append(f"  {issue['count']:5d} x {issue['severity']:8s} {issue['code']}{where}: {issue['example']}")
    return "\n".join(lines)


def to_json(reports: Sequence[ProfileReport], *, server: str, top: int = 10) -> bytes:
    return orjson.dumps({"server": server, "profiles": [
        {"profile": r.profile, "type": r.type, "checked": len(r.checked), "conforming": r.conforming, "rate": r.rate,
         "topIssues": r.top_issues(top),
         "resources": [{"reference": c.reference, "errors": c.errors, "warnings": c.warnings} for c in r.checked]}
        for r in reports]}, option=orjson.OPT_INDENT_2)

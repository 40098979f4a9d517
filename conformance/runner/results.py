"""What a run produced: one :class:`ActionResult` per setup/test/teardown action, grouped per
test and per script. Reports (TestReport, JUnit, HTML) are all rendered from these values.

Outcomes are the TestReport action result codes (http://hl7.org/fhir/R4/valueset-report-action-result-codes.html).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["pass", "skip", "fail", "warning", "error"]
SEVERITY: dict[Outcome, int] = {"pass": 0, "skip": 0, "warning": 1, "fail": 2, "error": 3}


@dataclass
class Exchange:
    """One HTTP request and the response to it, as sent and received."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes = b""
    request_resource: Any = None
    """What was sent, in JSON form (the fixture after substitution)."""
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""
    resource: Any = None
    """The response body parsed (FHIR JSON or XML -> JSON form), None if it was neither."""
    elapsed_ms: float = 0.0
    transport_error: str | None = None

    def header(self, name: str, *, request: bool = False) -> str | None:
        headers = self.request_headers if request else self.response_headers
        wanted = name.lower()
        return next((v for k, v in headers.items() if k.lower() == wanted), None)


@dataclass
class ActionResult:
    kind: Literal["operation", "assert"]
    label: str
    outcome: Outcome
    message: str = ""
    exchange: Exchange | None = None
    elapsed_ms: float = 0.0
    detail: str = ""
    """Where the action is in the script (``setup.action[2].assert``), for people reading reports."""


def worst(outcomes: list[Outcome]) -> Outcome:
    """The outcome a group of actions shows: errors over failures over warnings; all-skip is skip."""
    if not outcomes:
        return "pass"
    top = max(outcomes, key=lambda o: SEVERITY[o])
    if SEVERITY[top] == 0:
        return "skip" if all(o == "skip" for o in outcomes) else "pass"
    return top


@dataclass
class TestResult:
    id: str
    name: str
    description: str
    actions: list[ActionResult] = field(default_factory=list)
    elapsed_ms: float = 0.0

    @property
    def outcome(self) -> Outcome:
        return worst([a.outcome for a in self.actions])


@dataclass
class ScriptResult:
    """The run of one TestScript."""

    script: dict[str, Any]
    source: str
    setup: list[ActionResult] = field(default_factory=list)
    tests: list[TestResult] = field(default_factory=list)
    teardown: list[ActionResult] = field(default_factory=list)
    started: str = ""
    elapsed_ms: float = 0.0
    error: str | None = None
    """Why the script could not run at all (unreadable, missing fixture, unknown variable…)."""

    @property
    def name(self) -> str:
        return str(self.script.get("name") or self.script.get("title") or self.script.get("id") or self.source)

    @property
    def outcome(self) -> Outcome:
        if self.error:
            return "error"
        return worst([a.outcome for a in self.setup] + [t.outcome for t in self.tests])

    @property
    def passed(self) -> bool:
        return self.outcome in ("pass", "warning", "skip")

    def assertions(self) -> list[ActionResult]:
        return [a for a in self.setup + [x for t in self.tests for x in t.actions] if a.kind == "assert"]

    @property
    def score(self) -> float:
        """Percentage of assertions that passed (TestReport.score)."""
        asserts = [a for a in self.assertions() if a.outcome != "skip"]
        if not asserts:
            return 100.0 if self.passed else 0.0
        return round(100.0 * sum(a.outcome in ("pass", "warning") for a in asserts) / len(asserts), 2)

"""TestScripts generated from a server's CapabilityStatement (the ``capability`` suite).

A server's CapabilityStatement (http://hl7.org/fhir/R4/capabilitystatement.html) is a promise;
this module turns the promise into TestScripts the ordinary runner executes, so a declared
interaction or search parameter that does not work shows as a failed test. One script per
declared resource type, two scripts:

- setup: create a minimal valid instance (:mod:`conformance.capability.minimal`) with ``create``,
  or with ``update`` as create when only that is declared (``updateCreate``);
- one test per declared interaction of ``TYPE_INTERACTIONS`` (read, vread, update, patch,
  history-instance, history-type, search-type, delete — delete last, then a read that must
  answer 404 or 410, http://hl7.org/fhir/R4/http.html#delete);
- in a second script (so a broken create hides no search), one test per declared search
  parameter with a syntactically valid value (:func:`conformance.capability.values.search_value`):
  200 and a ``searchset`` Bundle.

When neither create nor update is declared, the instance interactions run against the first
resource a search finds (read-only ones only: the suite never changes data it did not create);
an empty server skips them with that reason. One more script covers the system interactions
(transaction, batch, search-system, history-system) and system-level search parameters.

Scripts are plain TestScript resources held in memory (:class:`LoadedScript` with ``source=None``),
so reports, JUnit and the CLI treat them like any other suite.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from conformance.capability.minimal import minimal_resource
from conformance.capability.values import NO_MATCH_ID, search_value
from conformance.runner import LoadedScript
from conformance.runner.engine import SKIP_UNLESS
from conformance.runner.script import ScriptError
from profiles.definitions import core

OPS = "http://terminology.hl7.org/CodeSystem/testscript-operation-codes"
TYPE_INTERACTIONS = ("read", "vread", "update", "patch", "delete", "history-instance", "history-type",
                     "create", "search-type")
PATCH = [{"op": "add", "path": "/language", "value": "en"}]
"""A JSON Patch every resource accepts: ``Resource.language`` exists on all of them."""
FIXTURE = "instance"
REPRESENTATION = {"field": "Prefer", "value": "return=representation"}
"""The created instance's id is read from the answer's body (http://hl7.org/fhir/R4/http.html#ops)."""


def operation(code: str, **fields: Any) -> dict[str, Any]:
    return {"operation": {"type": {"system": OPS, "code": code}, "encodeRequestUrl": True, **fields}}


def fixture(fixture_id: str, reference: str) -> dict[str, Any]:
    return {"id": fixture_id, "autocreate": False, "autodelete": False, "resource": {"reference": reference}}


def check(description: str, **fields: Any) -> dict[str, Any]:
    return {"assert": {"description": description, "warningOnly": False, **fields}}


def ok() -> dict[str, Any]:
    return check("the server answers 200 OK", response="okay")


def bundle_of(kind: str) -> dict[str, Any]:
    return check(f"the answer is a {kind} Bundle", expression=f"Bundle.type = '{kind}'", value="true")


def test(test_id: str, name: str, description: str, actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": test_id, "name": name, "description": description, "action": actions}


class _TypeScript:
    """Builds the TestScript of one declared resource type."""

    def __init__(self, declared: dict[str, Any], patch_formats: Collection[str]) -> None:
        self.type = str(declared["type"])
        self.interactions = {str(i.get("code")) for i in declared.get("interaction", [])}
        self.params = [p for p in declared.get("searchParam", []) if p.get("name") and p.get("type")]
        self.patch_json = not patch_formats or any("json-patch" in f for f in patch_formats)
        self.own = "create" in self.interactions or ("update" in self.interactions and declared.get("updateCreate"))
        self.fixed_id = f"cap-{uuid.uuid4().hex[:16]}"

    # -- pieces

    def _target(self) -> dict[str, Any]:
        """How an operation names the instance: the fixture the server assigned, or the one found."""
        return {"targetId": FIXTURE} if self.own else {"resource": self.type, "params": "/${foundId}"}

    def setup(self) -> list[dict[str, Any]]:
        if "create" in self.interactions:
            return [operation("create", resource=self.type, sourceId=FIXTURE, responseId="created",
                              requestHeader=[REPRESENTATION]),
                    check(f"the minimal {self.type} is created", response="created")]
        if self.own:
            return [operation("updateCreate", resource=self.type, params=f"/{self.fixed_id}", sourceId=FIXTURE,
                              responseId="created", requestHeader=[REPRESENTATION]),
                    check(f"the minimal {self.type} is created by update", responseCode="200,201", operator="in")]
        if "search-type" in self.interactions and self.interactions & {"read", "vread", "history-instance"}:
            return [operation("search", resource=self.type, params="?_count=1", responseId="found"),
                    {"assert": {**check("a resource to read exists", expression="Bundle.entry.resource.exists()",
                                        value="true")["assert"],
                                "extension": [{"url": SKIP_UNLESS,
                                               "valueString": f"the server holds no {self.type} and does not "
                                                              f"declare create or update-as-create"}]}}]
        return []

    def interaction_tests(self) -> list[dict[str, Any]]:
        t, target, tests = self.type, self._target(), []
        has = self.interactions.__contains__
        instance = self.own or bool(self.setup())
        if has("read") and instance:
            tests.append(test("read", "read", f"GET [base]/{t}/[id]",
                              [operation("read", **target), ok(),
                               check(f"the answer is a {t}", resource=t)]))
        if has("vread") and instance:
            spec = target if self.own else {"resource": t, "params": "/${foundId}/_history/${foundVersion}"}
            tests.append(test("vread", "vread", f"GET [base]/{t}/[id]/_history/[vid]",
                              [operation("vread", **spec), ok(), check(f"the answer is a {t}", resource=t)]))
        if self.own and has("update"):
            tests.append(test("update", "update", f"PUT [base]/{t}/[id]",
                              [operation("update", sourceId=FIXTURE, **target),
                               check("the update is accepted", responseCode="200,201", operator="in")]))
        if self.own and has("patch") and self.patch_json:
            tests.append(test("patch", "patch", f"PATCH [base]/{t}/[id] (JSON Patch)",
                              [operation("patch", sourceId="patch", **target), ok(),
                               check("the patch is applied", expression=f"{t}.language = 'en'", value="true")]))
        if has("history-instance") and instance:
            spec = target if self.own else {"resource": t, "params": "/${foundId}/_history"}
            tests.append(test("history-instance", "history-instance", f"GET [base]/{t}/[id]/_history",
                              [operation("history", **spec), ok(), bundle_of("history"),
                               check("the history holds the instance", expression="Bundle.entry.exists()",
                                     value="true")]))
        if has("history-type"):
            tests.append(test("history-type", "history-type", f"GET [base]/{t}/_history",
                              [operation("history", resource=t), ok(), bundle_of("history")]))
        if has("search-type"):
            actions = [operation("search", resource=t, params="?_count=1"), ok(), bundle_of("searchset")]
            if self.own:
                actions += [operation("search", resource=t, params="?_id=${createdId}"), ok(),
                            check("a search by _id finds the created instance",
                                  expression="Bundle.entry.resource.id contains '${createdId}'", value="true")]
            tests.append(test("search-type", "search-type", f"GET [base]/{t}?…", actions))
        return tests

    def search_tests(self) -> list[dict[str, Any]]:
        if "search-type" not in self.interactions:
            return []
        tests = []
        for param in self.params:
            code, kind = str(param["name"]), str(param["type"])
            value = search_value(code, kind, param.get("definition"))
            actions = [operation("search", resource=self.type, params=f"?{code}={value}")]
            if kind == "special":
                actions.append(check("a special parameter is answered without a server error",
                                     responseCode="200,400", operator="in"))
            else:
                actions += [ok(), bundle_of("searchset")]
            tests.append(test(f"search-{code}", f"search {code} ({kind})", f"GET [base]/{self.type}?{code}={value}",
                              actions))
        return tests

    def delete_tests(self) -> list[dict[str, Any]]:
        if not (self.own and "delete" in self.interactions):
            return []
        gone = check("a deleted resource is gone", responseCode="404,410", operator="in")
        return [test("delete", "delete", f"DELETE [base]/{self.type}/[id], then read it",
                     [operation("delete", targetId=FIXTURE),
                      check("the delete is accepted", responseCode="200,202,204", operator="in"),
                      *([operation("read", targetId=FIXTURE), gone] if "read" in self.interactions else [])])]

    def variables(self) -> list[dict[str, Any]]:
        if self.own:
            return [{"name": "createdId", "expression": "id", "sourceId": "created"}]
        return [{"name": "foundId", "expression": "Bundle.entry.resource.id", "sourceId": "found"},
                {"name": "foundVersion", "expression": "Bundle.entry.resource.meta.versionId", "sourceId": "found"}]

    def build(self) -> list[LoadedScript]:
        """The interactions script, and the search-parameter script (independent of the instance,
        so a broken create does not hide broken searches)."""
        instance = {**minimal_resource(self.type), "id": FIXTURE}
        scripts = []
        tests = self.interaction_tests() + self.delete_tests()
        if tests:
            setup = self.setup()
            resource = {
                **_header(f"capability-{self.type}", f"capability {self.type}",
                          f"The interactions the server declares for {self.type}."),
                "contained": [instance],
                "fixture": [fixture(FIXTURE, f"#{FIXTURE}"), fixture("patch", "patch")],
                "variable": self.variables(),
                **({"setup": {"action": setup}} if setup else {}),
                "test": tests,
            }
            scripts.append(LoadedScript(resource, None, inline={"patch": PATCH}))
        if searches := self.search_tests():
            scripts.append(LoadedScript({
                **_header(f"capability-{self.type}-search", f"capability {self.type} search",
                          f"Every search parameter the server declares for {self.type}."),
                "test": searches,
            }, None))
        return scripts


def _header(script_id: str, name: str, description: str) -> dict[str, Any]:
    return {"resourceType": "TestScript", "id": script_id, "name": name, "title": description, "status": "active",
            "url": f"urn:yidang:conformance:{script_id}", "description": description}


def _system_script(rest: dict[str, Any], first_type: str | None) -> LoadedScript | None:
    interactions = {str(i.get("code")) for i in rest.get("interaction", [])}
    tests = []
    empty = {"transaction": "transaction", "batch": "batch"}
    for code, kind in empty.items():
        if code in interactions:
            tests.append(test(code, code, f"POST [base] a {kind} Bundle with one search",
                              [operation(code, sourceId=code), ok(), bundle_of(f"{kind}-response")]))
    if "search-system" in interactions:
        tests.append(test("search-system", "search-system", "GET [base]?_id=…",
                          [operation("search", params=f"?_id={NO_MATCH_ID}"), ok(), bundle_of("searchset")]))
    if "history-system" in interactions:
        tests.append(test("history-system", "history-system", "GET [base]/_history",
                          [operation("history", url="_history?_count=1"), ok(), bundle_of("history")]))
    if "search-system" in interactions:
        for param in rest.get("searchParam", []):
            code, kind = str(param.get("name", "")), str(param.get("type", ""))
            if not code or not kind:
                continue
            value = first_type if code == "_type" and first_type else search_value(code, kind, param.get("definition"))
            tests.append(test(f"search-system-{code}", f"search-system {code} ({kind})", f"GET [base]?{code}={value}",
                              [operation("search", params=f"?{code}={value}"), ok(), bundle_of("searchset")]))
    if not tests:
        return None
    read = f"{first_type}?_id={NO_MATCH_ID}" if first_type else "metadata"
    contained = [{"resourceType": "Bundle", "id": kind, "type": kind,
                  "entry": [{"request": {"method": "GET", "url": read}}]} for kind in empty.values()]
    return LoadedScript({
        **_header("capability-system", "capability system",
                  "The declared system interactions and system-level search parameters."),
        "contained": contained,
        "fixture": [fixture(str(c["id"]), f"#{c['id']}") for c in contained],
        "test": tests,
    }, None)


def rest_of(statement: dict[str, Any]) -> dict[str, Any]:
    if statement.get("resourceType") != "CapabilityStatement":
        raise ScriptError(f"the server's metadata is a {statement.get('resourceType')!r}, not a CapabilityStatement")
    servers = [r for r in statement.get("rest", []) if r.get("mode") == "server"]
    if not servers:
        raise ScriptError("the CapabilityStatement declares no rest.mode = server")
    return dict(servers[0])


def capability_scripts(statement: dict[str, Any], *, types: Collection[str] | None = None,
                       system: bool = True) -> list[LoadedScript]:
    """The TestScripts checking what ``statement`` declares (optionally only for ``types``)."""
    rest = rest_of(statement)
    declared = [r for r in rest.get("resource", []) if core().is_resource_type(str(r.get("type")))]
    if types is not None:
        unknown = set(types) - {str(r["type"]) for r in declared}
        if unknown:
            raise ScriptError(f"the server declares no {', '.join(sorted(unknown))}")
        declared = [r for r in declared if r["type"] in types]
    patch_formats = [str(f) for f in statement.get("patchFormat", [])]
    scripts = [script for r in declared for script in _TypeScript(r, patch_formats).build()]
    if system and (found := _system_script(rest, str(declared[0]["type"]) if declared else None)):
        scripts.append(found)
    return scripts

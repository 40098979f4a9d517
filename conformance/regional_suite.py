"""Builds the ``regional`` suite (``conformance/suites/regional/``) from the regional profiles'
examples (:func:`profiles.regional.examples`).

One TestScript per regional profile:

- every example that conforms is POSTed to ``[type]/$validate?profile=[url]``
  (http://hl7.org/fhir/R4/resource-operation-validate.html) and the OperationOutcome must hold no
  error; every counter-example must give at least one error, and (a warning only, since servers
  word locations differently) one at the FHIRPath location ``expectations.json`` names;
- every conforming example is created and read back: the server keeps the profile claim and the
  stored resource still conforms (``validateProfileId``, checked by the runner's validator, which
  knows the regional profiles).

The $validate tests start with a precondition (:data:`conformance.runner.engine.SKIP_UNLESS`) on
the CapabilityStatement read in setup: a server that does not declare ``$validate`` for the type
(or at system level) has those tests skipped with that reason, not failed. Fixtures are the
example files themselves (referenced from the repository root), so the suite cannot drift from
the examples; the checked-in scripts are regenerated with ``python -m conformance.regional_suite``
and a test fails when they differ from what this module builds.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from conformance.runner.engine import SKIP_UNLESS
from profiles.regional import EXAMPLES, Example, examples

FOLDER = Path(__file__).parent / "suites" / "regional"
OPS = "http://terminology.hl7.org/CodeSystem/testscript-operation-codes"
ERRORS = "OperationOutcome.issue.where(severity = 'error' or severity = 'fatal')"


def _fixture_reference(example: Example) -> str:
    """The example file, relative to the repository root (the runner looks in the script's parents)."""
    return str(EXAMPLES.relative_to(EXAMPLES.parents[2]) / example.name)


def _fixture_id(example: Example) -> str:
    return re.sub(r"[^A-Za-z0-9\-.]", "-", example.name.removesuffix(".json"))


def _op(code: str, **fields: Any) -> dict[str, Any]:
    return {"operation": {"type": {"system": OPS, "code": code}, "encodeRequestUrl": True, **fields}}


def _assert(description: str, **fields: Any) -> dict[str, Any]:
    return {"assert": {"description": description, "warningOnly": False, **fields}}


def _validate_test(example: Example, type_: str) -> dict[str, Any]:
    declared = ("CapabilityStatement.rest.operation.where(name = 'validate').exists() or "
                f"CapabilityStatement.rest.resource.where(type = '{type_}')"
                ".operation.where(name = 'validate').exists()")
    precondition = {"assert": {
        "extension": [{"url": SKIP_UNLESS, "valueString": f"the server does not declare $validate for {type_}"}],
        "description": f"The server declares $validate for {type_}.", "sourceId": "capabilities",
        "expression": declared, "value": "true", "warningOnly": False}}
    actions = [precondition,
               _op("validate", resource=type_, params=f"/$validate?profile={example.profile}",
                   sourceId=_fixture_id(example)),
               _assert("$validate answers 200 OK.", response="okay"),
               _assert("The answer is an OperationOutcome.", resource="OperationOutcome")]
    if example.valid:
        actions.append(_assert("The OperationOutcome holds no error.", expression=f"{ERRORS}.empty()", value="true"))
        description = f"The conforming example {example.name} validates against the profile without errors."
    else:
        actions.append(_assert(f"The OperationOutcome reports the error ({example.reason}).",
                               expression=f"{ERRORS}.exists()", value="true"))
        location = {"assert": {
            "description": f"An error is reported at {example.expression}.",
            "expression": f"{ERRORS}.expression contains '{example.expression}' or "
                          f"{ERRORS}.location contains '{example.expression}'",
            "value": "true", "warningOnly": True}}
        actions.append(location)
        description = f"The counter-example {example.name} ({example.reason}) is rejected by the profile."
    kind = "valid" if example.valid else "invalid"
    return {"id": f"validate-{_fixture_id(example)}", "name": f"$validate {kind}: {example.name}",
            "description": description, "action": actions}


def _create_test(example: Example, type_: str, profile_id: str) -> dict[str, Any]:
    fixture = _fixture_id(example)
    return {"id": f"create-{fixture}", "name": f"create/read: {example.name}",
            "description": f"A resource claiming {example.profile} is stored, read back with its claim, and conforms.",
            "action": [
                _op("create", resource=type_, sourceId=fixture, responseId=f"created-{fixture}"),
                _assert("The resource is created.", response="created"),
                _op("read", targetId=fixture, responseId=f"read-{fixture}"),
                _assert("The resource is read back.", response="okay"),
                _assert("The profile claim is kept.", expression=f"meta.profile contains '{example.profile}'",
                        value="true"),
                _assert("The stored resource conforms to the profile.", validateProfileId=profile_id),
            ]}


def script_for(profile: str, found: list[Example]) -> dict[str, Any]:
    """The TestScript of one profile, from its examples and counter-examples."""
    profile_id = profile.rsplit("/", 1)[-1]
    type_ = str(found[0].resource["resourceType"])
    valid = [e for e in found if e.valid]
    tests = [_validate_test(e, type_) for e in found] + [_create_test(e, type_, profile_id) for e in valid]
    return {
        "resourceType": "TestScript", "id": f"regional-{profile_id}",
        "url": f"urn:yidang:conformance:regional:{profile_id}", "version": "1",
        "name": f"Regional{''.join(p.capitalize() for p in profile_id.split('-'))}",
        "title": f"Regional profile {profile_id}", "status": "active", "experimental": False, "publisher": "Yidang",
        "description": f"{profile}: {len(valid)} conforming example(s) and {len(found) - len(valid)} "
                       f"counter-example(s) through $validate, and create/read of the conforming ones.",
        "fixture": [{"id": _fixture_id(e), "autocreate": False, "autodelete": e.valid,
                     "resource": {"reference": _fixture_reference(e)}} for e in found],
        "profile": [{"id": profile_id, "reference": profile}],
        "setup": {"action": [_op("capabilities", responseId="capabilities"),
                             _assert("The server answers its CapabilityStatement.", response="okay")]},
        "test": tests,
    }


def build() -> dict[str, bytes]:
    """File name -> content of every script of the suite."""
    by_profile: dict[str, list[Example]] = defaultdict(list)
    for example in examples():
        by_profile[example.profile].append(example)
    out = {}
    for profile, found in sorted(by_profile.items()):
        script = script_for(profile, found)
        out[f"{script['id']}.json"] = orjson.dumps(script, option=orjson.OPT_INDENT_2) + b"\n"
    return out


def write(folder: Path = FOLDER) -> list[Path]:
    """Write the suite, removing scripts of profiles that no longer have examples."""
    folder.mkdir(parents=True, exist_ok=True)
    files = build()
    for stale in folder.glob("regional-*.json"):
        if stale.name not in files:
            stale.unlink()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return [folder / name for name in files]


if __name__ == "__main__":
    print(f"{len(write())} scripts written to {FOLDER}")

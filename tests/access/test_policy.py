"""The policy decision point on both stores: what each role and scope makes visible, compiled into
the store's own query (so counts and paging see only that), and which writes it refuses.

Data (one module-wide set, written with the open grant, each resource stamped with the institution
that is its source):

- Organizations: district commission D, clinic C (``partOf`` D), hospital H (in no district).
- Patients: p1 (managed by C, source A), p2 (managed by H, source B).
- Observations: o1 (p1, source A), o2 (p2, source B), o3 (p1, source B), o4 (p1, source A, laboratory).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from profiles.definitions import core
from server.access.policy import Policy, RestrictedGrant
from server.access.principal import SOURCE_TAG_SYSTEM, SOURCE_URI_PREFIX, Principal
from server.access.scopes import ScopeError, narrow, parse_scope
from server.errors import Forbidden
from server.search.model import Always, Query
from server.search.parse import parse_criteria
from server.search.registry import SearchRegistry
from server.stores.base import Store
from tests.conftest import make_client, unique

REGISTRY = SearchRegistry()
POLICY = Policy(REGISTRY, core(), core().resource_types)


def tagged(resource: dict[str, Any], institution: str) -> dict[str, Any]:
    return {**resource, "meta": {"tag": [{"system": SOURCE_TAG_SYSTEM, "code": institution}]}}


@pytest_asyncio.fixture(scope="module")
async def world(store: Store) -> AsyncIterator[dict[str, str]]:
    run = unique("w")
    names = {k: f"{k}-{run}" for k in ("A", "B", "D", "C", "H", "p1", "p2", "o1", "o2", "o3", "o4")}
    n = names
    resources = [
        {"resourceType": "Organization", "id": n["D"], "identifier": [{"value": n["D"]}]},
        {"resourceType": "Organization", "id": n["C"], "identifier": [{"value": n["C"]}],
         "partOf": {"reference": f"Organization/{n['D']}"}},
        {"resourceType": "Organization", "id": n["H"], "identifier": [{"value": n["H"]}]},
        tagged({"resourceType": "Patient", "id": n["p1"], "name": [{"family": f"Li{run}"}],
                "managingOrganization": {"reference": f"Organization/{n['C']}"}}, n["A"]),
        tagged({"resourceType": "Patient", "id": n["p2"], "name": [{"family": f"Wang{run}"}],
                "managingOrganization": {"reference": f"Organization/{n['H']}"}}, n["B"]),
    ]
    for key, patient, source, category in (("o1", "p1", "A", None), ("o2", "p2", "B", None),
                                           ("o3", "p1", "B", None), ("o4", "p1", "A", "laboratory")):
        obs: dict[str, Any] = {"resourceType": "Observation", "id": n[key], "status": "final",
                               "code": {"text": run}, "subject": {"reference": f"Patient/{n[patient]}"}}
        if category:
            obs["category"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                            "code": category}]}]
        resources.append(tagged(obs, n[source]))
    async with make_client(store) as client:
        for resource in resources:
            response = await client.put(f"/{resource['resourceType']}/{resource['id']}", json=resource)
            assert response.status_code == 201, response.text
    yield names


def grant(role: str, institution: str, scopes: str = "system/*.cruds", patient: str | None = None) -> RestrictedGrant:
    return POLICY.grant(Principal("c", "client", role, institution, tuple(scopes.split()), patient=patient))  # type: ignore[arg-type]


async def ids(store: Store, g: RestrictedGrant, type_: str, criteria: str = "", world: dict[str, str] | None = None
              ) -> set[str]:
    where = parse_criteria(type_, criteria, REGISTRY) if criteria else Always()
    result = await store.search(g.restrict(Query((type_,), where, count=100, total="accurate")))
    found = {v.id for v in result.rows}
    assert result.total == len(found)  # the total counts only what may be seen
    if world is not None:  # only this module's resources
        found &= set(world.values())
    return found


def short(world: dict[str, str], found: set[str]) -> set[str]:
    back = {v: k for k, v in world.items()}
    return {back[i] for i in found if i in back}


CASES = [
    # role, institution key, scopes, patient key, type, criteria, expected
    ("institution", "A", "system/*.cruds", None, "Observation", "", {"o1", "o4"}),
    ("institution", "B", "system/*.cruds", None, "Observation", "", {"o2", "o3"}),
    ("institution", "A", "system/*.cruds", None, "Patient", "", {"p1"}),
    ("institution", "A", "system/*.rs", None, "Organization", "", {"D", "C", "H"}),
    ("district", "D", "system/*.rs", None, "Patient", "", {"p1"}),
    ("district", "D", "system/*.rs", None, "Observation", "", {"o1", "o3", "o4"}),
    ("platform", "P", "system/*.cruds", None, "Observation", "", {"o1", "o2", "o3", "o4"}),
    ("resident", "A", "patient/*.rs", "p1", "Observation", "", {"o1", "o3", "o4"}),
    ("resident", "A", "patient/*.rs", "p1", "Patient", "", {"p1"}),
    ("platform", "P", "patient/Observation.rs", "p2", "Observation", "", {"o2"}),
    # v2 query-restricted scope
    ("institution", "A", "system/Observation.rs?category=laboratory", None, "Observation", "", {"o4"}),
    ("platform", "P", "system/Observation.rs?category=laboratory system/Patient.rs", None, "Observation", "", {"o4"}),
    # a chain over a hidden Patient matches nothing; over a visible one it works
    ("institution", "A", "system/*.rs", None, "Observation", "subject.family=Wang", set()),
    ("institution", "B", "system/*.rs", None, "Observation", "subject.family=Li", set()),
    ("institution", "B", "system/*.rs", None, "Observation", "subject.family=Wang", {"o2"}),
    # _has over hidden Observations does not reveal them
    ("institution", "A", "system/*.rs", None, "Patient", "_has:Observation:subject:status=final", {"p1"}),
    ("institution", "B", "system/*.rs", None, "Patient", "_has:Observation:subject:status=final", {"p2"}),
]


@pytest.mark.parametrize(("role", "inst", "scopes", "patient", "type_", "criteria", "expected"), CASES)
async def test_visibility(store: Store, world: dict[str, str], role: str, inst: str, scopes: str,
                          patient: str | None, type_: str, criteria: str, expected: set[str]) -> None:
    institution = world.get(inst, inst)
    crit = criteria.replace("Wang", f"Wang{world['p1'].split('-', 1)[1]}").replace(
        "Li", f"Li{world['p1'].split('-', 1)[1]}") if "family" in criteria else criteria
    g = grant(role, institution, scopes, world[patient] if patient else None)
    assert short(world, await ids(store, g, type_, crit, world)) == expected


async def test_system_search_covers_only_visible_types(store: Store, world: dict[str, str]) -> None:
    g = grant("institution", world["A"])
    result = await store.search(g.restrict(Query((), count=1000, total="accurate")))
    seen = {(v.type, v.id) for v in result.rows}
    assert ("Observation", world["o1"]) in seen
    assert ("Observation", world["o2"]) not in seen and ("Patient", world["p2"]) not in seen


def test_auditor_sees_nothing_clinical() -> None:
    g = grant("auditor", "X", "system/*.rs")
    assert g.visible("Observation") is None and g.visible("Patient") is None
    assert g.visible("AuditEvent") == Always()
    with pytest.raises(Forbidden):
        g.check_interaction("read", "Patient")


def test_scopes_limit_types_and_permissions() -> None:
    g = grant("institution", "A", "system/Observation.rs")
    assert g.visible("Patient") is None
    assert g.visible("Observation") is not None
    with pytest.raises(Forbidden):
        g.check_write("create", "Observation", {"resourceType": "Observation"}, None)
    v1 = grant("institution", "A", "system/Observation.read")
    assert v1.visible("Observation", "search") is not None
    with pytest.raises(Forbidden):
        v1.check_interaction("create", "Observation")


def test_writes_of_another_institution_are_forbidden() -> None:
    g = grant("institution", "A")
    mine = tagged({"resourceType": "Observation", "id": "x"}, "A")
    theirs = tagged({"resourceType": "Observation", "id": "y"}, "B")
    g.check_write("update", "Observation", mine, mine)
    g.check_write("create", "Observation", {"resourceType": "Observation"}, None)
    with pytest.raises(Forbidden):
        g.check_write("update", "Observation", mine, theirs)
    with pytest.raises(Forbidden):
        g.check_write("delete", "Observation", None, theirs)
    with pytest.raises(Forbidden):
        g.check_write("create", "StructureDefinition", {"resourceType": "StructureDefinition"}, None)
    for role in ("district", "auditor", "resident"):
        with pytest.raises(Forbidden):
            grant(role, "A", "system/*.cruds", "p").check_write("create", "Observation", {}, None)
    grant("platform", "P").check_write("update", "Observation", mine, theirs)


def test_query_restricted_write_scope() -> None:
    g = grant("institution", "A", "system/Observation.cu?category=laboratory")
    lab = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "category": [
        {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]}
    g.check_write("create", "Observation", lab, None)
    with pytest.raises(Forbidden):
        g.check_write("create", "Observation", {**lab, "category": []}, None)


def test_stamp_replaces_a_forged_source() -> None:
    g = grant("institution", "A")
    resource = tagged({"resourceType": "Observation"}, "B")
    resource["meta"]["source"] = "http://elsewhere"
    g.stamp(resource)
    assert resource["meta"]["tag"] == [{"system": SOURCE_TAG_SYSTEM, "code": "A"}]
    assert resource["meta"]["source"] == SOURCE_URI_PREFIX + "A"
    platform = tagged({"resourceType": "Observation"}, "B")
    grant("platform", "P").stamp(platform)  # on an institution's behalf: kept
    assert platform["meta"]["tag"] == [{"system": SOURCE_TAG_SYSTEM, "code": "B"}]


def test_admin_operations_need_platform() -> None:
    with pytest.raises(Forbidden):
        grant("institution", "A").check_interaction("operation:reindex", None)
    grant("platform", "P").check_interaction("operation:reindex", None)
    grant("institution", "A").check_interaction("operation:validate", "Patient")


@pytest.mark.parametrize(("text", "ok"), [
    ("patient/Observation.rs", True), ("user/*.cruds", True), ("system/Patient.r", True),
    ("patient/*.read", True), ("user/Observation.write", True), ("system/*.*", True),
    ("patient/Observation.rs?category=laboratory", True), ("launch/patient", True), ("openid", True),
    ("patient/Observation.sr", False), ("patient/observation.rs", False), ("bogus", False),
    ("user/Observation.read?x=1", False), ("clinic/Observation.rs", False),
])
def test_scope_parsing(text: str, ok: bool) -> None:
    if ok:
        parse_scope(text)
    else:
        with pytest.raises(ScopeError):
            parse_scope(text)


def test_narrow_never_widens() -> None:
    assert narrow("system/Observation.rs system/Patient.cruds", "system/*.rs") == \
        "system/Observation.rs system/Patient.rs"
    assert narrow("system/*.cruds", "system/Observation.rs") == ""
    assert narrow("patient/*.rs launch/patient openid", "patient/*.read launch/patient") == \
        "patient/*.rs launch/patient"
    assert narrow("system/Observation.rs?category=laboratory", "system/Observation.rs") == \
        "system/Observation.rs?category=laboratory"
    assert narrow("system/Observation.rs", "system/Observation.rs?category=laboratory") == ""

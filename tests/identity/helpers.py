"""Shared helpers for the identity tests: valid ID numbers, an app whose callers are named by their bearer."""

from __future__ import annotations

import random
from typing import Any

import httpx
from starlette.requests import Request

from profiles import resident_id
from server.access.principal import Principal
from server.app import create_app
from server.errors import Unauthenticated
from server.settings import Settings
from server.stores.base import Store
from tests.conftest import BASE

ID = "urn:oid:2.16.156.10011.1.3"
CARD = "urn:oid:2.16.156.10011.1.19"
MRN = "urn:oid:2.16.156.10011.1.13"


def id_number(born: str = "1990-01-01", male: bool = True, region: str = "440304") -> str:
    """A fresh valid 居民身份证号 (random sequence) for a birth date and sex."""
    seq = random.randrange(0, 99) * 10 + random.choice((1, 3, 5, 7, 9) if male else (0, 2, 4, 6, 8))
    first17 = region + born.replace("-", "") + f"{seq:03d}"
    return first17 + resident_id.check_character(first17)


def bad_check(number: str) -> str:
    """``number`` with a wrong check character."""
    good = number[17]
    return number[:17] + ("1" if good != "1" else "2")


def patient(*, name: str | None = "张伟", born: str | None = "1990-01-01", gender: str | None = "male",
            ids: list[tuple[str, str]] = (), phone: str | None = None, **extra: Any) -> dict[str, Any]:  # type: ignore[assignment]
    out: dict[str, Any] = {"resourceType": "Patient"}
    if ids:
        out["identifier"] = [{"system": s, "value": v} for s, v in ids]
    if name:
        out["name"] = [{"text": name}]
    if born:
        out["birthDate"] = born
    if gender:
        out["gender"] = gender
    if phone:
        out["telecom"] = [{"system": "phone", "value": phone}]
    out.update(extra)
    return out


class FakeAuth:
    """``Authorization: Bearer <name>`` -> the principal of that name; no header: the platform."""

    def __init__(self, principals: dict[str, Principal]) -> None:
        self.principals = principals

    async def principal(self, request: Request) -> Principal:
        name = request.headers.get("authorization", "Bearer platform").removeprefix("Bearer ").strip()
        if name not in self.principals:
            raise Unauthenticated("No valid bearer token")
        return self.principals[name]


def principals(run: str) -> dict[str, Principal]:
    return {
        "platform": Principal("ops", "client", "platform", f"P{run}", ("system/*.cruds",), client_id="ops"),
        "a": Principal("a", "client", "institution", f"A{run}", ("system/*.cruds",), client_id="a"),
        "b": Principal("b", "client", "institution", f"B{run}", ("system/*.cruds",), client_id="b"),
    }


def make_app_client(store: Store, run: str) -> httpx.AsyncClient:
    app = create_app(Settings(base_url=BASE, log_requests=False), store=store)
    app.state.auth = FakeAuth(principals(run))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, root_path="/fhir"), base_url=BASE)


def as_(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {who}"}


def match_params(resource: dict[str, Any], **more: Any) -> dict[str, Any]:
    parameter: list[dict[str, Any]] = [{"name": "resource", "resource": resource}]
    for name, value in more.items():
        key = "valueBoolean" if isinstance(value, bool) else "valueInteger"
        parameter.append({"name": name, key: value})
    return {"resourceType": "Parameters", "parameter": parameter}


def ref_params(**values: Any) -> dict[str, Any]:
    parameter: list[dict[str, Any]] = []
    for name, value in values.items():
        name = name.replace("_", "-")
        if isinstance(value, bool):
            parameter.append({"name": name, "valueBoolean": value})
        elif isinstance(value, dict) and "resourceType" in value:
            parameter.append({"name": name, "resource": value})
        elif isinstance(value, dict):
            parameter.append({"name": name, "valueIdentifier": value})
        else:
            parameter.append({"name": name, "valueReference": {"reference": value}})
    return {"resourceType": "Parameters", "parameter": parameter}

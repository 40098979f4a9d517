"""Local users (people who log in at the built-in login page), kept in the store's kv space ``users``.

A user has one role and one institution, the SMART scopes it may be granted, and for a
``resident`` the Patient it is. The password is stored only as an argon2id hash
(:mod:`server.auth.passwords`); nothing here returns or logs a password, and
:meth:`UserRecord.to_public` leaves the hash out.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from typing import Any, cast

from server.access.principal import ROLES, Role
from server.auth import passwords, scopes
from server.auth.clients import INSTITUTION, PATIENT_ID
from server.errors import BadRequest, Conflict, NotFound
from server.stores.base import Store

SPACE = "users"
NAME = re.compile(r"^[\w.@-]{1,64}$")
"""User names: letters (any script), digits, ``.``, ``_``, ``@``, ``-``; at most 64."""


@dataclass(frozen=True)
class UserRecord:
    name: str
    role: Role
    institution: str
    scope: str
    """Space-separated SMART scopes the user may be granted (the most; a login grants what the
    client asks for and both the user and the client may have)."""
    patient: str | None
    """The Patient id a ``resident`` is."""
    password_hash: str
    created: int
    """Microseconds since 1970."""

    def to_json(self) -> dict[str, Any]:
        """The stored form (with the hash)."""
        return {**self.to_public(), "password_hash": self.password_hash}

    def to_public(self) -> dict[str, Any]:
        """What may be shown (API, CLI): everything but the password hash."""
        out: dict[str, Any] = {"name": self.name, "role": self.role, "institution": self.institution,
                               "scope": self.scope, "created": self.created}
        if self.patient:
            out["patient"] = self.patient
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UserRecord:
        return cls(name=str(data["name"]), role=cast(Role, data["role"]), institution=str(data["institution"]),
                   scope=str(data.get("scope", "")), patient=data.get("patient") or None,
                   password_hash=str(data["password_hash"]), created=int(data.get("created", 0)))


def patient_id(value: str | None, *, field: str = "patient") -> str | None:
    """``Patient/ID`` or ``ID`` as the id; :class:`BadRequest` naming ``field`` when it is not one."""
    if value is None or value == "":
        return None
    found = value.removeprefix("Patient/")
    if not PATIENT_ID.fullmatch(found):
        raise BadRequest(f"{field} must be Patient/ID with a FHIR id (letters, digits, '-', '.'; at most 64)",
                         expression=[field])
    return found


def check_fields(name: str, *, role: str, institution: str, scope: str, patient: str | None) -> None:
    """:class:`BadRequest` naming the first field that is not acceptable."""
    if not isinstance(name, str) or not NAME.match(name):
        raise BadRequest("name must be 1-64 letters, digits, '.', '_', '@' or '-'", expression=["name"])
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}", expression=["role"])
    if not isinstance(institution, str) or not INSTITUTION.fullmatch(institution):
        raise BadRequest("institution must be the institution's identifier (统一社会信用代码 or "
                         "医疗机构执业许可证登记号: letters and digits)", expression=["institution"])
    try:
        scopes.check(scope if isinstance(scope, str) else "")
    except ValueError as error:
        raise BadRequest(f"scope: {error}", expression=["scope"]) from None
    if role == "resident" and not patient:
        raise BadRequest("a resident user needs patient (Patient/ID: the person it is)", expression=["patient"])
    if patient and role != "resident":
        raise BadRequest("patient binds only a resident user (role resident)", expression=["patient"])


def _now_us() -> int:
    return time.time_ns() // 1000


async def add_user(store: Store, name: str, password: str, *, role: str, institution: str, scope: str,
                   patient: str | None = None) -> UserRecord:
    """Create a user (:class:`Conflict` when the name is taken, :class:`BadRequest` naming a bad field)."""
    patient = patient_id(patient)
    scope = " ".join(scope.split()) if isinstance(scope, str) else scope
    check_fields(name, role=role, institution=institution, scope=scope, patient=patient)
    passwords.check_strength(password)
    record = UserRecord(name=name, role=cast(Role, role), institution=institution, scope=scope, patient=patient,
                        password_hash=await passwords.hash_password(password), created=_now_us())
    if not await store.kv_put(SPACE, name, record.to_json(), create_only=True):
        raise Conflict(f"a user named {name!r} exists", expression=["name"])
    return record


async def get_user(store: Store, name: str) -> UserRecord | None:
    found = await store.kv_get(SPACE, name)
    return UserRecord.from_json(found) if found else None


async def list_users(store: Store) -> list[UserRecord]:
    return [UserRecord.from_json(value) for _, value in await store.kv_list(SPACE)]


async def remove_user(store: Store, name: str) -> bool:
    """False when there was no such user."""
    return await store.kv_delete(SPACE, name)


async def set_password(store: Store, name: str, password: str) -> UserRecord:
    """Replace the user's password (:class:`NotFound` when there is no such user)."""
    passwords.check_strength(password)
    record = await get_user(store, name)
    if record is None:
        raise NotFound(f"no user named {name!r}")
    record = replace(record, password_hash=await passwords.hash_password(password))
    await store.kv_put(SPACE, name, record.to_json())
    return record


async def check_password(store: Store, name: str, password: str) -> UserRecord | None:
    """The user when ``password`` is theirs, else None. Costs one argon2 verification whether or not
    the user exists; a hash made with older parameters is replaced by one with the current ones."""
    record = await get_user(store, name) if isinstance(name, str) and NAME.match(name) else None
    if not isinstance(password, str) or len(password) > passwords.MAX_LENGTH:
        password = ""
    ok = await passwords.verify_or_dummy(record.password_hash if record else None, password)
    if not ok or record is None:
        return None
    if passwords.needs_rehash(record.password_hash):
        old = record.password_hash
        record = replace(record, password_hash=await passwords.hash_password(password))
        current = await get_user(store, name)
        if current is not None and current.password_hash == old:  # not changed meanwhile
            await store.kv_put(SPACE, name, replace(current, password_hash=record.password_hash).to_json())
    return record

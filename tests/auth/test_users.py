"""Local users on both stores: argon2id hashes, password rules, look-ups, rehashing, and a failed
check that costs the same whether or not the user exists."""

from __future__ import annotations

import time
import uuid

import pytest
from argon2 import PasswordHasher

from server.auth import passwords
from server.auth.users import add_user, check_password, get_user, list_users, remove_user, set_password
from server.errors import BadRequest, Conflict, NotFound
from server.stores.base import Store
from tests.auth.conftest import INSTITUTION

PASSWORD = "a long enough secret"
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "HASHER", CHEAP)


def name() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def test_password_is_stored_as_an_argon2id_hash_with_the_default_parameters(store: Store) -> None:
    user = await add_user(store, name(), PASSWORD, role="institution", institution=INSTITUTION, scope="user/*.rs")
    assert user.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # memory-hard: 64 MiB
    assert PASSWORD not in user.password_hash
    assert "password_hash" not in user.to_public() and PASSWORD not in str(user.to_public())
    stored = await store.kv_get("users", user.name)
    assert stored is not None and PASSWORD not in str(stored)


async def test_add_get_list_remove(store: Store, cheap: None) -> None:
    first, second = name(), name()
    await add_user(store, first, PASSWORD, role="institution", institution=INSTITUTION,
                   scope=" user/*.rs  user/Patient.cruds ")
    await add_user(store, second, PASSWORD, role="resident", institution=INSTITUTION, scope="patient/*.rs",
                   patient="Patient/p1")
    found = await get_user(store, second)
    assert found is not None and found.patient == "p1" and found.role == "resident"
    assert (await get_user(store, first)).scope == "user/*.rs user/Patient.cruds"  # type: ignore[union-attr]
    names = [u.name for u in await list_users(store)]
    assert first in names and second in names and names == sorted(names)
    assert await remove_user(store, first) is True
    assert await remove_user(store, first) is False
    assert await get_user(store, first) is None


async def test_a_taken_name_is_a_conflict(store: Store, cheap: None) -> None:
    taken = name()
    await add_user(store, taken, PASSWORD, role="platform", institution=INSTITUTION, scope="user/*.cruds")
    with pytest.raises(Conflict):
        await add_user(store, taken, "another secret!!", role="platform", institution=INSTITUTION, scope="user/*.rs")
    assert await check_password(store, taken, PASSWORD) is not None  # the first one is untouched


@pytest.mark.parametrize(("fields", "field"), [
    ({"password": "short"}, "password"),
    ({"name": "has space"}, "name"),
    ({"name": ""}, "name"),
    ({"role": "admin"}, "role"),
    ({"institution": "has space"}, "institution"),
    ({"scope": ""}, "scope"),
    ({"scope": "everything"}, "scope"),
    ({"role": "resident"}, "patient"),
    ({"patient": "Patient/p1"}, "patient"),
    ({"role": "resident", "patient": "Patient/a b"}, "patient"),
])
async def test_bad_fields_are_refused_naming_the_field(store: Store, cheap: None, fields: dict[str, str],
                                                       field: str) -> None:
    args = {"name": name(), "password": PASSWORD, "role": "institution", "institution": INSTITUTION,
            "scope": "user/*.rs", **fields}
    with pytest.raises(BadRequest) as raised:
        await add_user(store, args.pop("name"), args.pop("password"), **args)  # type: ignore[arg-type]
    assert raised.value.expression == (field,)
    assert PASSWORD not in raised.value.message


async def test_check_password(store: Store, cheap: None) -> None:
    user = name()
    await add_user(store, user, PASSWORD, role="institution", institution=INSTITUTION, scope="user/*.rs")
    assert (await check_password(store, user, PASSWORD)).name == user  # type: ignore[union-attr]
    assert await check_password(store, user, PASSWORD + "x") is None
    assert await check_password(store, user, "") is None
    assert await check_password(store, "nobody-" + user, PASSWORD) is None
    assert await check_password(store, "bad name !", PASSWORD) is None
    assert await check_password(store, user, "x" * 5000) is None


async def test_set_password(store: Store, cheap: None) -> None:
    user = name()
    await add_user(store, user, PASSWORD, role="institution", institution=INSTITUTION, scope="user/*.rs")
    await set_password(store, user, "the new password")
    assert await check_password(store, user, PASSWORD) is None
    assert await check_password(store, user, "the new password") is not None
    with pytest.raises(BadRequest):
        await set_password(store, user, "short")
    with pytest.raises(NotFound):
        await set_password(store, "nobody-" + user, "the new password")


async def test_a_hash_of_older_parameters_is_replaced_at_login(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    user = name()
    monkeypatch.setattr(passwords, "HASHER", CHEAP)
    await add_user(store, user, PASSWORD, role="institution", institution=INSTITUTION, scope="user/*.rs")
    old = (await get_user(store, user)).password_hash  # type: ignore[union-attr]
    assert "m=1024,t=1,p=1" in old
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    assert await check_password(store, user, PASSWORD) is not None  # the check itself succeeds …
    new = (await get_user(store, user)).password_hash  # type: ignore[union-attr]
    assert "m=2048,t=2,p=1" in new  # … and leaves a hash of the current parameters
    assert await check_password(store, user, PASSWORD) is not None
    assert (await get_user(store, user)).password_hash == new  # type: ignore[union-attr]  # no rehash again
    assert await check_password(store, user, "wrong password") is None
    assert (await get_user(store, user)).password_hash == new  # type: ignore[union-attr]


async def test_unknown_names_cost_as_much_as_known_ones(store: Store) -> None:
    """With the real (memory-hard) parameters: a missing user is checked against a dummy hash."""
    user = name()
    await add_user(store, user, PASSWORD, role="institution", institution=INSTITUTION, scope="user/*.rs")
    await check_password(store, "nobody", "warm-up-the-dummy")

    async def cost(who: str) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            assert await check_password(store, who, "not the password") is None
            times.append(time.perf_counter() - started)
        return min(times)  # the least disturbed run

    known, unknown = await cost(user), await cost("nobody-" + user)
    assert known > 0.01  # argon2id with 64 MiB is not cheap
    assert 0.5 < unknown / known < 2, (known, unknown)

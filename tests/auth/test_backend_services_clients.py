"""Client registration checks (``check_client``) and the record round trip on both stores."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from server.auth.clients import ClientRecord, add_client, check_client, get_client, list_clients, remove_client
from server.errors import BadRequest, Conflict
from server.stores.base import Store
from tests.auth.conftest import INSTITUTION, ec_key, public_jwk, rsa_key

JWKS = {"keys": [public_jwk(rsa_key(), "k1")]}
GOOD = ClientRecord("his-01", "institution", INSTITUTION, "system/*.rs", jwks=JWKS)


@pytest.mark.parametrize(("change", "field"), [
    ({"id": "has space"}, "client id"),
    ({"role": "admin"}, "role"),
    ({"institution": ""}, "institution"),
    ({"institution": "1244 0000"}, "institution"),
    ({"scope": ""}, "scope"),
    ({"scope": "system/Patient.rx"}, "scope"),
    ({"scope": "patients/Patient.r"}, "scope"),
    ({"scope": "system/Patient.read?code=x"}, "scope"),
    ({"scope": "system/Patient.sr"}, "scope"),
    ({"patient": "p1"}, "patient"),
    ({"jwks": None}, "exactly one"),
    ({"jwks_url": "https://his.example/jwks.json"}, "exactly one"),
    ({"jwks": None, "jwks_url": "http://his.example/jwks.json"}, "https"),
    ({"jwks": {"keys": []}}, "jwks"),
    ({"jwks": {"keys": [{**public_jwk(rsa_key(), "k"), "d": "secret"}]}}, "private"),
    ({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, "private"),
    ({"jwks": {"keys": [public_jwk(ec_key(), "k") | {"crv": "P-256", "alg": "ES256"}]}}, "no RSA"),
    ({"jwks": {"keys": [{"kty": "RSA", "n": "bad", "e": "AQAB"}]}}, "not a valid"),
    ({"public": True}, "public client"),
    ({"redirect_uris": ("app://x#y",)}, "redirect URI"),
])
def test_check_client_names_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest, match=field):
        check_client(replace(GOOD, **change))


@pytest.mark.parametrize("change", [
    {},
    {"jwks": {"keys": [public_jwk(ec_key(), "e1")]}},
    {"jwks": None, "jwks_url": "https://his.example/jwks.json"},
    {"jwks": None, "jwks_url": "http://127.0.0.1:8000/jwks.json"},
    {"role": "resident", "patient": "p-1", "scope": "patient/*.rs launch/patient"},
    {"scope": "system/Observation.rs?category=laboratory system/Patient.read user/*.* openid fhirUser"},
    {"institution": "PDY00001X44010417A1001"},
    {"jwks": None, "public": True, "redirect_uris": ("https://app.example/cb",)},
])
def test_good_clients_pass(change: dict[str, Any]) -> None:
    check_client(replace(GOOD, **change))


async def test_records_round_trip(store: Store) -> None:
    import uuid

    record = replace(GOOD, id=f"rt-{uuid.uuid4().hex[:8]}", redirect_uris=("https://a.example/cb",))
    await add_client(store, record)
    got = await get_client(store, record.id)
    assert got is not None and got.created > 0
    assert replace(got, created=0) == record
    assert record.id in [c.id for c in await list_clients(store)]
    with pytest.raises(Conflict):
        await add_client(store, record)
    with pytest.raises(BadRequest):
        await add_client(store, replace(record, id="rt-bad", role="nobody"))  # type: ignore[arg-type]
    assert await remove_client(store, record.id)
    assert not await remove_client(store, record.id)
    assert await get_client(store, record.id) is None

"""Read-by-id and search throughput over HTTP with authorization off and on, in the same run, on the
embedded store.

    python -m bench.auth [--seconds 10] [--clients 32] [--rounds 1]

Loads the Synthea bundles with every resource's source tag set to one institution, then runs a
``yidang serve`` process (uvicorn, as ``bench.read``) twice on that directory:

1. open (no authorization configured, loopback);
2. ``YIDANG_AUTH=smart``: a backend-services client of role ``institution`` is registered in the
   store, gets a token from ``/auth/token`` with a signed client assertion (ES384), and sends it
   with every request. Every read is checked against the policy (the resource must carry the
   institution's source tag) and every search has the tag condition compiled into its query.
   A second client of role ``platform`` (no condition) shows the cost of the token alone.

Prints requests/s, p50/p99, the server's CPU time per request (user + system of the server
process, from ``/proc``: steadier than the rate, which the load generator on the same cores also
moves) and the ratio to the open figure for each; with ``--rounds N`` the open
and secured servers alternate N times, in turn first and second (so drift in the machine's speed
hits both sides alike), and the mean ratios are printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from bench.common import server_cpu, server_process, synthea_bundles
from bench.httpload import LoadResult, run
from server.access.principal import SOURCE_TAG_SYSTEM
from server.stores.sqlite import SqliteStore

INSTITUTION = "12440000455858436X"


def tag_bundle(body: bytes) -> bytes:
    bundle = json.loads(body)
    for entry in bundle.get("entry", []):
        resource = entry.get("resource")
        if isinstance(resource, dict):
            meta = resource.setdefault("meta", {})
            meta["tag"] = [*meta.get("tag", []), {"system": SOURCE_TAG_SYSTEM, "code": INSTITUTION}]
    return json.dumps(bundle).encode()


async def load(directory: str) -> tuple[list[str], list[str]]:
    """Ingest the tagged bundles; return read paths and search paths."""
    from server.app import create_app
    from server.settings import Settings

    store = SqliteStore(directory)
    await store.open()
    app = create_app(Settings(log_requests=False), store=store)
    reads: list[str] = []
    patients: list[str] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        for body in synthea_bundles():
            r = await client.post("/", content=tag_bundle(body), headers={"Content-Type": "application/fhir+json"})
            r.raise_for_status()
            for entry in r.json()["entry"]:
                path = "/" + entry["response"]["location"].split("/_history")[0]
                reads.append(path)
                if path.startswith("/Patient/"):
                    patients.append(path.split("/")[2])
    await store.close()
    searches = [f"/Observation?patient={p}&_count=20" for p in patients]
    searches += [f"/Encounter?subject=Patient/{p}&_count=20" for p in patients]
    return reads, searches


async def register(directory: str, client_id: str, role: str, jwks: dict[str, Any]) -> None:
    from server.auth.clients import ClientRecord, add_client

    store = SqliteStore(directory)
    await store.open()
    try:
        await add_client(store, ClientRecord(id=client_id, role=role, institution=INSTITUTION,  # type: ignore[arg-type]
                                             scope="system/*.rs", jwks=jwks))
    finally:
        await store.close()


async def token(host: str, port: int, client_id: str, key: ec.EllipticCurvePrivateKey) -> str:
    url = f"http://{host}:{port}/auth/token"
    now = int(time.time())
    assertion = jwt.encode({"iss": client_id, "sub": client_id, "aud": url, "exp": now + 240, "iat": now,
                            "jti": uuid.uuid4().hex}, key, algorithm="ES384", headers={"kid": "bench"})
    async with httpx.AsyncClient() as client:
        r = await client.post(url, data={
            "grant_type": "client_credentials", "scope": "system/*.rs",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion})
        r.raise_for_status()
        return str(r.json()["access_token"])


Measured = tuple[LoadResult, float]
"""A load's result and the server's CPU time per request (ms, user + system, from ``/proc``)."""


async def measured(host: str, port: int, paths: list[str], args: argparse.Namespace,
                   headers: dict[str, str] | None = None) -> Measured:
    before = server_cpu()
    result = await run(host, port, paths, clients=args.clients, seconds=args.seconds, headers=headers)
    return result, (server_cpu() - before) / max(result.requests, 1) * 1000


def line(label: str, found: Measured, base: Measured | None) -> str:
    result, cpu = found
    ratio = f"  {result.rate / base[0].rate:5.2f}x open" if base else ""
    return (f"{label:44s} {result.rate:7.0f} req/s  p50 {result.percentile(50) * 1000:6.2f} ms  "
            f"p99 {result.percentile(99) * 1000:6.2f} ms  server CPU {cpu:5.3f} ms/req  errors {result.errors}{ratio}")


async def open_phase(env: dict[str, str], reads: list[str], searches: list[str],
                     args: argparse.Namespace) -> dict[str, Measured]:
    with server_process(env) as (host, port):
        return {"read off": await measured(host, port, reads, args),
                "search off": await measured(host, port, searches, args)}


async def secured_phase(env: dict[str, str], reads: list[str], searches: list[str], args: argparse.Namespace,
                        key: ec.EllipticCurvePrivateKey) -> dict[str, Measured]:
    found: dict[str, Measured] = {}
    with server_process(env) as (host, port):
        for client_id in ("bench-institution", "bench-platform"):
            headers = {"Authorization": f"Bearer {await token(host, port, client_id, key)}"}
            role = client_id.split("-")[1]
            for kind, paths in (("read", reads), ("search", searches)):
                found[f"{kind} {role}"] = await measured(host, port, paths, args, headers)
    return found


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1, help="alternate open and secured servers this many times")
    args = parser.parse_args()
    key = ec.generate_private_key(ec.SECP384R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwks = {"keys": [{**public, "kid": "bench", "alg": "ES384", "use": "sig"}]}
    rates: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        reads, searches = await load(directory)
        await register(directory, "bench-institution", "institution", jwks)
        await register(directory, "bench-platform", "platform", jwks)
        env = {"YIDANG_DATA_DIR": directory}
        print(f"HTTP, embedded SQLite store, {len(reads)} resources, {args.clients} clients, "
              f"{args.seconds:.0f} s each, {args.rounds} round(s)")
        # auditing (issue 14) is measured by bench/audit.py; YIDANG_AUDIT=true here measures both together
        smart = {**env, "YIDANG_AUTH": "smart", "YIDANG_AUDIT": os.environ.get("YIDANG_AUDIT", "false"),
                 "YIDANG_RATE_LIMITS": json.dumps({"institution": 0, "platform": 0})}
        for n in range(args.rounds):
            found: dict[str, Measured] = {}
            # odd rounds run the secured server first: a machine that speeds up or slows down during
            # the run then favours neither side in the mean
            phases = [open_phase(env, reads, searches, args), secured_phase(smart, reads, searches, args, key)]
            for phase in phases if n % 2 == 0 else phases[::-1]:
                found.update(await phase)
            for name, result in found.items():
                kind, role = name.split(" ")
                label = ("read by id" if kind == "read" else "search") + \
                    (", authorization off" if role == "off" else f", authorization on ({role})")
                base = None if role == "off" else found[f"{kind} off"]
                print(line(f"[{n + 1}] {label}", result, base), flush=True)
                rates.setdefault(name, []).append(result[0].rate)
                cpus.setdefault(name, []).append(result[1])
    if args.rounds > 1:
        for kind in ("read", "search"):
            off = sum(rates[f"{kind} off"]) / args.rounds
            for role in ("institution", "platform"):
                on = sum(rates[f"{kind} {role}"]) / args.rounds
                cpu_off = sum(cpus[f"{kind} off"]) / args.rounds
                cpu_on = sum(cpus[f"{kind} {role}"]) / args.rounds
                print(f"mean of {args.rounds} rounds: {kind} {role} / off = {on:.0f} / {off:.0f} = {on / off:.2f}x; "
                      f"server CPU per request {cpu_on:.3f} vs {cpu_off:.3f} ms (off/on {cpu_off / cpu_on:.2f})")


if __name__ == "__main__":
    asyncio.run(main())

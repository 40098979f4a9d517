"""Public keys fetched from JWKS URLs (clients' ``jwks_url``, external issuers) or read from files.

A URL's key set is cached for 5 minutes and fetched again once when a token names a ``kid`` the
cached set lacks (no more often than every 10 seconds per URL, so unknown kids cannot make the
server hammer the URL). A failed fetch raises :class:`JwksUnavailable`, never something a request
turns into a 500.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

TTL_S = 300.0
REFETCH_MIN_S = 10.0
FETCH_TIMEOUT_S = 5.0
MAX_BYTES = 256 * 1024


class JwksUnavailable(Exception):
    """The key set could not be fetched or read (the message says why; no key material)."""


def _parse(text: str | bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise JwksUnavailable(f"{where} is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise JwksUnavailable(f"{where} is not a JWK Set")
    return data


class JwksCache:
    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}
        self._files: dict[str, tuple[int, dict[str, Any]]] = {}
        self._transport = transport

    async def _fetch(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, transport=self._transport,
                                         follow_redirects=False) as client:
                response = await client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise JwksUnavailable(f"the JWKS URL {url} could not be fetched ({type(error).__name__})") from None
        if response.status_code != 200:
            raise JwksUnavailable(f"the JWKS URL {url} answered {response.status_code}")
        if len(response.content) > MAX_BYTES:
            raise JwksUnavailable(f"the JWKS at {url} is larger than {MAX_BYTES} bytes")
        return _parse(response.content, f"the JWKS at {url}")

    async def get(self, url: str, *, kid: str | None = None) -> dict[str, Any]:
        """The key set at ``url``; fetched again when ``kid`` is not in the cached set."""
        now = time.monotonic()
        entry = self._entries.get(url)
        if entry is not None:
            fetched, jwks = entry
            fresh = now - fetched < TTL_S
            known = kid is None or any(k.get("kid") == kid for k in jwks["keys"] if isinstance(k, dict))
            if fresh and (known or now - fetched < REFETCH_MIN_S):
                return jwks
        jwks = await self._fetch(url)
        self._entries[url] = (now, jwks)
        return jwks

    def read_file(self, path: str | Path) -> dict[str, Any]:
        """The key set in a file, read again when its mtime changes."""
        p = Path(path)
        try:
            mtime = p.stat().st_mtime_ns
            cached = self._files.get(str(p))
            if cached is not None and cached[0] == mtime:
                return cached[1]
            jwks = _parse(p.read_bytes(), f"the JWKS file {p}")
        except OSError as error:
            raise JwksUnavailable(f"the JWKS file {p} could not be read ({error.strerror})") from None
        self._files[str(p)] = (mtime, jwks)
        return jwks


def find_keys(jwks: dict[str, Any], kid: str | None, kty: str | None) -> list[dict[str, Any]]:
    """The keys a token with header ``kid`` may be signed with: the one named, or (no kid) every
    key of the algorithm's key type."""
    keys = [k for k in jwks.get("keys", []) if isinstance(k, dict) and "d" not in k]
    if kid is not None:
        return [k for k in keys if k.get("kid") == kid]
    return [k for k in keys if kty is None or k.get("kty") == kty]

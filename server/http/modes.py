"""How ``yidang serve`` starts, decided from the address it binds and the authorization setting
(issue 13 §1): open on loopback with a warning, refused on any other address unless authorization
is configured (``--auth smart``) or turned off on purpose (``--auth off``, warned on every start).

Pure: :func:`decide` looks at strings only, so the rule is unit tested without starting anything.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})

HOW_TO_SECURE = ("start with --auth smart (YIDANG_AUTH=smart) and create a client "
                 "(yidang clients add --id ID --role ROLE --institution ID --scope SCOPES --jwks FILE)")


@dataclass(frozen=True)
class StartMode:
    """What ``serve`` does: start or refuse (``refusal`` is the message), and what it tells the operator."""

    auth: Literal["", "off", "smart"]
    refusal: str | None = None
    warning: str | None = None
    """One loud line for stderr: authorization is off."""
    note: str | None = None
    """An informational line (where the token endpoint is)."""


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (bracketed or not) and the usual names of localhost. Any other name is not:
    it may resolve to a public interface, and guessing wrong would open the server to the network."""
    name = host.strip().lower()
    if name in LOOPBACK_NAMES:
        return True
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        return ipaddress.ip_address(name.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def decide(host: str, auth: str, *, url: str) -> StartMode:
    """The start mode for binding ``host`` with ``auth`` ('' = not configured, 'off', 'smart');
    ``url`` is where the server will answer (used in the messages)."""
    if auth == "smart":
        return StartMode("smart", note=f"authorization: SMART on FHIR; tokens from {url}/auth/token "
                                       f"(discovery: {url}/.well-known/smart-configuration)")
    if auth == "off":
        return StartMode("off", warning=f"WARNING: authorization is OFF (--auth off): anyone who can reach {url} "
                                        f"can read and change every record; to turn it on, {HOW_TO_SECURE}")
    if auth:
        return StartMode("", refusal=f"unknown --auth {auth!r}: use 'smart' or 'off'")
    if is_loopback(host):
        return StartMode("", warning=f"WARNING: authorization is OFF: anyone on this machine can read and change "
                                     f"every record at {url}; to turn it on, {HOW_TO_SECURE}")
    return StartMode("", refusal=(
        f"refusing to serve on {host} without authorization: every client that reaches the port could read "
        f"and change every record. Either {HOW_TO_SECURE}, or give --auth off (YIDANG_AUTH=off) to run it "
        f"open on purpose, or bind to 127.0.0.1."))

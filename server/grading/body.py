"""Masking a response body (pure): a stored resource's bytes, a resource, or a Bundle/Parameters whose
entries are stored bytes (``orjson.Fragment``), resources or nested Bundles (transaction responses,
``$everything``). Bodies with nothing above the reader's clearance come back as None, so the caller
keeps its bytes as they are; a stored body whose stamped level is within the clearance is decided
without parsing."""

from __future__ import annotations

import copy
from typing import Any

import orjson

from server.fhir.json import load_stored
from server.grading.grade import stamped_level
from server.grading.mask import Lift, mask_resource
from server.grading.policy import Policy


def mask_stored(body: bytes, policy: Policy, clearance: int, lift: Lift | None = None) -> dict[str, Any] | None:
    """The masked resource of a stored body, or None when nothing in it is above ``clearance``."""
    level = stamped_level(body)
    if level is not None and level <= clearance:
        return None
    resource = load_stored(body)
    if not isinstance(resource, dict):
        return None
    return resource if mask_resource(resource, policy, clearance, lift) else None


def _entry_resource(value: Any, policy: Policy, clearance: int, lift: Lift | None) -> Any | None:
    if isinstance(value, orjson.Fragment):
        return mask_stored(orjson.dumps(value), policy, clearance, lift)
    if isinstance(value, bytes):
        return mask_stored(value, policy, clearance, lift)
    if isinstance(value, dict):
        return mask_json(value, policy, clearance, lift)
    return None


def mask_json(body: dict[str, Any], policy: Policy, clearance: int, lift: Lift | None = None) -> dict[str, Any] | None:
    """``body`` (a resource, Bundle or Parameters) with what is above ``clearance`` masked, as a new
    object (``body`` is not changed); None when nothing needed masking."""
    kind = body.get("resourceType")
    if kind == "Bundle":
        entries = body.get("entry")
        if not isinstance(entries, list):
            return None
        changed = False
        out_entries: list[Any] = []
        for entry in entries:
            masked = _entry_resource(entry.get("resource"), policy, clearance, lift) \
                if isinstance(entry, dict) else None
            if masked is not None:
                entry = {**entry, "resource": masked}
                changed = True
            out_entries.append(entry)
        return {**body, "entry": out_entries} if changed else None
    if kind == "Parameters":
        params = body.get("parameter")
        if not isinstance(params, list):
            return None
        changed = False
        out_params: list[Any] = []
        for param in params:
            if isinstance(param, dict):
                masked = _entry_resource(param.get("resource"), policy, clearance, lift)
                if masked is not None:
                    param = {**param, "resource": masked}
                    changed = True
                if isinstance(param.get("part"), list):
                    parts = mask_json({"resourceType": "Parameters", "parameter": param["part"]}, policy,
                                      clearance, lift)
                    if parts is not None:
                        param = {**param, "part": parts["parameter"]}
                        changed = True
            out_params.append(param)
        return {**body, "parameter": out_params} if changed else None
    if kind == "OperationOutcome":
        return None
    copied = copy.deepcopy(body)
    return copied if mask_resource(copied, policy, clearance, lift) else None


def mask_body(body: bytes | dict[str, Any] | None, policy: Policy, clearance: int,
              lift: Lift | None = None) -> dict[str, Any] | None:
    """A response body masked for a reader of ``clearance``; None when it is shown as it is."""
    if body is None or clearance >= policy.top:
        return None
    if isinstance(body, bytes):
        return mask_stored(body, policy, clearance, lift)
    return mask_json(body, policy, clearance, lift)

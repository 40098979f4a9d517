"""Reading operation input from a query string or a ``Parameters`` body, and building output."""

from __future__ import annotations

from typing import Any

from server.errors import BadRequest


def from_parameters(resource: dict[str, Any]) -> list[tuple[str, Any]]:
    """``Parameters.parameter`` -> [(name, value)]: ``value[x]``, ``resource``, or the ``part`` list."""
    out: list[tuple[str, Any]] = []
    params = resource.get("parameter", [])
    if not isinstance(params, list):
        raise BadRequest("Parameters.parameter must be an array", expression=("Parameters.parameter",))
    for n, param in enumerate(params):
        if not isinstance(param, dict) or not isinstance(param.get("name"), str):
            raise BadRequest(f"Parameters.parameter[{n}] has no name", expression=(f"Parameters.parameter[{n}]",))
        value: Any = None
        if "resource" in param:
            value = param["resource"]
        elif "part" in param:
            value = from_parameters({"parameter": param["part"]})
        else:
            for key, val in param.items():
                if key.startswith("value"):
                    value = val
                    break
        out.append((param["name"], value))
    return out


def is_input(resource: dict[str, Any], inputs: frozenset[str] | None) -> bool:
    """Whether a Parameters body is the operation's input rather than the resource it acts on.

    ``POST Parameters/$validate`` may carry the Parameters resource to validate or the operation's
    own input wrapping it (http://hl7.org/fhir/R4/operations.html#executing): it is the input when it
    names at least one parameter and only parameters of the operation (``inputs``). An empty
    Parameters, or one with other (or nameless) parameters, is the resource itself.
    """
    if inputs is None:
        return True
    params = resource.get("parameter")
    if not isinstance(params, list) or not params:
        return False
    return all(isinstance(p, dict) and p.get("name") in inputs for p in params)


def to_parameters(values: list[tuple[str, str, Any]]) -> dict[str, Any]:
    """[(name, value[x] key, value)] -> a Parameters resource (``resource`` for resources)."""
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": name, key: value} for name, key, value in values],
    }

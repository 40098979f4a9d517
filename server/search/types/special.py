"""Special parameters (search.html#special): R4 core defines one, ``Location?near``.

``near`` needs geographic distance computation the stores do not offer, so it is declined with
NotSupported (lenient searches list it as ignored); nothing is indexed for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from server.search.model import Condition, Entry
from server.search.registry import ParamDef
from server.search.types.common import DEFAULT, Options, not_supported


def index(param: ParamDef, value: Any, fhir_type: str, *, path: str | None = None,
          resource: dict[str, Any] | None = None, options: Options = DEFAULT) -> Iterable[Entry]:
    return []


def condition(param: ParamDef, modifier: str | None, raw: str, options: Options = DEFAULT) -> Condition:
    not_supported(param, "special parameters (geographic 'near' search) are not supported")

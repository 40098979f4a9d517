"""Logical ids (http://hl7.org/fhir/R4/datatypes.html#id) and server-assigned ones."""

from __future__ import annotations

import re
import uuid

ID_RE = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None


def new_id() -> str:
    """A fresh server-assigned id: a random UUID, unguessable and unique without coordination."""
    return str(uuid.uuid4())

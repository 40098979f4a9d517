"""Who is asking: the identity, institution, role and scopes one request acts with.

A :class:`Principal` is made by the token service (``server.auth``) from a verified access token
(or, with authorization off, :data:`OPEN`); the policy (:mod:`server.access.policy`) decides from it
alone, so nothing below the HTTP layer ever looks at a token or a header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["institution", "district", "platform", "auditor", "resident"]
ROLES: tuple[Role, ...] = ("institution", "district", "platform", "auditor", "resident")
"""- ``institution``: a hospital's or clinic's system or clinician: writes and reads the records its
  institution is the source of.
- ``district``: a district health commission: reads the records of the residents it manages
  (``Patient.managingOrganization`` is the district's Organization or one that is ``partOf`` it).
- ``platform``: the regional platform's operators: everything, including administration.
- ``auditor``: reads AuditEvents and nothing clinical.
- ``resident``: a person reading his or her own record (patient scopes, a ``patient`` claim)."""

Kind = Literal["client", "user", "external", "anonymous"]

SOURCE_TAG_SYSTEM = "http://yidang.org/fhir/CodeSystem/source-institution"
"""``meta.tag`` system of the institution a resource was written by (code: its identifier)."""
SOURCE_URI_PREFIX = "http://yidang.org/fhir/institution/"
"""``meta.source`` of a resource written by an institution: this prefix and its identifier."""


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    """The client id, the local user name, or an external issuer's ``sub``."""
    kind: Kind
    role: Role
    institution: str
    """The identifier value of the caller's institution (统一社会信用代码 or 医疗机构执业许可证登记号);
    '' only for :data:`OPEN`."""
    scopes: tuple[str, ...]
    """The SMART scopes the token grants, as written (``patient/Observation.rs?category=laboratory``)."""
    patient: str | None = None
    """The Patient id of the launch context (``patient`` claim): patient scopes and residents."""
    purpose: str | None = None
    """Purpose of use (v3 PurposeOfUse code) the request declares, for consent and audit."""
    issuer: str = ""
    token_id: str | None = None
    client_id: str | None = None
    """The OAuth client the token was issued to (the same as ``subject`` for backend services)."""

    @property
    def is_open(self) -> bool:
        return self.kind == "anonymous"


OPEN = Principal("anonymous", "anonymous", "platform", "", ("system/*.*",))
"""Authorization off: every request may do everything (loopback first run, or ``--auth off``)."""

"""Purpose of use: the v3 PurposeOfUse codes (``http://terminology.hl7.org/CodeSystem/v3-ActReason``,
concepts under ``PurposeOfUse``) and their hierarchy, so that a provision for ``TREAT`` also covers
``ETREAT`` and ``BTG``. Pure.

A request declares its purpose in the ``X-Purpose-Of-Use`` header or the token's ``purpose_of_use``
claim (:func:`declared_purpose`); an unknown code is a 400.
"""

from __future__ import annotations

from server.errors import BadRequest, Forbidden

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
HEADER = "X-Purpose-Of-Use"
CLAIM = "purpose_of_use"

PARENT: dict[str, str | None] = {
    "HMARKT": None, "HOPERAT": None, "HPAYMT": None, "HRESCH": None, "PATRQT": None, "PUBHLTH": None,
    "TREAT": None,
    **dict.fromkeys(("CAREMGT", "DONAT", "FRAUD", "GOV", "HACCRED", "HCOMPL", "HDECD", "HDIRECT", "HDM", "HLEGAL",
                     "HOUTCOMS", "HPRGRP", "HQUALIMP", "HSYSADMIN", "MEMADMIN", "MILCDM", "PATADMIN", "PATSFTY",
                     "PERFMSR", "RECORDMGT", "SYSDEV", "TRAIN"), "HOPERAT"),
    "LABELING": "HSYSADMIN", "METAMGT": "HSYSADMIN", "HTEST": "SYSDEV",
    **dict.fromkeys(("CLMATTCH", "COVAUTH", "COVERAGE", "REMITADV"), "HPAYMT"),
    **dict.fromkeys(("ELIGDTRM", "ELIGVER", "ENROLLM", "MILDCRG"), "COVERAGE"),
    **dict.fromkeys(("BIORCH", "CLINTRCH", "DSRCH", "POARCH", "TRANSRCH"), "HRESCH"),
    **dict.fromkeys(("CLINTRCHNPC", "CLINTRCHPC", "PRECLINTRCH"), "CLINTRCH"),
    **dict.fromkeys(("FAMRQT", "PWATRNY", "SUPNWK"), "PATRQT"),
    "DISASTER": "PUBHLTH", "THREAT": "PUBHLTH",
    **dict.fromkeys(("CLINTRL", "COC", "ETREAT", "POPHLTH"), "TREAT"),
    "BTG": "ETREAT", "ERTREAT": "ETREAT",
}
"""Every v3 PurposeOfUse code and its parent (is-a), from the R4 v3-ActReason CodeSystem."""
PURPOSES = frozenset(PARENT)
BREAK_GLASS = frozenset({"BTG", "ETREAT"})
"""Purposes that, declared by a role allowed to, override a denying Consent (break-glass)."""


def covers(general: str, specific: str) -> bool:
    """Whether ``specific`` is ``general`` or one of its descendants (TREAT covers ETREAT and BTG)."""
    code: str | None = specific
    while code is not None:
        if code == general:
            return True
        code = PARENT.get(code)
    return False


def check_purpose(code: str, where: str) -> str:
    """``code`` when it is a v3 PurposeOfUse code; 400 naming ``where`` it came from otherwise."""
    code = code.strip()
    if code not in PURPOSES:
        raise BadRequest(f"{where}: '{code}' is not a v3 PurposeOfUse code ({ACT_REASON}), e.g. TREAT, ETREAT, "
                         "BTG, HPAYMT, HRESCH, PUBHLTH")
    return code


def declared_purpose(header: str | None, claimed: str | None) -> str | None:
    """The request's purpose of use: the ``X-Purpose-Of-Use`` header, or the token's claim. A token
    that carries a purpose binds the request to it: a header naming another is refused (403)."""
    if header is None or not header.strip():
        return claimed
    code = check_purpose(header, f"The {HEADER} header")
    if claimed is not None and claimed != code:
        raise Forbidden(f"The token was issued for purpose of use {claimed}; the {HEADER} header may not change it")
    return code

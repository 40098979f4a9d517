"""JSON numbers that keep the way they were written.

R4 JSON says decimals keep their precision (http://hl7.org/fhir/R4/json.html#primitive: "1.50"
is not "1.5"), but a JSON parser that yields ``float`` forgets trailing zeros and rounds anything
beyond 17 significant digits (``12345678901234567890.12`` would come back as
``1.2345678901234567e+19``, a different number). :class:`FhirDecimal` is a ``float`` that also
remembers its lexical form, so every consumer that wants a number (the validator, FHIRPath,
search indexing) keeps working unchanged, while the serialisers (``server.fhir.json.dumps``, the
XML writer, the MongoDB store) print ``text`` instead of the float.

It lives here, below the server, because the XML reader and writer (:mod:`profiles.fhirxml`) need
it as much as the JSON parser does.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = ["JSON_NUMBER", "MAX_DIGITS", "FhirDecimal", "json_decimal", "lexical"]

MAX_DIGITS = 34
"""Significant digits a decimal may have: IEEE 754 decimal128, what MongoDB's Decimal128 keeps
exactly; both stores refuse the same numbers instead of one silently rounding them."""

JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
"""The JSON number grammar (RFC 8259 §6), which is also the FHIR ``decimal`` lexical space."""


class FhirDecimal(float):
    """A float that serialises as the text it was parsed from (``FhirDecimal("1.50")``).

    Equality and hashing are the float's, so ``FhirDecimal("1.50") == 1.5``: precision matters
    for how the value is written back and searched, not for comparisons inside the server.
    """

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> FhirDecimal:
        if not JSON_NUMBER.fullmatch(text):
            raise ValueError(f"{text!r} is not a JSON number")
        value = super().__new__(cls, text)
        value.text = text
        return value

    def __repr__(self) -> str:  # the JSON text, so messages and str()/f-strings show what was sent
        return self.text

    __str__ = __repr__

    def __reduce__(self) -> tuple[type[FhirDecimal], tuple[str]]:
        return (FhirDecimal, (self.text,))

    def __copy__(self) -> FhirDecimal:
        return self

    def __deepcopy__(self, memo: object) -> FhirDecimal:
        return self

    def to_decimal(self) -> Decimal:
        return Decimal(self.text)


def lexical(value: int | float | Decimal) -> str:
    """The JSON text of a number: a FhirDecimal's own text, else what orjson prints for it."""
    if isinstance(value, FhirDecimal):
        return value.text
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, (bool, int)):
        return str(int(value))
    return repr(float(value))


def decimal_text(value: Decimal) -> str:
    """A Decimal as a JSON number with its precision: plain notation when it has no positive
    exponent (``0.010``, ``12345678901234567890.12``), else the exponent form (``1e2`` is one
    significant digit, which ``100`` would not say)."""
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        raise InvalidOperation(f"{value} is not a finite number")
    if exponent <= 0:
        return format(value, "f")
    return str(value).lower().replace("e+", "e")


def json_decimal(text: str) -> float | FhirDecimal:
    """The value for a decimal written ``text`` (FHIR XML ``value="1.50"``): a plain float when the
    float prints back as ``text`` (what orjson gives for the same JSON), else a FhirDecimal."""
    value = float(text)
    if repr(value) == text:
        return value
    if len(Decimal(text).as_tuple().digits) > MAX_DIGITS:
        raise ValueError(f"{text} has more than {MAX_DIGITS} significant digits")
    return FhirDecimal(text)

"""Answering "is this code in that value set?" fast, with an honest "unknown".

The validator asks once per coded element on every write, so each value set is turned once into
a :class:`Membership`: a dict from ``(system, code)`` to a ready :class:`CodeCheck`. A cached hit
is one dict lookup and returns a shared object.

Display rule (http://hl7.org/fhir/R4/valueset-operation-validate-code.html). The display check
is reported separately from membership: ``CodeCheck.result`` says whether the code is in the
value set, and ``display_valid`` says whether the given display is one of the concept's
displays (its display or any designation, compared case-insensitively with whitespace
collapsed). The ``$validate-code`` operation then answers ``result = false`` with a message
for a wrong display ("the concept details supplied are not valid"). The validator's binding
check can report a wrong display as a warning, as the HL7 Java validator does, and a
non-member code as a binding error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from terminology.codesystem import Concept
from terminology.compose import Entry, Evaluated


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """The answer to one code check.

    ``result``: True (member / valid), False (not a member / invalid), None (cannot tell: the code
    system is not carried or only partly). ``display``: the concept's preferred display when
    known. ``display_valid``: None when no display was given or it cannot be judged.
    """

    result: bool | None
    message: str = ""
    display: str | None = None
    display_valid: bool | None = None


Usable = tuple[frozenset[tuple[str, str]], frozenset[str]]
"""The accepted ``(system, code)`` pairs of a closed value set, and the codes accepted without a system."""
ConceptOf = Callable[[str, str], "tuple[Concept | None, bool]"]
"""(system, code) -> (concept or None, whether the system is carried completely)."""


def normalize(text: str) -> str:
    return " ".join(text.split()).casefold()


def judge_display(system: str | None, code: str, given: str, preferred: str | None,
                  candidates: Iterable[str]) -> CodeCheck:
    """A member code with a display to check against the concept's acceptable displays."""
    wanted = normalize(given)
    if any(normalize(c) == wanted for c in candidates):
        return CodeCheck(True, "", preferred, True)
    return CodeCheck(True, f"Display {given!r} is not a display of {system}#{code}; expected {preferred!r}",
                     preferred, False)


def _hit(url: str, entry: Entry) -> CodeCheck:
    """The ready answer for a member; abstract codes are listed for navigation but not usable.

    Like the HL7 Java validator, an abstract (notSelectable) code fails a binding, and an
    inactive or deprecated one passes with a message the validator can turn into a warning.
    """
    label = f"{entry.system}#{entry.code}"
    if entry.abstract:
        return CodeCheck(False, f"{label} is abstract (notSelectable) and cannot be used as a value "
                                f"from value set {url}", entry.display)
    if entry.inactive:
        return CodeCheck(True, f"{label} is inactive", entry.display)
    if entry.deprecated:
        return CodeCheck(True, f"{label} is deprecated", entry.display)
    return CodeCheck(True, "", entry.display)


class Membership:
    """Membership table of one evaluated value set."""

    __slots__ = ("_by_code", "_concept_of", "_confirmed", "_usable", "evaluated", "hits", "url")

    def __init__(self, url: str, evaluated: Evaluated, concept_of: ConceptOf) -> None:
        self.url = url
        self.evaluated = evaluated
        self.hits: dict[tuple[str, str], CodeCheck] = {
            key: _hit(url, entry) for key, entry in evaluated.entries.items()
        }
        self._by_code: dict[str, tuple[str, str]] | None = None
        self._confirmed: dict[tuple[str, str], CodeCheck] = {}
        self._concept_of = concept_of
        self._usable: Usable | None = None

    def usable(self) -> Usable | None:
        """Every code :meth:`check` accepts, as sets, when the value set is closed (None otherwise).

        ``(system#code pairs, bare codes)``: a bare ``code`` element is accepted exactly when
        :meth:`check` with no system would accept it. A set lookup then answers what :meth:`check`
        answers, which is what the validator's per-write required-binding check needs.
        """
        if not self.evaluated.closed:
            return None
        if self._usable is None:
            pairs = frozenset(key for key, hit in self.hits.items() if hit.result)
            bare = frozenset(code for _, code in self.hits if self.check(None, code).result)
            self._usable = (pairs, bare)
        return self._usable

    def check(self, system: str | None, code: str, display: str | None = None) -> CodeCheck:
        """Is ``system#code`` in the value set (``system`` None: a bare ``code`` element)."""
        key = (system, code) if system is not None else self._key_for(code)
        hit = self.hits.get(key) if key is not None else None
        if hit is None or key is None:
            return self._miss(system, code)
        if display is None or hit.result is False:
            return hit
        if display == hit.display:
            confirmed = self._confirmed.get(key)
            if confirmed is None:
                confirmed = CodeCheck(hit.result, hit.message, hit.display, True)
                self._confirmed[key] = confirmed
            return confirmed
        return self._judge(key, display, hit)

    def _key_for(self, code: str) -> tuple[str, str] | None:
        if self._by_code is None:
            by_code: dict[str, tuple[str, str]] = {}
            for key in self.hits:
                by_code.setdefault(key[1], key)
            self._by_code = by_code
        return self._by_code.get(code)

    def _judge(self, key: tuple[str, str], display: str, hit: CodeCheck) -> CodeCheck:
        entry: Entry = self.evaluated.entries[key]
        concept, _ = self._concept_of(*key)
        candidates = [*(d.get("value", "") for d in entry.designations), *(concept.displays() if concept else ())]
        if entry.display:
            candidates.append(entry.display)
        judged = judge_display(key[0], key[1], display, hit.display, candidates)
        if not hit.message:
            return judged
        message = "; ".join(m for m in (hit.message, judged.message) if m)
        return CodeCheck(judged.result, message, judged.display, judged.display_valid)

    def _miss(self, system: str | None, code: str) -> CodeCheck:
        label = f"{system}#{code}" if system is not None else repr(code)
        concept, complete = self._concept_of(system, code) if system is not None else (None, False)
        if self.evaluated.is_open_for(system, defined=concept is not None):
            why = "; ".join(dict.fromkeys(self.evaluated.notes)) or "its definition cannot be fully evaluated"
            return CodeCheck(None, f"Cannot tell whether {label} is in value set {self.url}: {why}")
        if system is not None and concept is None and complete:
            return CodeCheck(False, f"Unknown code {code!r} in code system {system}; not in value set {self.url}")
        return CodeCheck(False, f"{label} is not in value set {self.url}")

"""The narrative rules behind ``htmlChecks()`` (invariants txt-1 and txt-2 of Narrative.div).

http://hl7.org/fhir/R4/narrative.html#xhtml: the XHTML of a narrative is a single ``<div>`` in
the XHTML namespace that contains only the basic HTML formatting elements of HTML 4.0 chapters
7-11 and 15, ``<a>`` (name or href), images and style attributes — no scripts, forms, frames,
objects or event-handler attributes — and some non-whitespace content. Those rules are what keep
a narrative safe to render in a clinician's browser, so they are checked with a real parser, not
a regex.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

ALLOWED_ELEMENTS = frozenset({
    "a", "abbr", "acronym", "address", "b", "big", "blockquote", "br", "caption", "cite", "code", "col",
    "colgroup", "dd", "dfn", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "kbd", "li", "ol", "p", "pre", "q", "samp", "small", "span", "strong", "sub", "sup", "table", "tbody",
    "td", "tfoot", "th", "thead", "tr", "tt", "ul", "var", "ins", "del", "s", "u", "strike", "center", "font",
    "bdo", "figure", "figcaption", "section", "article", "header", "footer", "nav", "aside", "mark", "time",
})
"""HTML 4.0 chapters 7-11 and 15 formatting elements, plus the few later ones renderers produce."""

ALLOWED_ATTRIBUTES = frozenset({
    "xmlns", "xml:lang", "lang", "dir", "id", "class", "style", "title", "name", "href", "src", "alt", "width",
    "height", "border", "colspan", "rowspan", "span", "align", "valign", "char", "charoff", "cellpadding",
    "cellspacing", "summary", "frame", "rules", "abbr", "axis", "headers", "scope", "start", "type", "value",
    "compact", "cite", "datetime", "size", "color", "face", "clear", "nowrap", "bgcolor", "hspace", "vspace",
    "usemap", "ismap", "longdesc", "target", "rel", "rev", "hreflang", "charset", "shape", "coords", "accesskey",
    "tabindex",
})


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.text = False
        self.depth = 0
        self.roots = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth == 0:
            self.roots += 1
            if tag != "div":
                self.problems.append(f"the narrative must be a single <div>, not <{tag}>")
        self.depth += 1
        if tag not in ALLOWED_ELEMENTS:
            self.problems.append(f"<{tag}> is not allowed in a narrative")
        if tag == "img":
            self.text = True
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"event handler attribute '{name}' on <{tag}> is not allowed in a narrative")
            elif name not in ALLOWED_ATTRIBUTES and not name.startswith(("xmlns:", "data-", "aria-", "epub:")):
                self.problems.append(f"attribute '{name}' on <{tag}> is not allowed in a narrative")
            elif name in ("href", "src") and value and value.strip().lower().startswith(("javascript:", "vbscript:")):
                self.problems.append(f"script url in '{name}' on <{tag}> is not allowed in a narrative")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self.depth -= 1

    def handle_endtag(self, tag: str) -> None:
        self.depth = max(0, self.depth - 1)

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text = True
            if self.depth == 0:
                self.problems.append("text outside the narrative <div>")


NO_CONTENT = "the narrative has no non-whitespace content (txt-2)"
"""The problem txt-2 is about; every other one is txt-1's (elements, attributes, well-formedness)."""
XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")


def narrative_problems(xhtml: str) -> list[str]:
    """What makes ``xhtml`` an unacceptable narrative (empty when it is fine).

    Named entities other than XML's five (``&reg;``, ``&nbsp;``) are HTML, not XHTML: an XML
    parser rejects them, so they are reported rather than silently decoded.
    """
    undefined = sorted({name for name in ENTITY.findall(xhtml) if name not in XML_ENTITIES})
    if undefined:
        return [f"the narrative uses the entity &{undefined[0]}; which XHTML does not define (use the character or "
                "a numeric reference)"]
    checker = _Checker()
    try:
        checker.feed(xhtml)
        checker.close()
    except (ValueError, AssertionError) as error:
        return [f"the narrative is not well-formed XHTML: {error}"]
    problems = checker.problems
    if checker.roots > 1:
        problems.append("the narrative must be a single <div> element")
    if not checker.text:
        problems.append(NO_CONTENT)
    return problems


class _Anchors(HTMLParser):
    """The ``id``/``name`` anchors of a narrative and the fragments its ``<a href="#...">`` links point at."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.anchors.add(value)
            elif name == "href" and tag == "a" and value and value.startswith("#") and len(value) > 1:
                self.links.append(value[1:])


def _anchors(xhtml: str) -> _Anchors:
    parser = _Anchors()
    try:
        parser.feed(xhtml)
        parser.close()
    except (ValueError, AssertionError):
        pass  # a narrative that does not parse is reported by txt-1
    return parser


def dangling_links(own: str, others: list[str]) -> list[str]:
    """The fragments of ``own``'s internal links (``<a href="#x">``) that no anchor names.

    An internal link goes to an element of the rendered narrative with that ``id`` or ``name``: in the
    narrative itself or, as a resource is rendered with the resources it contains, in theirs
    (``others``). A link to nothing is an error for the HL7 reference validator, as for any XHTML
    checker: the reader of the narrative follows it to nowhere.
    """
    found = _anchors(own)
    if not found.links:
        return []
    anchors = found.anchors.union(*(_anchors(other).anchors for other in others))
    return list(dict.fromkeys(link for link in found.links if link not in anchors))

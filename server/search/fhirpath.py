"""A parser for the FHIRPath used by SearchParameter expressions, producing a small AST.

Search parameter expressions (http://hl7.org/fhir/R4/searchparameter-registry.html) use a
narrow slice of FHIRPath (http://hl7.org/fhirpath/N1/): paths, unions, ``where``, ``as``/``is``,
``ofType``, ``exists``, ``resolve``, ``extension``, indexers, equality and boolean operators.
This module parses the full operator grammar (so precedence is right) into plain frozen tuples;
:mod:`server.search.extract` compiles the subset it understands into closures and hands anything
else to fhirpathpy. Malformed text raises :class:`FhirPathSyntax`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class FhirPathSyntax(ValueError):
    """Raised when an expression is not valid FHIRPath."""


class FhirPathUnsupported(ValueError):
    """Raised for valid FHIRPath syntax this parser does not build (date/time literals), so the
    caller can hand the expression to a full interpreter."""


@dataclass(frozen=True, slots=True)
class Ident:
    """A member name or type name with no explicit input (``name`` at the start of a path)."""

    name: str


@dataclass(frozen=True, slots=True)
class Member:
    """``target.name``."""

    target: Ast
    name: str


@dataclass(frozen=True, slots=True)
class Call:
    """``target.name(args)``, or a bare function call when ``target`` is None."""

    target: Ast | None
    name: str
    args: tuple[Ast, ...]


@dataclass(frozen=True, slots=True)
class Index:
    target: Ast
    index: Ast


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Ast
    right: Ast


@dataclass(frozen=True, slots=True)
class TypeOp:
    """``left is T`` / ``left as T``."""

    op: str
    left: Ast
    type_name: str


@dataclass(frozen=True, slots=True)
class Literal:
    value: object


@dataclass(frozen=True, slots=True)
class Var:
    """``%resource``, ``%context``, ``$this`` ..."""

    name: str


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: Ast


Ast = Ident | Member | Call | Index | Binary | TypeOp | Literal | Var | Unary

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^'\\]|\\.)*')
    | (?P<num>\d+(?:\.\d+)?)
    | (?P<date>@[0-9T:\-+.Z]+)
    | (?P<id>[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)
    | (?P<var>%[A-Za-z_][A-Za-z0-9_\-]*|%`[^`]+`|%'[^']+'|\$[a-z]+)
    | (?P<op><=|>=|!=|!~|[-+*/&|=~<>.,()\[\]{}])
    )""",
    re.VERBOSE,
)

_BINARY = {
    "implies": 1, "or": 2, "xor": 2, "and": 3, "in": 4, "contains": 4,
    "=": 5, "~": 5, "!=": 5, "!~": 5, "<": 6, "<=": 6, ">": 6, ">=": 6,
    "|": 7, "is": 8, "as": 8, "+": 9, "-": 9, "&": 9, "*": 10, "/": 10, "div": 10, "mod": 10,
}
_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _unescape(body: str) -> str:
    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)",
                  lambda m: chr(int(m.group(1)[1:], 16)) if len(m.group(1)) == 5 else _ESCAPES.get(
                      m.group(1), m.group(1)), body)


def tokenize(text: str) -> list[tuple[str, str]]:
    """(kind, text) pairs; kind is one of str/num/date/id/var/op."""
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FhirPathSyntax(f"unexpected character at {pos} in {text!r}")
        kind = m.lastgroup or "op"
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def split_union(text: str) -> list[str]:
    """Split an expression at its top-level ``|`` operators (outside parentheses and strings),
    so that a multi-base expression can be divided per resource type."""
    parts: list[str] = []
    depth = 0
    start = 0
    in_str = False
    i = 0
    while i < len(text):
        c = text[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == "'":
                in_str = False
        elif c == "'":
            in_str = True
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
        i += 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (expected is not None and tok[1] != expected):
            raise FhirPathSyntax(f"expected {expected or 'a token'} in {self.text!r}")
        self.pos += 1
        return tok

    def parse(self) -> Ast:
        node = self.expression(0)
        if self.peek() is not None:
            raise FhirPathSyntax(f"trailing input {self.peek()} in {self.text!r}")
        return node

    def expression(self, min_prec: int) -> Ast:
        left = self.unary()
        while True:
            tok = self.peek()
            if tok is None or tok[0] not in ("op", "id") or tok[1] not in _BINARY:
                return left
            prec = _BINARY[tok[1]]
            if prec <= min_prec:
                return left
            self.pos += 1
            if tok[1] in ("is", "as"):
                left = TypeOp(tok[1], left, self.type_name())
            else:
                left = Binary(tok[1], left, self.expression(prec))

    def identifier(self) -> str:
        kind, text = self.take()
        if kind != "id":
            raise FhirPathSyntax(f"expected a name, got {text!r} in {self.text!r}")
        return text.strip("`")

    def type_name(self) -> str:
        name = self.identifier()
        while self.peek() == ("op", "."):
            self.pos += 1
            name += "." + self.identifier()
        return name

    def unary(self) -> Ast:
        tok = self.peek()
        if tok is not None and tok[1] in ("+", "-") and tok[0] == "op":
            self.pos += 1
            return Unary(tok[1], self.unary())
        return self.postfix(self.term())

    def term(self) -> Ast:
        kind, text = self.take()
        if kind == "str":
            return Literal(_unescape(text[1:-1]))
        if kind == "num":
            return Literal(float(text) if "." in text else int(text))
        if kind == "var":
            return Var(text[1:].strip("`'"))
        if kind == "date":
            raise FhirPathUnsupported(f"date literals are not supported: {text}")
        if text == "(":
            inner = self.expression(0)
            self.take(")")
            return inner
        if text == "{":
            self.take("}")
            return Literal(None)
        if kind == "id":
            if text in ("true", "false"):
                return Literal(text == "true")
            name = text.strip("`")
            if self.peek() == ("op", "("):
                return Call(None, name, self.arguments())
            return Ident(name)
        raise FhirPathSyntax(f"unexpected {text!r} in {self.text!r}")

    def arguments(self) -> tuple[Ast, ...]:
        self.take("(")
        args: list[Ast] = []
        if self.peek() != ("op", ")"):
            args.append(self.expression(0))
            while self.peek() == ("op", ","):
                self.pos += 1
                args.append(self.expression(0))
        self.take(")")
        return tuple(args)

    def postfix(self, node: Ast) -> Ast:
        while True:
            tok = self.peek()
            if tok == ("op", "."):
                self.pos += 1
                name = self.identifier()
                node = Call(node, name, self.arguments()) if self.peek() == ("op", "(") else Member(node, name)
            elif tok == ("op", "["):
                self.pos += 1
                index = self.expression(0)
                self.take("]")
                node = Index(node, index)
            else:
                return node


def parse(text: str) -> Ast:
    """Parse one FHIRPath expression; raises :class:`FhirPathSyntax`."""
    return _Parser(text).parse()

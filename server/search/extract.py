"""Compile SearchParameter FHIRPath expressions once into fast Python extractors.

An interpreter such as fhirpathpy re-walks its parse tree for every resource (about 4 ms for
the 38 Observation parameters); at ingest rates that is the whole budget. Here each per-base
expression is parsed once (:mod:`server.search.fhirpath`) and turned into nested closures. Each
closure maps a list of *items* ``(value, fhir_type, node_path)`` to a list of items: member
steps look children up in :func:`profiles.model.core_model` (choice types expanded, so
``Observation.value`` visits ``valueQuantity``, ``valueString`` ...), cached per node path, so
results carry their FHIR type (``CodeableConcept``, ``Period``, ``dateTime`` ...), which the
type modules in :mod:`server.search.types` dispatch on.

Supported: paths, ``|``, ``where(...)`` (equality, ``resolve() is X``, ``exists()``, boolean
operators), ``as``/``is`` (operator and function), ``ofType``, ``first``/``last``/``tail``,
``exists``/``empty``/``not``/``count``, ``extension('url')``, ``hasValue``, indexers,
``%resource``. Anything else falls back to fhirpathpy, whose results are typed by shape.

``resolve()`` cannot load other resources at index time; it yields a typeless placeholder whose
type is read from the reference itself (``Patient/1``, ``http://x/Patient/1``, ``Reference.type``
or a ``#contained`` resource), which is all ``where(resolve() is Patient)`` needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from profiles.definitions import core
from profiles.model import Node, core_model
from server.search import fhirpath as fp
from server.search.fallback import fallback

Item = tuple[Any, str, str | None]
"""(value, FHIR type code, type-model node path or None for primitives and placeholders)."""
Fn = Callable[[list[Item], Item], list[Item]]
"""Compiled expression: (input items, root item) -> output items."""


class Unsupported(Exception):
    """Raised at compile time for FHIRPath this compiler does not handle (-> fhirpathpy)."""


_SYSTEM_TYPES: dict[str, frozenset[str]] = {
    "String": frozenset({"string", "code", "id", "markdown", "uri", "url", "canonical", "oid", "uuid",
                         "base64Binary", "xhtml"}),
    "DateTime": frozenset({"dateTime", "instant"}),
    "Date": frozenset({"date"}),
    "Time": frozenset({"time"}),
    "Boolean": frozenset({"boolean"}),
    "Integer": frozenset({"integer", "positiveInt", "unsignedInt"}),
    "Decimal": frozenset({"decimal"}),
}
_RESOURCE_REF = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$")


@cache
def _ancestors(type_code: str) -> frozenset[str]:
    """The type and every type it specialises (``Age`` -> Quantity, Element; ``code`` -> string)."""
    out = {type_code}
    definitions = core()
    current = type_code
    while True:
        sd = definitions.structure_definition(current)
        base = sd.get("baseDefinition") if sd else None
        if not base:
            break
        current = base.rsplit("/", 1)[-1]
        out.add(current)
    return frozenset(out)


@cache
def is_type(actual: str, wanted: str) -> bool:
    """FHIRPath ``is``: ``wanted`` may be FHIR.x, System.X or an unqualified name."""
    if wanted.startswith("FHIR."):
        wanted = wanted[5:]
    elif wanted.startswith("System."):
        wanted = wanted[7:]
        if wanted == "Quantity":
            return "Quantity" in _ancestors(actual)
    if wanted in _SYSTEM_TYPES:
        return actual in _SYSTEM_TYPES[wanted] or actual == wanted
    return wanted in _ancestors(actual)


@cache
def _candidates(path: str, name: str) -> tuple[tuple[str, str | None, str | None], ...]:
    """Children of node ``path`` reached by member ``name``: (json key, type or None when the
    type is read from ``resourceType``, child node path)."""
    model = core_model()
    try:
        children = model.children(Node(path.split(".", 1)[0], path))
    except KeyError:
        return ()
    out: list[tuple[str, str | None, str | None]] = []
    for key, element in children.items():
        if key == name or (element.choice and element.path.endswith("." + name + "[x]")):
            if element.type in ("Resource", "DomainResource"):
                out.append((key, None, None))
            else:
                child = element.child_node.path if element.child_node else None
                out.append((key, element.type, child))
    return tuple(out)


def reference_type(value: Any, root: Any) -> str | None:
    """Resource type a Reference (or a canonical/reference string) points at, if knowable."""
    ref = value.get("reference") if isinstance(value, dict) else value
    if isinstance(ref, str):
        if ref.startswith("#"):
            for contained in root.get("contained", ()) if isinstance(root, dict) else ():
                if isinstance(contained, dict) and contained.get("id") == ref[1:]:
                    return contained.get("resourceType")
            return None
        m = _RESOURCE_REF.search(ref.split("|", 1)[0])
        if m and core().is_resource_type(m.group(1)):
            return m.group(1)
    found = value.get("type") if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def _bool(items: list[Item]) -> bool | None:
    """FHIRPath singleton evaluation in a boolean context (empty -> None)."""
    if not items:
        return None
    if len(items) == 1:
        v = items[0][0]
        return v if isinstance(v, bool) else True
    return None  # a multi-item collection in a boolean context is an error in FHIRPath: no match


def _literal_item(value: object) -> Item:
    kind = ("boolean" if isinstance(value, bool) else "integer" if isinstance(value, int)
            else "decimal" if isinstance(value, float) else "string")
    return (value, kind, None)


def _type_arg(args: tuple[fp.Ast, ...]) -> str:
    if len(args) != 1:
        raise Unsupported("type function needs one argument")
    arg = args[0]
    parts: list[str] = []
    while isinstance(arg, fp.Member):
        parts.append(arg.name)
        arg = arg.target
    if not isinstance(arg, fp.Ident):
        raise Unsupported("type argument is not a name")
    return ".".join([arg.name, *reversed(parts)])


def _step(name: str, wanted: str | None = None) -> Fn:
    """Member access ``.name``; with ``wanted`` also ``as wanted`` (choice keys of other types are
    never even looked at, which matters for ``(Observation.value as Quantity)``)."""
    local: dict[str, tuple[tuple[str, str | None, str | None], ...]] = {}

    def candidates(p: str) -> tuple[tuple[str, str | None, str | None], ...]:
        found = _candidates(p, name)
        if wanted is not None:
            found = tuple(c for c in found if c[1] is None or is_type(c[1], wanted))
        local[p] = found
        return found

    def run(items: list[Item], root: Item) -> list[Item]:
        out: list[Item] = []
        for v, _t, p in items:
            if p is None or type(v) is not dict:
                continue
            cands = local.get(p)
            for key, ctype, cpath in candidates(p) if cands is None else cands:
                x = v.get(key)
                if x is None:
                    continue
                for e in x if type(x) is list else (x,):
                    if e is None:
                        continue
                    if ctype is None:
                        rt = e.get("resourceType") if type(e) is dict else None
                        if wanted is None or is_type(rt or "Resource", wanted):
                            out.append((e, rt or "Resource", rt))
                    else:
                        out.append((e, ctype, cpath))
        return out

    return run


_THIS = fp.Var("this")


def _member(target: fp.Ast | None, name: str, wanted: str | None = None) -> Fn:
    step = _step(name, wanted)
    if target is None or target == _THIS:
        return step
    source = _compile(target)
    return lambda items, root: step(source(items, root), root)


def _type_filter(target: Fn | None, wanted: str) -> Fn:
    def run(items: list[Item], root: Item) -> list[Item]:
        src = target(items, root) if target else items
        return [it for it in src if is_type(it[1], wanted)]

    return run


def _compile_call(target: Fn | None, name: str, args: tuple[fp.Ast, ...]) -> Fn:
    def src(items: list[Item], root: Item) -> list[Item]:
        return target(items, root) if target else items

    if name in ("as", "ofType"):
        return _type_filter(target, _type_arg(args))  # (a member target is fused in _compile)
    if name == "is":
        wanted = _type_arg(args)

        def is_(items: list[Item], root: Item) -> list[Item]:
            got = src(items, root)
            return [(is_type(got[0][1], wanted), "boolean", None)] if len(got) == 1 else []

        return is_
    if name == "where" and len(args) == 1:
        crit = _compile(args[0])

        def where(items: list[Item], root: Item) -> list[Item]:
            return [it for it in src(items, root) if _bool(crit([it], root)) is True]

        return where
    if name in ("exists", "empty", "count", "hasValue") and len(args) <= (1 if name == "exists" else 0):
        crit_fn = _compile(args[0]) if args else None

        def agg(items: list[Item], root: Item) -> list[Item]:
            got = src(items, root)
            if crit_fn is not None:
                got = [it for it in got if _bool(crit_fn([it], root)) is True]
            if name == "exists":
                return [(bool(got), "boolean", None)]
            if name == "empty":
                return [(not got, "boolean", None)]
            if name == "count":
                return [(len(got), "integer", None)]
            return [(len(got) == 1 and not isinstance(got[0][0], dict), "boolean", None)]

        return agg
    if name == "not" and not args:
        def not_(items: list[Item], root: Item) -> list[Item]:
            b = _bool(src(items, root))
            return [] if b is None else [(not b, "boolean", None)]

        return not_
    if name in ("first", "last", "tail") and not args:
        cut = {"first": slice(0, 1), "last": slice(-1, None), "tail": slice(1, None)}[name]
        return lambda items, root: src(items, root)[cut]
    if name == "resolve" and not args:
        def resolve(items: list[Item], root: Item) -> list[Item]:
            out: list[Item] = []
            for v, _t, _p in src(items, root):
                rt = reference_type(v, root[0])
                if rt:
                    out.append((None, rt, None))
            return out

        return resolve
    if name == "extension" and len(args) == 1 and isinstance(args[0], fp.Literal):
        url = args[0].value

        def extension(items: list[Item], root: Item) -> list[Item]:
            out: list[Item] = []
            for v, _t, _p in src(items, root):
                if type(v) is dict:
                    out.extend((e, "Extension", "Extension") for e in v.get("extension", ())
                               if type(e) is dict and e.get("url") == url)
            return out

        return extension
    raise Unsupported(f"function {name}()")


def _equal(op: str, left: Fn, right: Fn) -> Fn:
    def run(items: list[Item], root: Item) -> list[Item]:
        a, b = left(items, root), right(items, root)
        if not a or not b:
            return []
        same = len(a) == len(b) and all(x[0] == y[0] and type(x[0]) is type(y[0]) for x, y in zip(a, b,
                                                                                          strict=True))
        return [(same if op == "=" else not same, "boolean", None)]

    return run


def _logic(op: str, left: Fn, right: Fn) -> Fn:
    def run(items: list[Item], root: Item) -> list[Item]:
        a, b = _bool(left(items, root)), _bool(right(items, root))
        if op == "and":
            r = False if a is False or b is False else (None if a is None or b is None else True)
        elif op == "or":
            r = True if a is True or b is True else (None if a is None or b is None else False)
        elif op == "xor":
            r = None if a is None or b is None else a != b
        else:  # implies
            r = True if a is False else (b if a is True else (True if b is True else None))
        return [] if r is None else [(r, "boolean", None)]

    return run


def _compile(node: fp.Ast) -> Fn:
    if isinstance(node, fp.Ident):
        if node.name[:1].isupper():
            return _type_filter(None, node.name)
        return _step(node.name)
    if isinstance(node, fp.Member):
        return _member(node.target, node.name)
    if isinstance(node, fp.Call) and node.name in ("as", "ofType") and isinstance(node.target, fp.Member):
        return _member(node.target.target, node.target.name, _type_arg(node.args))
    if (isinstance(node, fp.Call) and node.name in ("as", "ofType") and isinstance(node.target, fp.Ident)
            and not node.target.name[:1].isupper()):
        return _member(None, node.target.name, _type_arg(node.args))
    if isinstance(node, fp.TypeOp) and node.op == "as" and isinstance(node.left, fp.Member):
        return _member(node.left.target, node.left.name, node.type_name)
    if isinstance(node, fp.Call):
        target = None if node.target is None or node.target == _THIS else _compile(node.target)
        return _compile_call(target, node.name, node.args)
    if isinstance(node, fp.Index):
        if not isinstance(node.index, fp.Literal) or not isinstance(node.index.value, int):
            raise Unsupported("non-literal index")
        target, i = _compile(node.target), node.index.value
        return lambda items, root: target(items, root)[i:i + 1]
    if isinstance(node, fp.TypeOp):
        left = _compile(node.left)
        if node.op == "as":
            return _type_filter(left, node.type_name)
        wanted = node.type_name

        def is_op(items: list[Item], root: Item) -> list[Item]:
            got = left(items, root)
            return [(is_type(got[0][1], wanted), "boolean", None)] if len(got) == 1 else []

        return is_op
    if isinstance(node, fp.Binary):
        left, right = _compile(node.left), _compile(node.right)
        if node.op == "|":
            return lambda items, root: left(items, root) + right(items, root)
        if node.op in ("=", "!="):
            return _equal(node.op, left, right)
        if node.op in ("and", "or", "xor", "implies"):
            return _logic(node.op, left, right)
        raise Unsupported(f"operator {node.op}")
    if isinstance(node, fp.Literal):
        lit = [] if node.value is None else [_literal_item(node.value)]
        return lambda items, root: lit
    if isinstance(node, fp.Var):
        if node.name in ("resource", "context", "rootResource"):
            return lambda items, root: [root]
        if node.name == "this":
            return lambda items, root: items
        if node.name == "ucum":
            return lambda items, root: [("http://unitsofmeasure.org", "string", None)]
        raise Unsupported(f"variable %{node.name}")
    raise Unsupported(type(node).__name__)


def _rooted(node: fp.Ast, context: str) -> fp.Ast:
    """Resolve the type name a top-level path starts with against the context type at compile
    time: ``Observation.code`` on an Observation becomes ``$this.code``; a branch rooted at another
    type (or at ``Resource`` on any resource) is decided once instead of per resource."""
    if isinstance(node, fp.Ident) and node.name[:1].isupper():
        return _THIS if is_type(context, node.name) else fp.Literal(None)
    if isinstance(node, fp.Member):
        return fp.Member(_rooted(node.target, context), node.name)
    if isinstance(node, fp.Call) and node.target is not None:
        return fp.Call(_rooted(node.target, context), node.name, node.args)
    if isinstance(node, fp.Index):
        return fp.Index(_rooted(node.target, context), node.index)
    if isinstance(node, fp.TypeOp):
        return fp.TypeOp(node.op, _rooted(node.left, context), node.type_name)
    if isinstance(node, fp.Binary):
        return fp.Binary(node.op, _rooted(node.left, context), _rooted(node.right, context))
    return node


# --- public API ----------------------------------------------------------------------------------

def root_item(resource: dict[str, Any]) -> Item:
    """The item a resource is evaluated from: typed and placed by its ``resourceType``."""
    rt = resource.get("resourceType")
    return (resource, rt or "Resource", rt)


@dataclass(frozen=True)
class Extractor:
    """A compiled per-base expression. ``compiled`` is False when it runs on fhirpathpy."""

    expression: str
    context: str
    """Type-model node path the expression is evaluated on (``Observation``, ``Observation.component``)."""
    compiled: bool
    _fn: Fn | None
    _slow: Callable[[Any, dict[str, Any]], list[Item]] | None

    def nodes(self, resource: dict[str, Any], root: Item | None = None) -> list[Item]:
        """Items found in a whole resource (``root``: its item, when the caller already made it)."""
        if self._fn is None:
            assert self._slow is not None
            return self._slow(resource, resource)
        if root is None:
            root = root_item(resource)
        return self._fn([root], root)

    def nodes_from(self, item: Item, resource: dict[str, Any]) -> list[Item]:
        """Items found from one element (a composite's component expressions run on it)."""
        if self._fn is not None:
            return self._fn([item], root_item(resource))
        assert self._slow is not None
        return self._slow(item[0], resource)

    def __call__(self, resource: dict[str, Any]) -> list[tuple[Any, str]]:
        """(value, fhir_type) pairs for a resource."""
        return [(v, t) for v, t, _ in self.nodes(resource)]


@cache
def compile_expression(expression: str, context: str) -> Extractor:
    """Compile ``expression`` for items at node ``context`` (a resource type for top-level
    parameters, an element path such as ``Observation.component`` for composite components).
    Raises :class:`~server.search.fhirpath.FhirPathSyntax` when the text is not FHIRPath."""
    try:
        fn = _compile(_rooted(fp.parse(expression), "Element" if "." in context else context))
    except (Unsupported, fp.FhirPathUnsupported):
        return Extractor(expression, context, False, None, fallback(expression, reference_type))
    return Extractor(expression, context, True, fn, None)

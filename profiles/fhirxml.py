"""FHIR XML ⇄ FHIR JSON, driven by the R4 StructureDefinitions.

The two formats carry the same content (http://hl7.org/fhir/R4/xml.html,
http://hl7.org/fhir/R4/json.html), but neither says everything the other needs: XML does not
say which elements repeat or whether a primitive is a JSON number, string or boolean, and JSON
does not say in which order elements appear. The type model (:class:`profiles.model.TypeModel`)
knows both, so every decision here is read off it:

- element order is the order of the snapshot (XML requires it, JSON ignores it);
- an element whose max cardinality is above 1 is a JSON array even with one occurrence;
- a primitive is ``<name value="…"/>``; its ``id`` and ``extension`` live in the JSON ``_name``
  sibling (arrays of them are aligned with ``null``\\s, http://hl7.org/fhir/R4/json.html#primitive);
- elements the definitions mark ``xmlAttr`` (``Element.id``, ``Extension.url``) are attributes;
- ``Resource``-typed elements (``contained``, ``Bundle.entry.resource``,
  ``Parameters.parameter.resource``) wrap an element named after the resource type, which is
  JSON's ``resourceType``;
- the narrative ``<div>`` passes through as XHTML text: a JSON ``div`` string is written into the
  XML verbatim and read back as the very bytes of the document, so it survives both ways intact.

Parsing uses expat with document type declarations refused, so entity expansion attacks
("billion laughs") and external entities cannot happen. Decimals keep their lexical form when the
caller asks for :class:`decimal.Decimal` values (``decimal=Decimal``) and writes them back.
"""

from __future__ import annotations

import pyexpat
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from profiles.model import Element, Node, TypeModel, core_model
from profiles.numbers import FhirDecimal

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
INTEGER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt"})
_INTEGER = re.compile(r"-?[0-9]+")
_INVALID_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                               "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})

__all__ = ["FHIR_NS", "XHTML_NS", "FhirXmlError", "XmlTooLarge", "from_xml", "json_number", "to_xml"]


class FhirXmlError(ValueError):
    """Raised when a document is not FHIR XML, or a JSON resource cannot be written as FHIR XML."""


class XmlTooLarge(FhirXmlError):
    """Raised while reading when a document nests deeper or holds more elements than allowed:
    checked as expat reports each element, before any tree of that size is built (the reader
    below recurses, so unbounded depth would end in RecursionError)."""


def json_number(lexical: str) -> int | float:
    """The number orjson would have produced for the same JSON literal (int if it has no point)."""
    return int(lexical) if _INTEGER.fullmatch(lexical) else float(lexical)


# --------------------------------------------------------------------------- XML -> JSON


class _XmlNode:
    __slots__ = ("attrs", "children", "local", "ns", "raw")

    def __init__(self, ns: str, local: str, attrs: dict[str, str]) -> None:
        self.ns = ns
        self.local = local
        self.attrs = attrs
        self.children: list[_XmlNode] = []
        self.raw: str | None = None


def _refuse(*_: Any) -> None:
    raise FhirXmlError("XML documents with a DOCTYPE or entity declarations are not accepted")


def _tree(data: bytes, max_depth: int | None = None, max_elements: int | None = None) -> _XmlNode:
    """The element tree of ``data``; XHTML ``div`` elements keep their exact source text."""
    parser = pyexpat.ParserCreate(namespace_separator=" ")
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse  # type: ignore[assignment]
    stack: list[_XmlNode] = []
    root: list[_XmlNode] = []
    encoding = ["utf-8"]
    div_start: list[int] = []
    count = [0]

    def decl(version: str, enc: str | None, standalone: int) -> None:
        if enc:
            encoding[0] = enc

    def start(name: str, attrs: dict[str, str]) -> None:
        ns, _, local = name.rpartition(" ")
        if max_depth is not None and len(stack) >= max_depth:
            raise XmlTooLarge(f"nests elements more than {max_depth} levels deep (the limit max_depth)")
        count[0] += 1
        if max_elements is not None and count[0] > max_elements:
            raise XmlTooLarge(f"has more than {max_elements} elements (the limit max_elements)")
        node = _XmlNode(ns, local, attrs)
        if stack:
            stack[-1].children.append(node)
        else:
            root.append(node)
        stack.append(node)
        if ns == XHTML_NS and local == "div" and not div_start:
            div_start.append(parser.CurrentByteIndex)

    def end(name: str) -> None:
        node = stack.pop()
        if div_start and node.ns == XHTML_NS and node.local == "div" and not any(
                n.ns == XHTML_NS and n.local == "div" for n in stack):
            begin = div_start.pop()
            at = parser.CurrentByteIndex
            closing = re.match(rb"</([A-Za-z_][\w.\-]*:)?div\s*>", data[at:at + 64])
            stop = at + closing.end() if closing else at
            node.raw = data[begin:stop].decode(encoding[0])

    def text(chars: str) -> None:
        if chars.strip() and stack and stack[-1].ns != XHTML_NS:
            raise FhirXmlError(f"unexpected text {chars.strip()[:40]!r} in <{stack[-1].local}>")

    parser.XmlDeclHandler = decl
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(data, True)
    except pyexpat.ExpatError as error:
        raise FhirXmlError(f"not well-formed XML: {error}") from None
    return root[0]


class _Reader:
    def __init__(self, model: TypeModel, decimal: Callable[[str], Any]) -> None:
        self.model = model
        self.decimal = decimal

    def resource(self, node: _XmlNode) -> dict[str, Any]:
        if node.ns != FHIR_NS:
            raise FhirXmlError(f"<{node.local}> is not in the FHIR namespace {FHIR_NS}")
        if not self.model.definitions.is_resource_type(node.local):
            raise FhirXmlError(f"{node.local} is not a FHIR resource type")
        out: dict[str, Any] = {"resourceType": node.local}
        self.children(node, self.model.root(node.local), out)
        return out

    def children(self, node: _XmlNode, where: Node, out: dict[str, Any]) -> None:
        defs = self.model.children(where)
        for name, value in node.attrs.items():
            definition = defs.get(name)
            if definition is not None and _is_attr(definition):
                out[name] = value
            elif " " not in name and name != "value":  # namespaced attributes (xsi:…) carry no FHIR content
                raise FhirXmlError(f"unknown attribute {name} on {where.path}")
        for child in node.children:
            if child.ns == XHTML_NS:
                definition = defs.get(child.local)
                if definition is None or definition.type != "xhtml":
                    raise FhirXmlError(f"XHTML <{child.local}> is not allowed in {where.path}")
                out[child.local] = child.raw
                continue
            if child.ns != FHIR_NS:
                raise FhirXmlError(f"<{child.local}> in {where.path} is not in the FHIR namespace")
            definition = defs.get(child.local)
            if definition is None or _is_attr(definition):
                raise FhirXmlError(f"unknown element {child.local} in {where.path}")
            value, extra = self.value(child, definition)
            _add(out, child.local, value, extra, definition.is_array)

    def value(self, node: _XmlNode, definition: Element) -> tuple[Any, dict[str, Any] | None]:
        """(JSON value, ``_name`` object or None) of one element."""
        if definition.type == "Resource":
            if len(node.children) != 1:
                raise FhirXmlError(f"{definition.path} must hold exactly one resource")
            return self.resource(node.children[0]), None
        if definition.child_node is not None:
            out: dict[str, Any] = {}
            self.children(node, definition.child_node, out)
            return out, None
        extra: dict[str, Any] = {}
        if "id" in node.attrs:
            extra["id"] = node.attrs["id"]
        extension = self.model.child(self.model.root("Element"), "extension")
        assert extension is not None and extension.child_node is not None
        for child in node.children:
            if child.ns != FHIR_NS or child.local != "extension":
                raise FhirXmlError(f"primitive {definition.path} can only hold extensions, not <{child.local}>")
            extra.setdefault("extension", []).append(self.value(child, extension)[0])
        for name in node.attrs:
            if name not in ("id", "value") and " " not in name:
                raise FhirXmlError(f"unknown attribute {name} on primitive {definition.path}")
        raw = node.attrs.get("value")
        return (None if raw is None else self.primitive(raw, definition.type)), (extra or None)

    def primitive(self, raw: str, type_name: str) -> Any:
        if type_name == "boolean":
            return {"true": True, "false": False}.get(raw, raw)
        if type_name in INTEGER_TYPES:
            return int(raw) if _INTEGER.fullmatch(raw) else raw
        if type_name == "decimal":
            try:
                return self.decimal(raw)
            except (ValueError, ArithmeticError):
                return raw
        return raw


def _is_attr(definition: Element) -> bool:
    return "xmlAttr" in definition.definition.get("representation", ())


def _add(out: dict[str, Any], name: str, value: Any, extra: dict[str, Any] | None, array: bool) -> None:
    if not array:
        if value is not None:
            out[name] = value
        if extra is not None:
            out["_" + name] = extra
        return
    values: list[Any] = out.setdefault(name, [])
    count = len(values)
    values.append(value)
    if extra is not None and "_" + name not in out:
        out["_" + name] = [None] * count
    if "_" + name in out:
        out["_" + name].append(extra)


def _tidy(out: dict[str, Any]) -> dict[str, Any]:
    """Drop value arrays that hold only nulls (every item was extension-only)."""
    for key in [k for k, v in out.items() if isinstance(v, list) and not k.startswith("_")]:
        if all(v is None for v in out[key]):
            del out[key]
    return out


def from_xml(data: bytes | str, *, model: TypeModel | None = None,
             decimal: Callable[[str], Any] = json_number, max_depth: int | None = None,
             max_elements: int | None = None) -> dict[str, Any]:
    """The JSON form of a FHIR XML resource.

    ``decimal`` turns a decimal's lexical form into the JSON value: :func:`json_number` (what
    parsing the same JSON with orjson gives) by default, or ``Decimal`` to keep the lexical form.
    Raises :class:`FhirXmlError` for anything that is not FHIR XML of a known resource type, and
    :class:`XmlTooLarge` past ``max_depth`` nested elements or ``max_elements`` elements.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if isinstance(data, str):
        raw = re.sub(rb"^\s*<\?xml[^>]*\?>", b"", raw)  # the text is already decoded
    reader = _Reader(model or core_model(), decimal)
    return _walk_tidy(reader.resource(_tree(raw, max_depth, max_elements)))


def _walk_tidy(value: Any) -> Any:
    if isinstance(value, dict):
        for item in value.values():
            _walk_tidy(item)
        return _tidy(value)
    if isinstance(value, list):
        for item in value:
            _walk_tidy(item)
    return value


# --------------------------------------------------------------------------- JSON -> XML


def _text(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, FhirDecimal):
        return value.text
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if _INVALID_CHARS.search(value):
            raise FhirXmlError(f"{where} holds a character XML cannot carry")
        return value
    raise FhirXmlError(f"{where} must be a primitive value, not {type(value).__name__}")


def _attr(name: str, value: Any, where: str) -> str:
    return f' {name}="{_text(value, where).translate(_ATTR_ESCAPES)}"'


def _check_div(div: Any, where: str) -> str:
    if not isinstance(div, str):
        raise FhirXmlError(f"{where} must be an XHTML string")
    parser = pyexpat.ParserCreate(namespace_separator=" ")
    parser.StartDoctypeDeclHandler = _refuse
    names: list[str] = []
    parser.StartElementHandler = lambda name, attrs: names.append(name)
    try:
        parser.Parse(div.encode("utf-8"), True)
    except pyexpat.ExpatError as error:
        raise FhirXmlError(f"{where} is not well-formed XHTML: {error}") from None
    if names[0] == "div":  # no namespace declared: JSON authors often leave it out
        return re.sub(r"^\s*<div", f'<div xmlns="{XHTML_NS}"', div, count=1)
    if names[0] != f"{XHTML_NS} div":
        raise FhirXmlError(f"{where} must be an XHTML <div>")
    return div


class _Writer:
    def __init__(self, model: TypeModel, pretty: bool) -> None:
        self.model = model
        self.pretty = pretty
        self.parts: list[str] = []

    def line(self, depth: int, text: str) -> None:
        self.parts.append(("\n" + "  " * depth if self.pretty and self.parts else "") + text)

    def resource(self, resource: Mapping[str, Any], depth: int, *, top: bool = False) -> None:
        type_name = resource.get("resourceType")
        if not isinstance(type_name, str) or not self.model.definitions.is_resource_type(type_name):
            raise FhirXmlError(f"{type_name!r} is not a FHIR resource type")
        ns = f' xmlns="{FHIR_NS}"' if top else ""
        self.element(type_name, resource, self.model.root(type_name), depth, ns, resource_level=True)

    def element(self, name: str, obj: Mapping[str, Any], where: Node, depth: int, extra_attrs: str = "",
                *, resource_level: bool = False) -> None:
        if not isinstance(obj, Mapping):
            raise FhirXmlError(f"{where.path} must be a JSON object")
        defs = self.model.children(where)
        known = {"resourceType"} if resource_level else set()
        attrs = extra_attrs
        body: list[tuple[Element, Any, Any]] = []
        for key, definition in defs.items():
            value, extra = obj.get(key), obj.get("_" + key)
            if value is None and extra is None:
                continue
            known.add(key)
            known.add("_" + key)
            if _is_attr(definition):
                attrs += _attr(key, value, definition.path)
            else:
                body.append((definition, value, extra))
        unknown = [k for k in obj if k not in known]
        if unknown:
            raise FhirXmlError(f"unknown element {where.path}.{unknown[0]}")
        if not body:
            self.line(depth, f"<{name}{attrs}/>")
            return
        self.line(depth, f"<{name}{attrs}>")
        for definition, value, extra in body:
            self.child(definition, value, extra, depth + 1)
        self.line(depth, f"</{name}>")

    def child(self, definition: Element, value: Any, extra: Any, depth: int) -> None:
        name = definition.json_name
        if definition.type == "xhtml":
            self.line(depth, _check_div(value, definition.path))
            return
        if definition.is_array:
            values = value if value is not None else [None] * len(extra or [])
            extras = extra if extra is not None else [None] * len(values)
            if not isinstance(values, list) or not isinstance(extras, list) or len(values) != len(extras):
                raise FhirXmlError(f"{definition.path} must be an array (with a matching _{name} array)")
        else:
            values, extras = [value], [extra]
        for item, item_extra in zip(values, extras, strict=True):
            if definition.type == "Resource":
                self.line(depth, f"<{name}>")
                self.resource(item, depth + 1)
                self.line(depth, f"</{name}>")
            elif definition.child_node is not None:
                self.element(name, item, definition.child_node, depth)
            else:
                self.primitive(name, item, item_extra, definition, depth)

    def primitive(self, name: str, value: Any, extra: Any, definition: Element, depth: int) -> None:
        if isinstance(value, dict | list):
            raise FhirXmlError(f"{definition.path} is a primitive, not a JSON {type(value).__name__}")
        attrs = ""
        extensions: list[Any] = []
        if extra is not None:
            if not isinstance(extra, Mapping) or set(extra) - {"id", "extension"}:
                raise FhirXmlError(f"_{name} of {definition.path} may only hold id and extension")
            if "id" in extra:
                attrs += _attr("id", extra["id"], definition.path)
            extensions = list(extra.get("extension") or [])
        if value is not None:
            attrs += _attr("value", value, definition.path)
        if not extensions:
            self.line(depth, f"<{name}{attrs}/>")
            return
        self.line(depth, f"<{name}{attrs}>")
        extension = self.model.root("Extension")
        for item in extensions:
            self.element("extension", item, extension, depth + 1)
        self.line(depth, f"</{name}>")


def to_xml(resource: Mapping[str, Any], *, model: TypeModel | None = None, pretty: bool = False) -> str:
    """The FHIR XML form of a JSON resource (no XML declaration; encode it as UTF-8).

    Raises :class:`FhirXmlError` for content the definitions do not describe (an unknown element,
    an object where a primitive belongs), since XML has no way to carry it.
    """
    writer = _Writer(model or core_model(), pretty)
    writer.resource(resource, 0, top=True)
    return "".join(writer.parts) + ("\n" if pretty else "")

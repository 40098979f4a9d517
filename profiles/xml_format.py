"""FHIR XML to the JSON form the validator works on, for conformance resources authored in XML.

Implementation guides and testers' folders often hold StructureDefinitions in XML
(http://hl7.org/fhir/R4/xml.html). The two forms carry the same content, but XML does not say
which elements repeat or what JSON kind a primitive has; the type model does
(:class:`~profiles.model.TypeModel`), so conversion follows the definitions:

- an element whose max cardinality is above 1 becomes an array, even with one occurrence;
- a primitive's ``value`` attribute becomes a JSON string, number or boolean by its type, and its
  ``id``/extensions go to the ``_name`` sibling (http://hl7.org/fhir/R4/json.html#primitive);
- ``Resource``-typed elements (``contained``, ``entry.resource``) wrap the resource element;
- the narrative ``<div>`` is kept as its XHTML text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from profiles.definitions import Definitions
from profiles.model import Element, Node, TypeModel, core_model

FHIR_NS = "{http://hl7.org/fhir}"
XHTML_NS = "{http://www.w3.org/1999/xhtml}"
NUMBER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt", "decimal", "integer64"})


class XmlFormatError(ValueError):
    """Raised when a document is not FHIR XML this converter understands."""


def _model(definitions: Definitions) -> TypeModel:
    model = core_model()
    return model if model.definitions is definitions else TypeModel(definitions)


def parse_xml(data: bytes, definitions: Definitions) -> dict[str, Any]:
    """The JSON form of a FHIR XML resource."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        raise XmlFormatError(f"not well-formed XML: {error}") from error
    return _resource(root, _model(definitions))


def _local(tag: str) -> str:
    if not tag.startswith(FHIR_NS):
        raise XmlFormatError(f"element {tag} is not in the FHIR namespace")
    return tag[len(FHIR_NS):]


def _resource(element: ET.Element, model: TypeModel) -> dict[str, Any]:
    type_name = _local(element.tag)
    if not model.definitions.is_resource_type(type_name):
        raise XmlFormatError(f"{type_name} is not a FHIR resource type")
    out: dict[str, Any] = {"resourceType": type_name}
    _children(element, model.root(type_name), model, out)
    return out


def _children(element: ET.Element, node: Node, model: TypeModel, out: dict[str, Any]) -> None:
    children = model.children(node)
    for child in element:
        if child.tag == XHTML_NS + "div":
            child.tail = None
            out["div"] = ET.tostring(child, encoding="unicode", default_namespace=XHTML_NS[1:-1])
            continue
        if not isinstance(child.tag, str):
            continue  # comments and processing instructions
        name = _local(child.tag)
        definition = children.get(name)
        if definition is None:
            raise XmlFormatError(f"unknown element {name} in {node.path}")
        _add(out, name, _value(child, definition, model), definition.is_array)


def _add(out: dict[str, Any], name: str, value: tuple[Any, Any], array: bool) -> None:
    plain, extra = value
    if array:
        values = out.setdefault(name, [])
        extras = out.get("_" + name)
        values.append(plain)
        if extra is not None or extras is not None:
            extras = out.setdefault("_" + name, [None] * (len(values) - 1))
            extras.append(extra)
        if all(v is None for v in values) and name in out:
            del out[name]
        return
    if plain is not None:
        out[name] = plain
    if extra is not None:
        out["_" + name] = extra


def _value(element: ET.Element, definition: Element, model: TypeModel) -> tuple[Any, Any]:
    """(JSON value, ``_name`` object or None) of one XML element."""
    if definition.type == "Resource":
        inner = [c for c in element if isinstance(c.tag, str)]
        if len(inner) != 1:
            raise XmlFormatError(f"{definition.path} must hold exactly one resource")
        return _resource(inner[0], model), None
    if definition.child_node is None:
        raw = element.get("value")
        extra: dict[str, Any] = {}
        if element.get("id") is not None:
            extra["id"] = element.get("id")
        extensions = [c for c in element if isinstance(c.tag, str) and c.tag == FHIR_NS + "extension"]
        if extensions:
            extension_definition = model.child(model.root("Element"), "extension")
            assert extension_definition is not None
            extra["extension"] = [_value(e, extension_definition, model)[0] for e in extensions]
        return (_primitive(raw, definition.type) if raw is not None else None), (extra or None)
    out: dict[str, Any] = {}
    if element.get("id") is not None:
        out["id"] = element.get("id")
    if element.get("url") is not None:
        out["url"] = element.get("url")
    _children(element, definition.child_node, model, out)
    return out, None


def _primitive(raw: str, type_name: str) -> Any:
    if type_name == "boolean":
        return raw == "true"
    if type_name in NUMBER_TYPES:
        try:
            return int(raw)
        except ValueError:
            try:
                return float(raw)
            except ValueError:
                return raw
    return raw

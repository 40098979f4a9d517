"""FHIR XML ⇄ JSON (http://hl7.org/fhir/R4/xml.html, http://hl7.org/fhir/R4/json.html#primitive).

Every official R4 JSON example goes JSON → XML → JSON unchanged (decimals in their lexical form),
and hand-written XML pins down the rules the examples alone do not show.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from profiles.fhirxml import FhirXmlError, from_xml, to_xml
from tests.paths import SAMPLES

EXAMPLES = SAMPLES / "r4-examples"
NS = 'xmlns="http://hl7.org/fhir"'


def lexical(value: Any) -> Any:
    """Numbers as their written form, so 1.50 and 1.5 differ."""
    if isinstance(value, dict):
        return {k: lexical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lexical(v) for v in value]
    if isinstance(value, Decimal):
        return ("number", format(value, "f"))
    if isinstance(value, int) and not isinstance(value, bool):
        return ("number", str(value))
    return value


@pytest.mark.slow
@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the shared R4 examples are not beside the repository")
@pytest.mark.parametrize("pretty", [False, True])
def test_every_r4_example_round_trips(pretty: bool) -> None:
    files = sorted(EXAMPLES.glob("*.json"))
    assert len(files) > 700
    differ = []
    for path in files:
        original = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
        back = from_xml(to_xml(original, pretty=pretty).encode("utf-8"), decimal=Decimal)
        if lexical(back) != lexical(original):
            differ.append(path.name)
    assert differ == []


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        (f'<Patient {NS}><id value="p1"/><active value="true"/></Patient>',
         {"resourceType": "Patient", "id": "p1", "active": True}),
        (f'<Patient {NS}><name id="n1"><given value="A"/><given id="g" /><given value="C"/></name></Patient>',
         {"resourceType": "Patient", "name": [{"id": "n1", "given": ["A", None, "C"],
                                               "_given": [None, {"id": "g"}, None]}]}),
        (f'<Patient {NS}><birthDate><extension url="http://e"><valueCode value="UNK"/></extension></birthDate>'
         "</Patient>",
         {"resourceType": "Patient", "_birthDate": {"extension": [{"url": "http://e", "valueCode": "UNK"}]}}),
        (f'<Patient {NS}><name><given><extension url="http://e"><valueBoolean value="false"/></extension>'
         "</given></name></Patient>",
         {"resourceType": "Patient", "name": [{"_given": [{"extension": [{"url": "http://e",
                                                                          "valueBoolean": False}]}]}]}),
        (f'<Observation {NS}><!-- a comment --><status value="final"/><code><text value="x"/></code>'
         '<valueQuantity><value value="1.50"/></valueQuantity><component><code><text value="y"/></code>'
         '<valueInteger value="-3"/></component></Observation>',
         {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
          "valueQuantity": {"value": 1.5}, "component": [{"code": {"text": "y"}, "valueInteger": -3}]}),
        (f'<Bundle {NS}><type value="collection"/><entry><resource><Patient><id value="a"/></Patient></resource>'
         "</entry></Bundle>",
         {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient",
                                                                                   "id": "a"}}]}),
        (f'<Parameters {NS}><parameter><name value="r"/><resource><Patient/></resource></parameter>'
         '<parameter><name value="p"/><part><name value="q"/><valueString value="line1&#10;line2"/></part>'
         "</parameter></Parameters>",
         {"resourceType": "Parameters", "parameter": [
             {"name": "r", "resource": {"resourceType": "Patient"}},
             {"name": "p", "part": [{"name": "q", "valueString": "line1\nline2"}]}]}),
        (f'<Patient {NS} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="x y">'
         '<text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml">a <b>b</b>&amp;c</div></text>'
         "</Patient>",
         {"resourceType": "Patient", "text": {
             "status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">a <b>b</b>&amp;c</div>'}}),
        (f'<?xml version="1.0" encoding="UTF-8"?>\n<Patient {NS}><contained><Organization><id value="o"/>'
         '</Organization></contained><managingOrganization><reference value="#o"/></managingOrganization></Patient>',
         {"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o"}],
          "managingOrganization": {"reference": "#o"}}),
    ],
)
def test_xml_to_json(xml: str, expected: dict) -> None:
    assert from_xml(xml.encode("utf-8")) == expected
    assert from_xml(xml) == expected
    assert from_xml(to_xml(expected)) == expected


def test_json_to_xml_follows_definition_order_and_attributes() -> None:
    resource = {"gender": "male", "resourceType": "Patient", "name": [{"given": ["San"], "family": "Zhang",
                                                                         "id": "n"}],
                "extension": [{"valueString": "v", "url": "http://e"}], "id": "p"}
    assert to_xml(resource) == (
        f'<Patient {NS}><id value="p"/><extension url="http://e"><valueString value="v"/></extension>'
        '<name id="n"><family value="Zhang"/><given value="San"/></name><gender value="male"/></Patient>')


def test_decimals_keep_their_lexical_form() -> None:
    resource = {"resourceType": "Observation", "status": "final", "code": {"text": "t"},
                "valueQuantity": {"value": Decimal("1.500")}}
    xml = to_xml(resource)
    assert '<value value="1.500"/>' in xml
    assert from_xml(xml, decimal=Decimal)["valueQuantity"]["value"].as_tuple() == Decimal("1.500").as_tuple()


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<Patient>", "not well-formed"),
        ('<Patient xmlns="http://example.org"/>', "not in the FHIR namespace"),
        (f'<NotAType {NS}/>', "not a FHIR resource type"),
        (f'<Patient {NS}><nope value="1"/></Patient>', "unknown element nope"),
        (f'<Patient {NS}><name><family value="x"/><id value="y"/></name></Patient>', "unknown element id"),
        (f'<Patient {NS} bogus="1"/>', "unknown attribute bogus"),
        (f'<Patient {NS}>text</Patient>', "unexpected text"),
        (f'<Patient {NS}><active value="true"><coding/></active></Patient>', "can only hold extensions"),
        ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
         f'<Patient {NS}><id value="&lol2;"/></Patient>', "DOCTYPE"),
        ('<!DOCTYPE Patient SYSTEM "file:///etc/passwd"><Patient xmlns="http://hl7.org/fhir"/>', "DOCTYPE"),
    ],
)
def test_bad_xml_is_refused(xml: str, message: str) -> None:
    with pytest.raises(FhirXmlError, match=message):
        from_xml(xml.encode("utf-8"))


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        ({"resourceType": "Nope"}, "not a FHIR resource type"),
        ({"resourceType": "Patient", "unknown": 1}, "unknown element Patient.unknown"),
        ({"resourceType": "Patient", "active": {"value": True}}, "is a primitive"),
        ({"resourceType": "Patient", "name": [{"given": ["a"], "_given": [None, None]}]}, "matching _given"),
        ({"resourceType": "Patient", "text": {"status": "generated", "div": "<div><p></div>"}}, "not well-formed"),
        ({"resourceType": "Patient", "text": {"status": "generated", "div": "<p>x</p>"}}, "XHTML <div>"),
        ({"resourceType": "Patient", "_active": {"url": "x"}}, "may only hold id and extension"),
        ({"resourceType": "Patient", "id": "a\x01b"}, "character XML cannot carry"),
    ],
)
def test_json_that_xml_cannot_carry_is_refused(resource: dict, message: str) -> None:
    with pytest.raises(FhirXmlError, match=message):
        to_xml(resource)


def test_div_without_namespace_gets_the_xhtml_one() -> None:
    xml = to_xml({"resourceType": "Patient", "text": {"status": "generated", "div": "<div>hi</div>"}})
    assert '<div xmlns="http://www.w3.org/1999/xhtml">hi</div>' in xml

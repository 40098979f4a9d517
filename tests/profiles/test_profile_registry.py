"""The profile registry: core definitions, run-time additions, IG folders (JSON and FHIR XML).

http://hl7.org/fhir/R4/references.html#canonical (url|version), http://hl7.org/fhir/R4/xml.html.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from profiles.registry import ProfileRegistry, canonical_url, read_resource
from profiles.xml_format import XmlFormatError, parse_xml

URL = "http://example.org/fhir/StructureDefinition/named-patient"
PROFILE: dict[str, Any] = {
    "resourceType": "StructureDefinition", "url": URL, "name": "NamedPatient", "status": "draft",
    "kind": "resource", "abstract": False, "type": "Patient", "derivation": "constraint",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
    "differential": {"element": [{"id": "Patient.name", "path": "Patient.name", "min": 1}]},
}
XML_PROFILE = b"""<?xml version="1.0" encoding="UTF-8"?>
<StructureDefinition xmlns="http://hl7.org/fhir">
  <url value="http://example.org/fhir/StructureDefinition/xml-patient"/>
  <name value="XmlPatient"/>
  <status value="draft"/>
  <kind value="resource"/>
  <abstract value="false"/>
  <type value="Patient"/>
  <baseDefinition value="http://hl7.org/fhir/StructureDefinition/Patient"/>
  <derivation value="constraint"/>
  <differential>
    <element id="Patient.identifier">
      <path value="Patient.identifier"/>
      <min value="1"/>
      <fixedIdentifier><use value="usual"/></fixedIdentifier>
    </element>
  </differential>
</StructureDefinition>
"""


@pytest.mark.parametrize(("reference", "url"), [("http://x/vs|1.0", "http://x/vs"), ("http://x/vs", "http://x/vs")])
def test_canonical_url_drops_the_version(reference: str, url: str) -> None:
    assert canonical_url(reference) == url


def test_core_definitions_are_found_by_url_and_by_type() -> None:
    registry = ProfileRegistry()
    assert registry.structure_definition("Patient")["url"] == "http://hl7.org/fhir/StructureDefinition/Patient"
    assert registry.structure_definition("http://hl7.org/fhir/StructureDefinition/vitalsigns") is not None
    assert registry.structure_definition("http://example.org/nothing") is None
    assert registry.snapshot("Patient")[0]["id"] == "Patient"


def test_added_profiles_get_a_generated_snapshot_and_can_be_removed() -> None:
    registry = ProfileRegistry()
    before = registry.generation
    registry.add(PROFILE)
    assert registry.generation == before + 1
    assert registry.get(URL + "|2.0") is PROFILE
    name = {e["id"]: e for e in registry.snapshot(URL) or []}["Patient.name"]
    assert name["min"] == 1
    registry.remove(URL)
    assert registry.get(URL) is None and registry.snapshot(URL) is None
    assert registry.generation == before + 2


def test_changing_a_base_profile_changes_the_derived_snapshot() -> None:
    registry = ProfileRegistry()
    derived = {**PROFILE, "url": URL + "-derived", "baseDefinition": URL,
               "differential": {"element": [{"id": "Patient.gender", "path": "Patient.gender", "min": 1}]}}
    registry.add_all([PROFILE, derived])
    assert {e["id"]: e for e in registry.snapshot(URL + "-derived") or []}["Patient.name"]["min"] == 1
    registry.add({**PROFILE, "differential": {"element": [{"id": "Patient.name", "path": "Patient.name", "min": 0}]}})
    assert {e["id"]: e for e in registry.snapshot(URL + "-derived") or []}["Patient.name"]["min"] == 0


def test_bundles_add_their_entries_and_non_canonical_resources_are_ignored() -> None:
    registry = ProfileRegistry()
    registry.add({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": PROFILE}]})
    registry.add({"resourceType": "Patient", "id": "x"})
    assert [r["url"] for r in registry.added()] == [URL]


def test_a_broken_profile_says_why() -> None:
    registry = ProfileRegistry()
    registry.add({**PROFILE, "baseDefinition": "http://example.org/missing"})
    assert registry.snapshot(URL) is None
    assert "missing" in (registry.snapshot_problem(URL) or "")


def test_load_ig_reads_json_and_xml_and_skips_other_files(tmp_path: Path) -> None:
    (tmp_path / "profile.json").write_bytes(b"\xef\xbb\xbf" + orjson.dumps(PROFILE))
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "profile.xml").write_bytes(XML_PROFILE)
    (tmp_path / "package.json").write_text('{"name": "example.ig"}')
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "example.json").write_bytes(orjson.dumps({"resourceType": "Patient"}))
    registry = ProfileRegistry()
    assert sorted(registry.load_ig(tmp_path)) == [URL, "http://example.org/fhir/StructureDefinition/xml-patient"]
    identifier = {e["id"]: e for e in registry.snapshot("http://example.org/fhir/StructureDefinition/xml-patient")
                  or []}["Patient.identifier"]
    assert (identifier["min"], identifier["fixedIdentifier"]) == (1, {"use": "usual"})


def test_xml_conversion_follows_the_definitions(tmp_path: Path) -> None:
    xml = (b'<Patient xmlns="http://hl7.org/fhir"><id value="p"/><active value="true"/>'
           b'<name><given value="A"/><given value="B"><extension url="http://x"><valueString value="v"/>'
           b'</extension></given></name><multipleBirthInteger value="2"/>'
           b'<text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>hi</p></div></text>'
           b'<contained><Organization><id value="o"/></Organization></contained></Patient>')
    path = tmp_path / "p.xml"
    path.write_bytes(xml)
    patient = read_resource(path)
    assert patient["active"] is True and patient["multipleBirthInteger"] == 2
    assert patient["name"] == [{"given": ["A", "B"], "_given": [None, {"extension": [
        {"url": "http://x", "valueString": "v"}]}]}]
    assert patient["contained"] == [{"resourceType": "Organization", "id": "o"}]
    assert patient["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')


@pytest.mark.parametrize("xml", [b"<Patient", b'<Nope xmlns="http://hl7.org/fhir"/>',
                                 b'<Patient xmlns="http://hl7.org/fhir"><nope value="1"/></Patient>',
                                 b'<Patient xmlns="urn:other"/>'])
def test_xml_that_is_not_fhir_is_refused(xml: bytes) -> None:
    with pytest.raises(XmlFormatError):
        parse_xml(xml, ProfileRegistry().definitions)

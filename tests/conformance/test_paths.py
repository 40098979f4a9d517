"""``path`` evaluation: the XPath subset FHIR TestScripts use and JSONPath, on the JSON form
(http://hl7.org/fhir/R4/testscript-definitions.html#TestScript.setup.action.assert.path)."""

from __future__ import annotations

import pytest

from conformance.runner.paths import PathError, evaluate

PATIENT = {
    "resourceType": "Patient", "id": "example", "active": True,
    "identifier": [{"system": "urn:a", "value": "1"}, {"system": "urn:b", "value": "2"}],
    "name": [{"family": "Chalmers", "given": ["Peter", "James"], "_given": [None, {"id": "g2"}]},
             {"family": "Windsor"}],
    "contained": [{"resourceType": "Organization", "id": "o1", "name": "Org"}],
}
BUNDLE = {"resourceType": "Bundle", "type": "searchset", "total": 2,
          "entry": [{"resource": {"resourceType": "Patient", "id": "a"}},
                    {"resource": {"resourceType": "Patient", "id": "b"}}]}


@pytest.mark.parametrize(
    ("path", "root", "expected"),
    [
        ("fhir:Patient/fhir:name/fhir:family/@value", PATIENT, ["Chalmers", "Windsor"]),
        ("Patient/id", PATIENT, ["example"]),
        ("/Patient/id/@value", PATIENT, ["example"]),
        ("fhir:Patient/fhir:active/@value", PATIENT, [True]),
        ("fhir:Patient/fhir:name[2]/fhir:family/@value", PATIENT, ["Windsor"]),
        ("fhir:Patient/fhir:name/fhir:given[2]/@id", PATIENT, ["g2"]),
        ("fhir:Patient/fhir:identifier[fhir:system/@value='urn:b']/fhir:value/@value", PATIENT, ["2"]),
        ("fhir:Patient/fhir:contained/fhir:Organization/fhir:name/@value", PATIENT, ["Org"]),
        ("//fhir:family/@value", PATIENT, ["Chalmers", "Windsor"]),
        ("count(fhir:Patient/fhir:name)", PATIENT, [2]),
        ("fhir:Bundle/fhir:entry/fhir:resource/fhir:Patient/fhir:id/@value", BUNDLE, ["a", "b"]),
        ("fhir:Bundle/fhir:type/@value", BUNDLE, ["searchset"]),
        ("fhir:Patient/fhir:birthDate/@value", PATIENT, []),
        ("fhir:Observation/fhir:id/@value", PATIENT, []),
        ("$.name[0].family", PATIENT, ["Chalmers"]),
        ("$.name[*].family", PATIENT, ["Chalmers", "Windsor"]),
        ("$.identifier[?(@.system=='urn:a')].value", PATIENT, ["1"]),
        ("$..family", PATIENT, ["Chalmers", "Windsor"]),
        ("$['id']", PATIENT, ["example"]),
        ("$.entry[1].resource.id", BUNDLE, ["b"]),
        ("$.nothing.here", PATIENT, []),
    ],
)
def test_paths(path: str, root: dict, expected: list) -> None:
    assert evaluate(path, root) == expected


@pytest.mark.parametrize("path", ["", "fhir:Patient/name(", "$.name[?(@.x>1)]", "$name"])
def test_unreadable_paths_raise(path: str) -> None:
    with pytest.raises(PathError):
        evaluate(path, PATIENT)

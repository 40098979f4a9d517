"""``$validate`` on both stores (http://hl7.org/fhir/R4/resource-operation-validate.html)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ({"resourceType": "Patient", "gender": "male"}, True),
        ({"resourceType": "Patient", "birthDate": "1990-02-30"}, False),
        ({"resourceType": "Patient", "nickname": "x"}, False),
        ({"resourceType": "Observation", "code": {"text": "x"}}, False),  # status is required
    ],
)
async def test_type_level_validate(client: httpx.AsyncClient, body: dict, ok: bool) -> None:
    r = await client.post(f"/{body['resourceType']}/$validate", json=body)
    assert r.status_code == 200
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    errors = [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]
    assert (not errors) == ok, outcome
    if not ok:
        assert all(i.get("expression") for i in errors)


async def test_validate_with_parameters_and_instance(client: httpx.AsyncClient) -> None:
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": {"resourceType": "Patient", "active": "yes"}},
        {"name": "mode", "valueCode": "create"},
    ]}
    r = await client.post("/Patient/$validate", json=params)
    assert r.status_code == 200
    assert any(i["severity"] == "error" for i in r.json()["issue"])
    created = (await client.post("/Patient", json={"resourceType": "Patient"})).json()
    r = await client.post(f"/Patient/{created['id']}/$validate")
    assert r.status_code == 200
    assert not [i for i in r.json()["issue"] if i["severity"] in ("error", "fatal")]


async def test_validate_errors(client: httpx.AsyncClient) -> None:
    assert (await client.post("/Patient/$validate", json={"resourceType": "Patient"},
                              params={"mode": "sideways"})).status_code == 400
    assert (await client.post("/Patient/does-not-exist/$validate")).status_code == 404
    assert (await client.post("/Patient/$nonexistent", json={"resourceType": "Patient"})).status_code == 404
    assert (await client.post("/$validate", json={"resourceType": "Patient"})).status_code == 400
    mismatch = await client.post("/Patient/$validate", json={"resourceType": "Observation", "status": "final",
                                                              "code": {"text": "x"}})
    assert any(i["severity"] == "error" for i in mismatch.json()["issue"])


async def test_capability_statement_lists_validate(client: httpx.AsyncClient) -> None:
    cs = (await client.get("/metadata")).json()
    patient = next(r for r in cs["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"} in \
        patient["operation"]


def _errors(r: httpx.Response) -> list[dict]:
    assert r.status_code == 200, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    return [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]


MEMBER_MATCH = {"resourceType": "Parameters", "parameter": [
    {"name": "MemberPatient", "resource": {"resourceType": "Patient", "gender": "female"}},
    {"name": "Note", "valueString": "a Parameters resource of another operation"},
]}


@pytest.mark.parametrize("body", [
    {"resourceType": "Parameters"},
    MEMBER_MATCH,
    {"resourceType": "Parameters", "parameter": [{"name": "resource", "valueString": "x"},
                                                 {"name": "other", "valueInteger": 1}]},
])
async def test_a_parameters_resource_is_validated_as_itself(client: httpx.AsyncClient, body: dict) -> None:
    """A Parameters body is $validate's input only when every parameter is one of resource/mode/profile."""
    assert _errors(await client.post("/Parameters/$validate", json=body)) == []


async def test_a_parameters_resource_is_checked_when_validated_as_itself(client: httpx.AsyncClient) -> None:
    nameless = {"resourceType": "Parameters", "parameter": [{"valueString": "no name"}]}
    errors = _errors(await client.post("/Parameters/$validate", json=nameless))
    assert any("Parameters.parameter[0]" in (i.get("expression") or [""])[0] for i in errors), errors
    bad = {"resourceType": "Parameters", "parameter": [{"name": "MemberPatient",
                                                        "resource": {"resourceType": "Patient", "gender": "x"}}]}
    assert _errors(await client.post("/Parameters/$validate", json=bad))
    empty = _errors(await client.post("/Parameters/$validate", json={"resourceType": "Parameters", "parameter": []}))
    assert [i["expression"] for i in empty] == [["Parameters.parameter"]]  # JSON FHIR has no empty arrays


async def test_the_wrapped_form_still_carries_a_parameters_resource(client: httpx.AsyncClient) -> None:
    wrapped = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": MEMBER_MATCH}, {"name": "mode", "valueCode": "create"}]}
    assert _errors(await client.post("/Parameters/$validate", json=wrapped)) == []
    invalid = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": {
        "resourceType": "Parameters", "parameter": [{"valueString": "no name"}]}}]}
    assert _errors(await client.post("/Parameters/$validate", json=invalid))
    sideways = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": MEMBER_MATCH}, {"name": "mode", "valueCode": "sideways"}]}
    assert (await client.post("/Parameters/$validate", json=sideways)).status_code == 400


def _with_extension(url: str, *, modifier: bool = False) -> dict:
    key = "modifierExtension" if modifier else "extension"
    return {"resourceType": "Patient", key: [{"url": url, "valueString": "x"}]}


async def test_validate_errs_on_extensions_it_cannot_resolve(client: httpx.AsyncClient) -> None:
    """$validate answers as the HL7 reference validator; an HL7 or example-domain url is only a warning."""
    unknown = await client.post("/Patient/$validate", json=_with_extension("http://acme.test/fhir/ext/colour"))
    assert [i["expression"] for i in _errors(unknown)] == [["Patient.extension[0]"]]
    for url in ("http://hl7.org/fhir/StructureDefinition/not-in-core", "http://example.org/ext/colour"):
        r = await client.post("/Patient/$validate", json=_with_extension(url))
        assert _errors(r) == [] and any(i.get("expression") == ["Patient.extension[0]"] for i in r.json()["issue"])
    modifier = _with_extension("http://example.org/ext/colour", modifier=True)
    assert _errors(await client.post("/Patient/$validate", json=modifier))


async def test_a_write_ignores_extensions_it_cannot_resolve(client: httpx.AsyncClient) -> None:
    """Writes stay lenient: FHIR lets a system ignore an extension it does not understand."""
    created = await client.post("/Patient", json=_with_extension("http://acme.test/fhir/ext/colour"))
    assert created.status_code == 201, created.text
    claimed = {**_with_extension("http://acme.test/fhir/ext/colour"),
               "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/Patient"]}}
    assert (await client.post("/Patient", json=claimed)).status_code == 201
    modifier = await client.post("/Patient", json=_with_extension("http://acme.test/fhir/ext/colour", modifier=True))
    assert modifier.status_code == 201  # no profile engine on a plain write; $validate reports it (above)


def _narrative(div_body: str, **extra: object) -> dict:
    div = f'<div xmlns="http://www.w3.org/1999/xhtml">{div_body}</div>'
    return {"resourceType": "List", "status": "current", "mode": "snapshot",
            "text": {"status": "generated", "div": div}, **extra}


async def test_narrative_links_must_reach_an_anchor(client: httpx.AsyncClient) -> None:
    """An internal link (<a href="#x">) of a narrative goes to an id or name of it or of a contained narrative."""
    dangling = _narrative('<p><a href="#nowhere">item</a></p>')
    assert [i["expression"] for i in _errors(await client.post("/List/$validate", json=dangling))] == [
        ["List.text.div"]]
    local = _narrative('<p><a name="top">x</a><a href="#top">back</a><span id="s"/><a href="#s">s</a></p>')
    assert _errors(await client.post("/List/$validate", json=local)) == []
    device = {"resourceType": "Device", "id": "d1", "text": {"status": "generated", "div":
              '<div xmlns="http://www.w3.org/1999/xhtml"><p id="dev">a device</p></div>'}}
    into_contained = _narrative('<p><a href="#dev">the device</a></p>', contained=[device],
                                entry=[{"item": {"reference": "#d1"}}])
    assert _errors(await client.post("/List/$validate", json=into_contained)) == []
    external = _narrative('<p><a href="http://example.org/#x">elsewhere</a><a href="#">top</a></p>')
    assert _errors(await client.post("/List/$validate", json=external)) == []


async def test_an_extension_url_must_be_absolute_outside_a_complex_extension(client: httpx.AsyncClient) -> None:
    relative = {"resourceType": "Patient", "extension": [{"url": "colour", "valueString": "red"}]}
    assert [i["expression"] for i in _errors(await client.post("/Patient/$validate", json=relative))] == [
        ["Patient.extension[0].url"]]
    complex_ = {"resourceType": "Patient", "extension": [{"url": "http://example.org/ext/pair", "extension": [
        {"url": "left", "valueString": "a"}, {"url": "right", "valueString": "b"}]}]}
    assert _errors(await client.post("/Patient/$validate", json=complex_)) == []


VITAL = {"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/p"},
         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                   "code": "vital-signs"}]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}, "effectiveDateTime": "2024-05-01",
         "valueQuantity": {"value": 60, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"}}


async def test_a_vital_sign_code_requires_its_profile(client: httpx.AsyncClient) -> None:
    """http://hl7.org/fhir/R4/observation-vitalsigns.html: a heart rate by LOINC 8867-4 SHALL conform to heartrate."""
    assert _errors(await client.post("/Observation/$validate", json=VITAL)) == []
    in_kg = {**VITAL, "valueQuantity": {"value": 60, "unit": "kg", "system": "http://unitsofmeasure.org",
                                        "code": "kg"}}
    errors = _errors(await client.post("/Observation/$validate", json=in_kg))
    assert [i["expression"] for i in errors] == [["Observation.valueQuantity.code"]]
    assert "heartrate" in errors[0]["diagnostics"]
    uncategorised = {k: v for k, v in VITAL.items() if k != "category"}
    assert _errors(await client.post("/Observation/$validate", json=uncategorised))
    other_code = {**in_kg, "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}}
    assert _errors(await client.post("/Observation/$validate", json=other_code)) == []  # not a vital sign
    created = await client.post("/Observation", json=in_kg)  # a write checks what is claimed, not what is implied
    assert created.status_code == 201, created.text


async def test_an_implementation_guide_s_global_profiles_apply(client: httpx.AsyncClient) -> None:
    """ImplementationGuide.global: every resource of the type must conform to the profile, claimed or not."""
    url = "http://example.org/fhir/StructureDefinition/basic-with-subject"
    profile = {"resourceType": "StructureDefinition", "id": "basic-with-subject", "url": url, "name": "BasicSubject",
               "status": "active", "kind": "resource", "abstract": False, "type": "Basic",
               "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Basic", "derivation": "constraint",
               "differential": {"element": [{"id": "Basic.subject", "path": "Basic.subject", "min": 1}]}}
    guide = {"resourceType": "ImplementationGuide", "id": "global-basic", "url": "http://example.org/fhir/ig/g",
             "name": "GlobalBasic", "status": "active", "packageId": "example.global", "fhirVersion": ["4.0.1"],
             "global": [{"type": "Basic", "profile": url}]}
    basic = {"resourceType": "Basic", "code": {"text": "thing"}}
    assert (await client.put("/StructureDefinition/basic-with-subject", json=profile)).status_code in (200, 201)
    assert _errors(await client.post("/Basic/$validate", json=basic)) == []  # no guide yet: only the core rules
    assert (await client.put("/ImplementationGuide/global-basic", json=guide)).status_code in (200, 201)
    try:
        errors = _errors(await client.post("/Basic/$validate", json=basic))
        assert [i["expression"] for i in errors] == [["Basic.subject"]]
        assert _errors(await client.post("/Basic/$validate", json={**basic, "subject": {"display": "x"}})) == []
    finally:
        assert (await client.delete("/ImplementationGuide/global-basic")).status_code in (200, 204)
    assert _errors(await client.post("/Basic/$validate", json=basic)) == []  # withdrawn with the guide


def _bp_component(loinc: str, value: int) -> dict:
    return {"code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
            "valueQuantity": {"value": value, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}


async def test_slices_told_apart_by_a_value_fixed_in_a_nested_slice(client: httpx.AsyncClient) -> None:
    """The R4 bp profile discriminates components by code.coding.code, which only its nested coding slices fix."""
    bp = {**{k: v for k, v in VITAL.items() if k != "valueQuantity"},
          "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
          "component": [_bp_component("8480-6", 120), _bp_component("8462-4", 80)]}
    assert _errors(await client.post("/Observation/$validate", json=bp)) == []
    two_systolic = {**bp, "component": [_bp_component("8480-6", 120), _bp_component("8480-6", 80)]}
    errors = _errors(await client.post("/Observation/$validate", json=two_systolic))
    assert any("SystolicBP" in i["diagnostics"] for i in errors) and any("DiastolicBP" in i["diagnostics"]
                                                                      for i in errors), errors


MARITAL = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"


async def test_a_code_its_code_system_does_not_define_is_an_error(client: httpx.AsyncClient) -> None:
    """Whatever the binding (maritalStatus is extensible): a code system held in full settles it, as in HAPI."""
    def patient(code: str) -> dict:
        return {"resourceType": "Patient", "maritalStatus": {"coding": [{"system": MARITAL, "code": code}]}}

    assert _errors(await client.post("/Patient/$validate", json=patient("M"))) == []
    errors = _errors(await client.post("/Patient/$validate", json=patient("ZZZ")))
    assert [i["expression"] for i in errors] == [["Patient.maritalStatus.coding[0]"]]
    other = {"resourceType": "Patient", "maritalStatus": {"coding": [{"system": "http://acme.test/cs", "code": "Q"}]}}
    assert _errors(await client.post("/Patient/$validate", json=other)) == []  # a system not held cannot tell
    assert (await client.post("/Patient", json=patient("ZZZ"))).status_code == 201  # writes stay lenient


async def test_code_systems_written_through_the_api_settle_codes_when_complete(client: httpx.AsyncClient) -> None:
    def code_system(id_: str, content: str) -> dict:
        return {"resourceType": "CodeSystem", "id": id_, "url": f"http://example.org/fhir/CodeSystem/{id_}",
                "status": "active", "content": content, "concept": [{"code": "a"}]}

    def observation(id_: str, code: str) -> dict:
        return {"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": f"http://example.org/fhir/CodeSystem/{id_}", "code": code}]}}

    for id_, content in (("cs-complete", "complete"), ("cs-fragment", "fragment")):
        assert (await client.put(f"/CodeSystem/{id_}", json=code_system(id_, content))).status_code in (200, 201)
        assert _errors(await client.post("/Observation/$validate", json=observation(id_, "a"))) == []
    errors = _errors(await client.post("/Observation/$validate", json=observation("cs-complete", "b")))
    assert [i["expression"] for i in errors] == [["Observation.code.coding[0]"]]
    assert _errors(await client.post("/Observation/$validate", json=observation("cs-fragment", "b"))) == []


@pytest.mark.parametrize(("bundle_type", "search", "ok"), [
    ("collection", None, False), ("document", None, False), ("searchset", {"mode": "match"}, False),
    ("searchset", {"mode": "outcome"}, True), ("transaction", None, True), ("batch-response", None, True),
])
async def test_an_entry_with_a_resource_needs_a_full_url(client: httpx.AsyncClient, bundle_type: str,
                                                         search: dict | None, ok: bool) -> None:
    """R4 Bundle.entry.fullUrl SHALL have a value, except on a POST and for results of operations."""
    if search is not None and search["mode"] == "outcome":
        resource: dict = {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "processing"}]}
    else:
        resource = {"resourceType": "Basic", "id": "b1", "code": {"text": "thing"}}
    entry: dict = {"resource": resource}
    if search is not None:
        entry["search"] = search
    if bundle_type == "transaction":
        entry["request"] = {"method": "POST", "url": "Basic"}
    if bundle_type == "batch-response":
        entry["response"] = {"status": "200"}
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": bundle_type, "entry": [entry]}
    if bundle_type == "document":
        bundle.update(timestamp="2024-05-01T10:00:00Z", identifier={
            "system": "urn:ietf:rfc:3986", "value": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"})
    errors = [i for i in _errors(await client.post("/Bundle/$validate", json=bundle))
              if i.get("expression") == ["Bundle.entry[0]"]]
    assert (errors == []) == ok, errors


async def test_an_extension_s_context_invariants_must_hold(client: httpx.AsyncClient) -> None:
    """StructureDefinition.contextInvariant: evaluated on the element carrying the extension (%extension is it)."""
    change_base = [{"url": "http://hl7.org/fhir/StructureDefinition/list-changeBase",
                    "valueReference": {"reference": "List/base"}}]
    changes = {"resourceType": "List", "status": "current", "mode": "changes", "extension": change_base}
    assert _errors(await client.post("/List/$validate", json=changes)) == []
    snapshot = {**changes, "mode": "snapshot"}  # changeBase: "mode = 'changes'"
    assert [i["expression"] for i in _errors(await client.post("/List/$validate", json=snapshot))] == [
        ["List.extension[0]"]]

    def item(required: bool, min_occurs: int) -> dict:
        url = "http://hl7.org/fhir/StructureDefinition/questionnaire-minOccurs"
        extension = {"url": url, "valueInteger": min_occurs}
        return {"resourceType": "Questionnaire", "status": "draft", "item": [{
            "linkId": "1", "type": "string", "required": required, "extension": [extension]}]}

    # minOccurs: "type!='display' and (required=true or %extension.valueInteger=0)"
    assert _errors(await client.post("/Questionnaire/$validate", json=item(True, 2))) == []
    assert _errors(await client.post("/Questionnaire/$validate", json=item(False, 0))) == []
    assert [i["expression"] for i in _errors(await client.post("/Questionnaire/$validate", json=item(False, 2)))] == [
        ["Questionnaire.item[0].extension[0]"]]


@pytest.mark.parametrize(("reference", "ok"), [
    ({"reference": "Patient/123", "type": "Patient"}, True),
    ({"reference": "Patient/123", "type": "http://hl7.org/fhir/StructureDefinition/Patient"}, True),
    ({"reference": "Patient/123", "type": "Observation"}, False),
    ({"reference": "http://example.org/fhir/Patient/123", "type": "Group"}, False),
    ({"identifier": {"value": "x"}, "type": "Observation"}, True),
])
async def test_reference_type_agrees_with_the_reference(client: httpx.AsyncClient, reference: dict, ok: bool) -> None:
    """R4 Reference.type: with a FHIR URL reference, both SHALL be consistent (here inside a Parameters)."""
    params = {"resourceType": "Parameters", "parameter": [{"name": "subject", "valueReference": reference}]}
    errors = _errors(await client.post("/Parameters/$validate", json=params))
    assert (errors == []) == ok, errors
    if not ok:
        assert [i["expression"] for i in errors] == [["Parameters.parameter[0].valueReference.type"]]


def _profile(id_: str, type_: str, elements: list[dict]) -> dict:
    return {"resourceType": "StructureDefinition", "id": id_, "url": f"http://example.org/fhir/StructureDefinition/{id_}",
            "name": id_.replace("-", ""), "status": "draft", "kind": "resource", "abstract": False, "type": type_,
            "baseDefinition": f"http://hl7.org/fhir/StructureDefinition/{type_}", "derivation": "constraint",
            "differential": {"element": elements}}


async def test_a_slice_of_several_types_each_with_its_profile(client: httpx.AsyncClient) -> None:
    """Bundle.entry sliced by profile, one slice allowing Practitioner(profile A) or PractitionerRole(profile B)."""
    active = [_profile(f"ms-{t.lower()}", t, [{"id": f"{t}.active", "path": f"{t}.active", "min": 1}])
              for t in ("Practitioner", "PractitionerRole")]
    bundle_profile = _profile("ms-bundle", "Bundle", [
        {"id": "Bundle.entry", "path": "Bundle.entry",
         "slicing": {"discriminator": [{"type": "profile", "path": "resource"}], "rules": "open"}},
        {"id": "Bundle.entry:people", "path": "Bundle.entry", "sliceName": "people", "min": 1, "max": "2"},
        {"id": "Bundle.entry:people.resource", "path": "Bundle.entry.resource", "type": [
            {"code": "Practitioner", "profile": [active[0]["url"]]},
            {"code": "PractitionerRole", "profile": [active[1]["url"]]}]}])
    for definition in (*active, bundle_profile):
        assert (await client.put(f"/StructureDefinition/{definition['id']}", json=definition)).status_code in (200, 201)

    def bundle(is_active: bool) -> dict:
        entries = []
        for n, type_ in enumerate(("Practitioner", "PractitionerRole")):
            resource = {"resourceType": type_, "active": True} if is_active else {"resourceType": type_}
            entries.append({"fullUrl": f"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e{n}", "resource": resource})
        return {"resourceType": "Bundle", "type": "collection", "entry": entries}

    params = {"profile": bundle_profile["url"]}
    assert _errors(await client.post("/Bundle/$validate", json=bundle(True), params=params)) == []
    errors = _errors(await client.post("/Bundle/$validate", json=bundle(False), params=params))
    assert [i["expression"] for i in errors] == [["Bundle.entry"]], errors  # neither conforms: the slice is empty


@pytest.mark.parametrize(("div", "keys"), [
    ("<p>text</p><script>alert(1)</script>", ["txt-1"]),  # content is there: only the markup is wrong
    ("<p> </p>", ["txt-2"]),
    ("<p>fine</p>", []),
])
async def test_one_narrative_problem_is_one_issue(client: httpx.AsyncClient, div: str, keys: list[str]) -> None:
    body = _narrative(div)
    errors = _errors(await client.post("/List/$validate", json=body))
    assert sorted(i["diagnostics"].split(":")[0] for i in errors) == keys, errors


async def test_a_part_a_complex_extension_does_not_define_is_an_error(client: httpx.AsyncClient) -> None:
    nationality = "http://hl7.org/fhir/StructureDefinition/patient-nationality"
    parts = [{"url": "code", "valueCodeableConcept": {"text": "x"}}]
    ok = {"resourceType": "Patient", "extension": [{"url": nationality, "extension": parts}]}
    assert _errors(await client.post("/Patient/$validate", json=ok)) == []
    stranger = {"resourceType": "Patient", "extension": [{"url": nationality, "extension": [
        *parts, {"url": "colour", "valueString": "red"}]}]}
    assert [i["expression"] for i in _errors(await client.post("/Patient/$validate", json=stranger))] == [
        ["Patient.extension[0].extension[1].url"]]

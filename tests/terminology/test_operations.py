"""The operation table: Parameters resources and query strings in, service answers out."""

from __future__ import annotations

import pytest

from terminology import cn
from terminology.errors import InvalidRequest
from terminology.operations import OPERATIONS, invoke
from terminology.service import Terminology
from tests.terminology.parameters_util import param


def test_every_operation_names_a_service_method(term: Terminology) -> None:
    for operation in OPERATIONS.values():
        assert callable(getattr(term, operation.method))


def test_lookup_from_query_and_from_parameters(term: Terminology) -> None:
    out = invoke(term, "CodeSystem", "$lookup", query={"system": [cn.SEX], "code": ["1"], "property": ["parent"]})
    assert param(out, "display") == "男"
    posted = {"resourceType": "Parameters", "parameter": [{"name": "coding", "valueCoding": {"system": cn.SEX,
                                                                                             "code": "2"}}]}
    assert param(invoke(term, "CodeSystem", "lookup", parameters=posted), "display") == "女"
    instance = invoke(term, "CodeSystem", "lookup", query={"code": ["9"]}, instance_url=cn.SEX)
    assert param(instance, "display") == "未说明的性别"


@pytest.mark.parametrize(("resource_type", "name", "query", "check"), [
    ("ValueSet", "validate-code", {"url": [cn.VS_SEX], "system": [cn.SEX], "code": ["1"]}, ("result", True)),
    ("ValueSet", "validate-code", {"url": [cn.VS_SEX], "system": [cn.SEX], "code": ["4"]}, ("result", False)),
    ("CodeSystem", "validate-code", {"url": [cn.PATIENT_TYPE], "code": ["2"], "display": ["急诊"]}, ("result", True)),
    ("CodeSystem", "subsumes", {"system": [cn.MARITAL_STATUS], "codeA": ["20"], "codeB": ["21"]},
     ("outcome", "subsumes")),
    ("ConceptMap", "translate", {"system": [cn.SEX], "code": ["1"], "reverse": ["false"]}, ("result", True)),
])
def test_query_operations(term: Terminology, resource_type: str, name: str, query: dict, check: tuple) -> None:
    assert param(invoke(term, resource_type, name, query=query), check[0]) == check[1]


def test_expand_with_typed_parameters(term: Terminology) -> None:
    out = invoke(term, "ValueSet", "expand", query={"count": ["2"], "activeOnly": ["true"], "excludeNested": ["true"]},
                 instance_url=cn.VS_ETHNIC_GROUP)
    assert out["expansion"]["total"] == 58 and len(out["expansion"]["contains"]) == 2
    posted = {"resourceType": "Parameters", "parameter": [
        {"name": "valueSet", "resource": {"resourceType": "ValueSet", "compose": {"include": [{"system": cn.SEX}]}}},
        {"name": "filter", "valueString": "女"}]}
    assert [c["code"] for c in invoke(term, "ValueSet", "expand", parameters=posted)["expansion"]["contains"]] == ["2"]


@pytest.mark.parametrize(("resource_type", "name", "query"), [
    ("ValueSet", "expand", {"url": [cn.VS_SEX], "bogus": ["1"]}),
    ("ValueSet", "expand", {"url": [cn.VS_SEX], "count": ["many"]}),
    ("ValueSet", "expand", {"url": [cn.VS_SEX, cn.VS_ICD10]}),
    ("ValueSet", "validate-code", {"url": [cn.VS_SEX], "coding": ["x"]}),
    ("ValueSet", "lookup", {}),
    ("CodeSystem", "lookup", {"system": [cn.SEX]}),
])
def test_bad_requests(term: Terminology, resource_type: str, name: str, query: dict) -> None:
    with pytest.raises(InvalidRequest):
        invoke(term, resource_type, name, query=query)

"""Canonical urls of the Chinese national code tables shipped in ``terminology/data/cn``.

Code systems use the national OIDs (``urn:oid:2.16.156.10011.*``, from the WS/T 500 CDA
practice; see /shared/cn/README.md §1 and §4). ValueSets and ConceptMaps, which have no national
identifier, use the Yidang canonical base. So does the follow-up evaluation table CV05.10.012,
for which no OID was found. Profiles and tests import these names instead of spelling urls.
"""

from __future__ import annotations

BASE = "http://yidang.org/fhir"
"""Canonical base of the terminology resources Yidang authors (ValueSet/..., ConceptMap/...)."""


def _vs(name: str) -> str:
    return f"{BASE}/ValueSet/{name}"


def _cm(name: str) -> str:
    return f"{BASE}/ConceptMap/{name}"


# Code systems (Coding.system values)
SEX = "urn:oid:2.16.156.10011.2.3.3.4"  # GB/T 2261.1 生理性别
MARITAL_STATUS = "urn:oid:2.16.156.10011.2.3.3.5"  # GB/T 2261.2 婚姻状况
ETHNIC_GROUP = "urn:oid:2.16.156.10011.2.3.3.3"  # GB/T 3304 民族 (list unconfirmed)
ICD10 = "urn:oid:2.16.156.10011.2.3.3.11"  # ICD-10 (GB/T 14396), subset
ID_DOCUMENT_TYPE = "urn:oid:2.16.156.10011.2.3.1.1"  # CV02.01.101 身份证件类别
PATIENT_TYPE = "urn:oid:2.16.156.10011.2.3.1.271"  # CV09.00.404 患者类型
FOLLOWUP_METHOD = "urn:oid:2.16.156.10011.2.3.1.183"  # CV06.00.207 随访方式 (list unconfirmed)
FOLLOWUP_EVALUATION = f"{BASE}/CodeSystem/cn-followup-evaluation"  # CV05.10.012 随访评价结果 (no OID known)
ABO_BLOOD_TYPE = "urn:oid:2.16.156.10011.2.3.1.85"  # CV04.50.005 ABO血型
RH_BLOOD_TYPE = "urn:oid:2.16.156.10011.2.3.1.250"  # CV04.50.020 Rh(D)血型
EXAM_RESULT = "urn:oid:2.16.156.10011.2.3.2.38"  # 检查(检验)结果 (list unconfirmed)
ADMINISTRATIVE_DIVISION = "urn:oid:2.16.156.10011.2.3.3.2"  # GB/T 2260 行政区划 (2021, province to county)

# Value sets (all codes of each table; the ICD-10 one leaves out chapters and blocks)
VS_SEX = _vs("cn-sex")
VS_MARITAL_STATUS = _vs("cn-marital-status")
VS_ETHNIC_GROUP = _vs("cn-ethnic-group")
VS_ICD10 = _vs("cn-icd10")
VS_ID_DOCUMENT_TYPE = _vs("cn-id-document-type")
VS_PATIENT_TYPE = _vs("cn-patient-type")
VS_FOLLOWUP_METHOD = _vs("cn-followup-method")
VS_FOLLOWUP_EVALUATION = _vs("cn-followup-evaluation")
VS_ABO_BLOOD_TYPE = _vs("cn-abo-blood-type")
VS_RH_BLOOD_TYPE = _vs("cn-rh-blood-type")
VS_EXAM_RESULT = _vs("cn-exam-result")
VS_ADMINISTRATIVE_DIVISION = _vs("cn-administrative-division")

# Concept maps to FHIR codes
CM_SEX_TO_GENDER = _cm("cn-sex-to-administrative-gender")
CM_MARITAL_STATUS = _cm("cn-marital-status-to-v3")
CM_PATIENT_TYPE_TO_CLASS = _cm("cn-patient-type-to-v3-actcode")
CM_ID_DOCUMENT_TYPE = _cm("cn-id-document-type-to-v2-0203")
CM_FOLLOWUP_METHOD_TO_CLASS = _cm("cn-followup-method-to-v3-actcode")
CM_EXAM_RESULT_TO_INTERPRETATION = _cm("cn-exam-result-to-v3-interpretation")

"""Terminology service timings: package open, first and cached binding checks, expansion, operations.

    python -m bench.terminology

The cached ``check()`` figure is the one the validator pays per coded element on every write
(target: at most 5 µs). Runs in a few seconds.
"""

from __future__ import annotations

import subprocess
import sys
import time
import timeit
from collections.abc import Callable

from bench.common import ROOT
from terminology import cn
from terminology.package import Package
from terminology.service import Terminology

GENDER = "http://hl7.org/fhir/administrative-gender"
VS_GENDER = "http://hl7.org/fhir/ValueSet/administrative-gender"
VS_OBS_CODES = "http://hl7.org/fhir/ValueSet/observation-codes"


def per_call(fn: Callable[[], object], number: int) -> float:
    """Best of three runs, in microseconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6


def once(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    code = "import time; t = time.perf_counter(); import terminology; print((time.perf_counter() - t) * 1e3)"
    imported = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                                    check=True).stdout)
    print(f"import terminology                      {imported:8.1f} ms")
    package: list[Package] = []
    print(f"open package (index + Chinese tables)   {once(lambda: package.append(Package())):8.1f} ms")
    term = Terminology(package[0])
    print(f"first check, administrative-gender      {once(lambda: term.check(VS_GENDER, GENDER, 'male')):8.1f} ms")
    print(f"first check, v3-ActEncounterCode        "
          f"{once(lambda: term.check('http://terminology.hl7.org/ValueSet/v3-ActEncounterCode', 'x', 'AMB')):8.1f} ms")
    print(f"first check, cn-icd10                   {once(lambda: term.check(cn.VS_ICD10, cn.ICD10, 'I10')):8.1f} ms")
    cases = {
        "cached hit": lambda: term.check(VS_GENDER, GENDER, "male"),
        "cached hit + same display": lambda: term.check(VS_GENDER, GENDER, "male", "Male"),
        "cached hit + other display": lambda: term.check(cn.VS_SEX, cn.SEX, "1", "Male"),
        "miss (code not in value set)": lambda: term.check(VS_GENDER, GENDER, "xx"),
        "unknown (LOINC not carried)": lambda: term.check(VS_OBS_CODES, "http://loinc.org", "8480-6"),
        "ICD-10 subset hit": lambda: term.check(cn.VS_ICD10, cn.ICD10, "E11.9"),
    }
    for name, fn in cases.items():
        fn()
        print(f"check: {name:32} {per_call(fn, 100_000):8.2f} µs")
    ops = {
        "$lookup": lambda: term.lookup(cn.ICD10, "E11.2"),
        "$validate-code (cached vs)": lambda: term.validate_code(url=cn.VS_SEX, system=cn.SEX, code="1"),
        "$expand ethnic groups (58)": lambda: term.expand(cn.VS_ETHNIC_GROUP),
        "$expand icd10 filter '高血压'": lambda: term.expand(cn.VS_ICD10, filter="高血压"),
        "$translate sex -> gender": lambda: term.translate(system=cn.SEX, code="1"),
        "$translate reverse (all maps)": lambda: term.translate(system=GENDER, code="male", reverse=True),
    }
    for name, fn in ops.items():
        fn()
        print(f"{name:38} {per_call(fn, 2_000):8.1f} µs")
    every = Terminology(package[0])
    start = time.perf_counter()
    for url in package[0].urls("ValueSet"):
        every.evaluated(url)
    print(f"evaluate all {len(package[0].urls('ValueSet'))} packaged value sets      "
          f"{(time.perf_counter() - start) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()

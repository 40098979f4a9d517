"""A fast seeder: a realistic regional data set written straight into a store, for the 1,000,000-resource
benchmarks (issues 15 and 16) that cannot wait an hour for the HTTP path to load them.

    python -m bench.seed --data-dir DIR --resources N [--persons M] [--institutions K] [--workers W]

What it writes (deterministic from ``--seed``; ids are stable, so a re-run resumes or does nothing):

- ``K`` Organizations (统一社会信用代码-like identifier, system ``urn:oid:2.16.156.10011.1.5``);
- per person (about N/25 persons unless ``--persons``): a Patient at each of 1-3 institutions, with the
  institution's 门诊号 (``assigner`` = the institution), a valid 居民身份证号 (GB 11643 check character,
  birth date and sex as the number encodes them) for 90 % of persons, a 居民健康卡号 at some of them (the
  only strong identifier of the rest, except 0.5 % who have none: no Person, found by ``$match`` alone),
  a Chinese name, phone and a GB/T 2260 address code; per Patient 1-3 Encounters, each with a lab
  DiagnosticReport (LOINC panel, ``performer`` = the institution) and its 3-6 Observations, and a
  Condition (GB/T 14396 ICD-10) for half of them;
- the **look-up person** (person 0): 居民身份证号 ``110101199001011237`` with a Patient and 3 recent glucose
  reports at each of the first 10 institutions (``bench/lookup.py --data-dir`` measures that person);
- the ``Person`` resources the identity listener (:mod:`server.identity.linking`) would have made: one
  per person with a strong identifier, ``identifier`` = the sorted union of its Patients' strong keys
  (:func:`~server.identity.keys.strong_keys`), a ``link`` per Patient in write order with the assurance
  :func:`~server.identity.keys.assurance` gives, the ``mpi`` tag, no source tag and no grading (as the
  listener writes them with the open grant through ``store_version``). The listener is not run: these
  are the Persons it converges on. Person ids are UUIDs (v5 of the person number, so stable).

Every institution's resource is stamped as ``create`` stamps it for that institution's client: the
source-institution ``meta.tag`` and ``meta.source`` (:class:`server.access.policy` ``stamp``), the grading
labels (:func:`server.grading.grade.stamp`, shipped policy), then ``versionId`` 1 and ``lastUpdated``;
bodies are serialised with :func:`server.fhir.json.dumps` and indexed by the server's own
:class:`~server.search.index.Indexer`. Not validated (the load is not what is measured; the small test
``$validate``\\ s a sample of every type). ``lastUpdated`` is the seed's start time minus one day plus
microseconds, so no version is ever in the future.

Worker processes build the bodies and search entries of a chunk of persons; the main process writes
each chunk in one store session with :meth:`Session.append` (bulk insert). Progress is in
``DIR/bench-seed.json``; a chunk counts as written when its first resource is in the store (a chunk
is one session, so it lands whole or not at all).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any, NamedTuple, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from profiles import resident_id
from server.access.principal import SOURCE_TAG_SYSTEM, SOURCE_URI_PREFIX
from server.fhir.instant import to_instant
from server.fhir.json import dumps
from server.grading.grade import stamp as stamp_grade
from server.grading.policy import Policy, load_policy
from server.identity.keys import HEALTH_CARD, assurance, strong_keys
from server.identity.linking import MPI_TAG
from server.search.index import Indexer
from server.search.model import Entry
from server.search.registry import SearchRegistry
from server.stores.base import Store, Version, Write

MANIFEST = "bench-seed.json"
ORG_SYSTEM = "urn:oid:2.16.156.10011.1.5"
MRN_SYSTEM = "urn:oid:2.16.156.10011.1.12"
ICD10 = "urn:oid:2.16.156.10011.2.3.3.11"
LOINC = "http://loinc.org"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
LOOKUP_ID_NUMBER = "110101199001011237"
LOOKUP_INSTITUTIONS = 10
CHUNK_PERSONS = 200
CHUNK_US = 1_000_000
"""``lastUpdated`` microseconds reserved per chunk (a chunk holds far fewer resources)."""
PERSON_NS = uuid.UUID("6f1d9a52-2b7e-4c55-9d3e-7a1f3c0b9e11")

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英霞平刚桂兰华红玉萍建国文辉鹏飞斌宇浩凯婷雪琳晨欣怡"
COUNTIES = ("440303", "440304", "440305", "440306", "440307", "440308", "440309", "440310", "110101", "310104")
PANELS = (  # (report code, name, [(observation code, display, unit, low, high)])
    ("24323-8", "Comprehensive metabolic panel", [("2345-7", "Glucose", "mmol/L", 3.9, 11.0),
                                                   ("2160-0", "Creatinine", "umol/L", 45, 130),
                                                   ("3094-0", "Urea nitrogen", "mmol/L", 2.5, 8.5),
                                                   ("2823-3", "Potassium", "mmol/L", 3.3, 5.5),
                                                   ("2951-2", "Sodium", "mmol/L", 133, 147)]),
    ("58410-2", "CBC panel", [("6690-2", "Leukocytes", "10*9/L", 3.5, 10.0),
                              ("789-8", "Erythrocytes", "10*12/L", 3.8, 5.8),
                              ("718-7", "Hemoglobin", "g/L", 110, 170),
                              ("777-3", "Platelets", "10*9/L", 120, 350)]),
    ("57698-3", "Lipid panel", [("2093-3", "Cholesterol", "mmol/L", 3.0, 6.5),
                                ("2571-8", "Triglyceride", "mmol/L", 0.5, 2.5),
                                ("2085-9", "HDL cholesterol", "mmol/L", 0.9, 2.0)]),
    ("4548-4", "Hemoglobin A1c", [("4548-4", "Hemoglobin A1c", "%", 4.0, 9.0)]),
)
DIAGNOSES = (("I10", "特发性(原发性)高血压"), ("E11.9", "2型糖尿病"), ("J06.9", "急性上呼吸道感染"),
             ("K29.7", "胃炎"), ("E78.5", "高脂血症"), ("M54.5", "下背痛"))


@dataclass(frozen=True)
class Plan:
    """What to seed; stored in the manifest, so a re-run with other parameters is refused."""

    resources: int
    persons: int
    institutions: int
    seed: int
    t0: int
    """``lastUpdated`` of the first resource, microseconds."""
    chunk: int = CHUNK_PERSONS
    """Persons per chunk (one store session)."""

    @property
    def encounters_mean(self) -> float:
        """Encounters per Patient so that ``persons`` persons give about ``resources`` resources
        (a person has 1.6 Patients; an Encounter brings ~7.2 resources; Person + Patient ~2.6)."""
        return max(1.0, (self.resources / max(1, self.persons) - 2.6) / (1.6 * 7.2))


def institution_code(k: int) -> str:
    return f"1244030045{k:07d}X"


def organization_id(k: int) -> str:
    return f"org-{k:03d}"


def id_number(county: str, born: str, seq: int) -> str:
    first17 = county + born.replace("-", "") + f"{seq:03d}"
    return first17 + resident_id.check_character(first17)


@cache
def _policy() -> Policy:
    return load_policy(None)


@cache
def _indexer() -> Indexer:
    from server.settings import Settings

    return Indexer(SearchRegistry(), base_url=Settings().base_url)


def stamp(resource: dict[str, Any], institution: str | None, lu: int) -> dict[str, Any]:
    """``meta`` as ``create`` stamps it: source tag and source (an institution's write) and grading,
    or the ``mpi`` tag alone (a Person, written by the linking listener); then versionId 1 and
    lastUpdated; ``id`` last, as ``store_version`` sets it."""
    rid = resource.pop("id")
    if institution is None:
        resource["meta"] = {"tag": [dict(MPI_TAG)]}
    else:
        resource["meta"] = {"tag": [{"system": SOURCE_TAG_SYSTEM, "code": institution}],
                            "source": SOURCE_URI_PREFIX + institution}
        stamp_grade(resource, _policy())
    resource["meta"]["versionId"] = "1"
    resource["meta"]["lastUpdated"] = to_instant(lu)
    resource["id"] = rid
    return resource


def organizations(plan: Plan) -> list[tuple[str | None, dict[str, Any]]]:
    out: list[tuple[str | None, dict[str, Any]]] = []
    for k in range(plan.institutions):
        kind = "医院" if k % 3 else "社区卫生服务中心"
        out.append((institution_code(k), {
            "resourceType": "Organization", "id": organization_id(k), "active": True,
            "identifier": [{"system": ORG_SYSTEM, "value": institution_code(k)}],
            "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type",
                                  "code": "prov"}]}],
            "name": f"第{k + 1}{kind}"}))
    return out


def _day(plan: Plan, rng: random.Random, recent: bool) -> str:
    base = datetime.fromtimestamp(plan.t0 / 1e6, UTC)
    back = timedelta(days=rng.randint(1, 20) if recent else rng.randint(1, 730), minutes=rng.randint(0, 1439))
    return (base - back).replace(microsecond=0).isoformat().replace("+00:00", "+08:00")


def _encounter(plan: Plan, rng: random.Random, pid: str, eid: str, k: int, recent: bool,
               panel: tuple[str, str, list[tuple[str, str, str, float, float]]] | None = None,
               condition: bool | None = None) -> list[dict[str, Any]]:
    when = _day(plan, rng, recent)
    subject = {"reference": f"Patient/{pid}"}
    org = {"reference": f"Organization/{organization_id(k)}"}
    enc = {"reference": f"Encounter/{eid}"}
    out: list[dict[str, Any]] = [{
        "resourceType": "Encounter", "id": eid, "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "门诊"},
        "subject": subject, "serviceProvider": org, "period": {"start": when, "end": when}}]
    code, name, items = panel or rng.choice(PANELS)
    results = []
    for n, (ocode, display, unit, low, high) in enumerate(items):
        oid = f"{eid}-o{n}"
        results.append({"reference": f"Observation/{oid}"})
        value = round(rng.uniform(low * 0.8, high * 1.2), 1)
        out.append({
            "resourceType": "Observation", "id": oid, "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory"}]}],
            "code": {"coding": [{"system": LOINC, "code": ocode, "display": display}]},
            "subject": subject, "encounter": enc, "effectiveDateTime": when, "issued": when, "performer": [org],
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
            "interpretation": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                "code": "H" if value > high else "L" if value < low else "N"}]}]})
    out.append({
        "resourceType": "DiagnosticReport", "id": f"{eid}-r", "status": "final",
        "category": [{"coding": [{"system": V2_0074, "code": "LAB"}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": name}]},
        "subject": subject, "encounter": enc, "effectiveDateTime": when, "issued": when,
        "performer": [org], "result": results})
    if condition if condition is not None else rng.random() < 0.5:
        icd, text = rng.choice(DIAGNOSES)
        out.append({
            "resourceType": "Condition", "id": f"{eid}-c",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "verificationStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                      "code": "encounter-diagnosis"}]}],
            "code": {"coding": [{"system": ICD10, "code": icd, "display": text}], "text": text},
            "subject": subject, "encounter": enc, "recordedDate": when})
    return out


def person_resources(plan: Plan, p: int) -> list[tuple[str | None, dict[str, Any]]]:
    """The resources of person ``p`` (institution code, resource), Patients before their data, the
    Person last."""
    rng = random.Random(plan.seed * 1_000_003 + p)
    lookup = p == 0
    male = rng.random() < 0.5
    if lookup:
        number: str | None = LOOKUP_ID_NUMBER
        born, male = "1990-01-01", True
    else:
        born = f"{rng.randint(1940, 2019)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        seq = rng.randint(0, 99) * 10 + rng.choice((1, 3, 5, 7, 9) if male else (0, 2, 4, 6, 8))
        number = id_number(rng.choice(COUNTIES), born, seq) if rng.random() < 0.9 else None
    card = f"H{rng.randint(0, 10**15):015d}" if lookup or rng.random() < 0.5 or (number is None and \
        rng.random() < 0.9) else None
    name = rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.6 else "")
    phone = f"13{rng.randint(0, 999999999):09d}"
    county = rng.choice(COUNTIES)
    if lookup:
        places = list(range(min(LOOKUP_INSTITUTIONS, plan.institutions)))
    else:
        places = rng.sample(range(plan.institutions), min(plan.institutions, rng.choice((1, 1, 1, 2, 2, 3))))
    out: list[tuple[str | None, dict[str, Any]]] = []
    patients: list[dict[str, Any]] = []
    for n, k in enumerate(places):
        inst = institution_code(k)
        pid = f"pt{p}-{k}"
        ids: list[dict[str, Any]] = [{"use": "usual", "system": MRN_SYSTEM, "value": f"MZ{p:09d}",
                                      "assigner": {"identifier": {"system": ORG_SYSTEM, "value": inst}}}]
        if number is not None:
            ids.append({"use": "official", "system": resident_id.SYSTEM, "value": number})
        if card is not None and (number is None or lookup or n == 0 or rng.random() < 0.5):
            ids.append({"system": HEALTH_CARD, "value": card})
        patient = {"resourceType": "Patient", "id": pid, "identifier": ids, "active": True,
                   "name": [{"use": "official", "text": name, "family": name[0], "given": [name[1:]]}],
                   "telecom": [{"system": "phone", "value": phone, "use": "mobile"}],
                   "gender": "male" if male else "female", "birthDate": born,
                   "address": [{"use": "home", "district": county}],  # GB/T 2260 county code
                   "managingOrganization": {"reference": f"Organization/{organization_id(k)}"}}
        patients.append(patient)
        out.append((inst, patient))
        if lookup:
            for r in range(3):
                out += [(inst, x) for x in _encounter(plan, rng, pid, f"e{p}-{k}-{r}", k, True,
                                                      panel=PANELS[0], condition=False)]
            continue
        visits = max(1, round(rng.expovariate(1 / plan.encounters_mean))) if plan.encounters_mean > 1 else 1
        for r in range(visits):
            out += [(inst, x) for x in _encounter(plan, rng, pid, f"e{p}-{k}-{r}", k, False)]
    links = [{"target": {"reference": f"Patient/{pt['id']}"}, "assurance": assurance(pt)}
             for pt in patients if strong_keys(pt)]
    if links:
        keys = sorted({key for pt in patients for key in strong_keys(pt)})
        out.append((None, {"resourceType": "Person", "id": str(uuid.uuid5(PERSON_NS, f"{plan.seed}/{p}")),
                           "active": True, "link": links,
                           "identifier": [{"system": s, "value": v} for s, v in keys]}))
    return out


class Row(NamedTuple):
    """An :class:`~server.search.model.Entry` as a plain tuple: the store reads only these three
    attributes, and a tuple crosses the process boundary several times faster than a frozen dataclass."""

    table: str
    param: str
    values: tuple[object, ...]


Built = tuple[str, str, bytes, int, list[Row]]
"""(type, id, body, lastUpdated, entries) of one resource, ready to write."""


def build(plan: Plan, chunk: int) -> list[Built]:
    """Chunk ``chunk`` (-1: the Organizations) stamped, serialised and indexed (runs in a worker)."""
    if chunk < 0:
        items = organizations(plan)
    else:
        items = [x for p in range(chunk * plan.chunk, (chunk + 1) * plan.chunk)
                 for x in person_resources(plan, p)]
    lu0 = plan.t0 + (chunk + 1) * CHUNK_US
    indexer = _indexer()
    out: list[Built] = []
    gc.disable()  # a chunk allocates ~10^6 objects and frees none: cyclic collection is wasted work here
    try:
        for n, (inst, resource) in enumerate(items):
            lu = lu0 + n
            stamp(resource, inst, lu)
            entries = [Row(e.table, e.param, e.values) for e in indexer.entries(resource)]
            out.append((resource["resourceType"], resource["id"], dumps(resource), lu, entries))
    finally:
        gc.enable()
    return out


def first_id(plan: Plan, chunk: int) -> tuple[str, str]:
    return ("Organization", organization_id(0)) if chunk < 0 else ("Patient", first_patient(plan, chunk))


def first_patient(plan: Plan, chunk: int) -> str:
    return next(r["id"] for _, r in person_resources(plan, chunk * plan.chunk) if r["resourceType"] == "Patient")


async def write_chunk(store: Store, built: Sequence[Built]) -> None:
    writes = [Write(Version(t, i, 1, lu, False, "POST", body), cast(list[Entry], entries), None)
              for t, i, body, lu, entries in built]
    async with store.session() as session:
        await session.append(writes)


def _manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def _save(directory: Path, plan: Plan, counts: dict[int, int], seconds: float) -> None:
    data = {"plan": asdict(plan), "chunks": {str(k): v for k, v in sorted(counts.items())},
            "resources": sum(counts.values()), "seconds": round(seconds, 1),
            "lookup_identifier": f"{resident_id.SYSTEM}|{LOOKUP_ID_NUMBER}"}
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(directory / MANIFEST)


async def seed(store: Store, directory: Path, plan: Plan, pool: Executor, *, window: int = 4,
               progress: bool = True) -> dict[str, Any]:
    """Write chunks until the store holds ``plan.resources`` seeded resources (skipping the chunks it
    holds already); returns the manifest."""
    old = _manifest(directory)
    counts: dict[int, int] = {int(k): v for k, v in old.get("chunks", {}).items()}
    if old and {k: v for k, v in old["plan"].items() if k not in ("resources", "t0")} != \
            {k: v for k, v in asdict(plan).items() if k not in ("resources", "t0")}:
        raise SystemExit(f"{directory} was seeded with {old['plan']}; not mixing it with {asdict(plan)}")
    if old:
        plan = Plan(**{**old["plan"], "resources": max(plan.resources, old["plan"]["resources"])})
    started = time.perf_counter()
    written = 0
    loop = asyncio.get_running_loop()
    pending: dict[int, asyncio.Future[list[Built]]] = {}
    chunk = -1
    total = sum(counts.values())

    def submit(c: int) -> None:
        pending[c] = loop.run_in_executor(pool, build, plan, c)

    while total < plan.resources:
        if chunk in counts:
            chunk += 1
            continue
        type_, id_ = first_id(plan, chunk)
        present = await store.read(type_, id_) is not None
        while len(pending) < window and (nxt := chunk + len(pending)) not in pending:
            submit(nxt)
        if chunk not in pending:
            submit(chunk)
        built = await pending.pop(chunk)
        if not present:
            await write_chunk(store, built)
            written += len(built)
        counts[chunk] = len(built)
        total += len(built)
        elapsed = time.perf_counter() - started
        _save(directory, plan, counts, elapsed + float(old.get("seconds", 0)))
        if progress and chunk % 10 == 0:
            print(f"  {total:>9,} resources ({written:,} written this run, {elapsed:5.0f} s, "
                  f"{written / max(elapsed, 1e-9):6,.0f}/s)", flush=True)
        chunk += 1
    for fut in pending.values():
        fut.cancel()
        with __import__("contextlib").suppress(BaseException):
            await fut
    elapsed = time.perf_counter() - started
    manifest = _manifest(directory)
    manifest["this_run"] = {"written": written, "seconds": round(elapsed, 1)}
    return manifest


def make_pool(workers: int) -> Executor:
    if workers <= 0:
        return _Inline()
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork"))


class _Inline(Executor):
    """Builds in the calling process (``--workers 0``: tests, debugging)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        fut.set_result(fn(*args, **kwargs))
        return fut


def default_plan(resources: int, persons: int | None, institutions: int, seed_: int) -> Plan:
    t0 = int((datetime.now(UTC) - timedelta(days=1)).timestamp()) * 1_000_000
    persons = persons or max(1, resources // 25)
    return Plan(resources, persons, institutions, seed_, t0, max(1, min(CHUNK_PERSONS, persons // 10)))


async def run(directory: Path, plan: Plan, workers: int) -> dict[str, Any]:
    from server.stores.sqlite import SqliteStore

    directory.mkdir(parents=True, exist_ok=True)
    pool = make_pool(workers)  # forked before the store opens: no SQLite connection in the workers
    store = SqliteStore(directory)
    await store.open()
    try:
        return await seed(store, directory, plan, pool)
    finally:
        await store.close()
        pool.shutdown(cancel_futures=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="embedded store directory (YIDANG_DATA_DIR)")
    parser.add_argument("--resources", type=int, required=True, help="seed until the store holds at least this many")
    parser.add_argument("--persons", type=int, help="about how many persons (default resources / 25)")
    parser.add_argument("--institutions", type=int, default=50)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes building bodies and entries (0: in the writing process)")
    args = parser.parse_args(argv)
    if args.institutions < 1 or args.resources < 1:
        parser.error("--resources and --institutions must be positive")
    plan = default_plan(args.resources, args.persons, args.institutions, args.seed)
    old = _manifest(args.data_dir)
    if old:
        plan = Plan(**{**old["plan"], "resources": args.resources})
        if (args.persons and args.persons != plan.persons) or args.institutions != plan.institutions:
            parser.error(f"{args.data_dir} was seeded with {old['plan']}")
    manifest = asyncio.run(run(args.data_dir, plan, args.workers))
    run_ = manifest["this_run"]
    rate = run_["written"] / run_["seconds"] if run_["seconds"] else 0.0
    print(f"seeded {args.data_dir}: {manifest['resources']:,} resources; this run wrote {run_['written']:,} in "
          f"{run_['seconds']:.1f} s = {rate:,.0f} resources/s ({args.workers} workers); "
          f"look-up person {manifest['lookup_identifier']}")


if __name__ == "__main__":
    main()

"""Validation throughput on the Synthea sample (single core): structural, core, and profile validation.

Run ``python bench/validate.py`` from the repository root. It loads the gzipped Synthea transaction
Bundles in ``shared/samples/synthea`` (or ``--synthea DIR``; ``--bundles N`` for the first N),
warms every validator's compiled tables, then times
:meth:`profiles.validator.Validator.validate` over the entry resources of a few types and over all
of them, printing resources per second for:

- ``structure``: the structural stage alone (:func:`profiles.validator.default_validator`), which
  checks required bindings to enumerable value sets (:mod:`profiles.required`);
- ``structure-nobind``: the structural stage without those binding checks, to show what they cost;
- ``core``: structure + the profile engine against the core definitions, with core invariants;
- ``core-noinv``: the same with core invariants switched off (``core_invariants=False``);
- ``profile``: structure + engine + an explicit profile: Observations against the core vital-signs
  profile, Patients against a regional-style profile (identifier slices, required name and
  extension slot), the others against their core definition.

Parsing and decompression are not timed: the server validates already-parsed JSON. Terminology
answers come from the installed terminology service and are cached after the warm-up, as they
are in a running server.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from profiles.engine import ProfileEngine
from profiles.registry import ProfileRegistry
from profiles.validator import Validator, default_validator

DEFAULT_SYNTHEA = Path(__file__).resolve().parents[2] / "shared" / "samples" / "synthea"
TYPES = ("Patient", "Observation", "Encounter")
VITAL_SIGNS = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
REGIONAL_PATIENT = "http://example.org/bench/StructureDefinition/patient"
PATIENT_PROFILE: dict[str, Any] = {
    "resourceType": "StructureDefinition", "url": REGIONAL_PATIENT, "name": "BenchPatient", "status": "draft",
    "kind": "resource", "abstract": False, "type": "Patient", "derivation": "constraint",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
    "differential": {"element": [
        {"id": "Patient.identifier", "path": "Patient.identifier", "min": 1,
         "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
        {"id": "Patient.identifier:mrn", "path": "Patient.identifier", "sliceName": "mrn", "max": "1"},
        {"id": "Patient.identifier:mrn.system", "path": "Patient.identifier.system",
         "fixedUri": "https://github.com/synthetichealth/synthea"},
        {"id": "Patient.identifier:mrn.value", "path": "Patient.identifier.value", "min": 1, "maxLength": 64},
        {"id": "Patient.name", "path": "Patient.name", "min": 1},
        {"id": "Patient.name.family", "path": "Patient.name.family", "min": 1},
        {"id": "Patient.gender", "path": "Patient.gender", "min": 1},
        {"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1},
    ]},
}


def load(directory: Path, limit: int | None) -> dict[str, list[dict[str, Any]]]:
    """Entry resources of the bundles, by resource type."""
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(directory.glob("*.json.gz"))[:limit]:
        bundle = orjson.loads(gzip.decompress(path.read_bytes()))
        for entry in bundle.get("entry", ()):
            resource = entry["resource"]
            by_type[resource["resourceType"]].append(resource)
    return by_type


Validate = Callable[[dict[str, Any]], list[Any]]


def rate(validate: Validate, resources: list[dict[str, Any]], min_seconds: float) -> tuple[float, int]:
    """Resources per second over at least ``min_seconds`` of repeated passes, and the error count."""
    errors = sum(1 for r in resources if any(i.is_error for i in validate(r)))
    done, start = 0, time.perf_counter()
    while True:
        for resource in resources:
            validate(resource)
        done += len(resources)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed, errors


def validators() -> dict[str, Validate]:
    structure = default_validator()
    registry = ProfileRegistry()
    registry.add(PATIENT_PROFILE)
    core = structure.with_engine(ProfileEngine(registry))
    no_invariants = structure.with_engine(ProfileEngine(registry, core_invariants=False))
    explicit = {"Observation": [VITAL_SIGNS], "Patient": [REGIONAL_PATIENT]}

    def profiled(resource: dict[str, Any], validator: Validator = core) -> list[Any]:
        return validator.validate(resource, profiles=explicit.get(resource["resourceType"], ()))

    return {"structure": structure.validate, "structure-nobind": structure.with_bindings(None).validate,
            "core": core.validate, "core-noinv": no_invariants.validate, "profile": profiled}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthea", type=Path, default=DEFAULT_SYNTHEA)
    parser.add_argument("--bundles", type=int, default=None, help="only the first N bundles")
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per row")
    parser.add_argument("--modes", default="structure-nobind,structure,core,core-noinv,profile")
    args = parser.parse_args()
    by_type = load(args.synthea, args.bundles)
    everything = [r for resources in by_type.values() for r in resources]
    rows = [(name, by_type[name]) for name in TYPES] + [("all", everything)]
    all_validators = validators()
    print(f"{'mode':<16} {'resources':<12} {'count':>7} {'bytes/res':>9} {'errors':>6} {'resources/s':>12}")
    for mode in args.modes.split(","):
        validate = all_validators[mode]
        for resource in everything:  # compile every table and warm the caches before timing
            validate(resource)
        for name, resources in rows:
            size = sum(len(orjson.dumps(r)) for r in resources) // max(len(resources), 1)
            per_second, errors = rate(validate, resources, args.seconds)
            print(f"{mode:<16} {name:<12} {len(resources):>7} {size:>9} {errors:>6} {per_second:>12,.0f}")


if __name__ == "__main__":
    main()

"""Structural validation throughput on the Synthea sample (single core).

Run ``python bench/validate.py`` from the repository root. It loads the 61 gzipped Synthea
transaction Bundles in ``shared/samples/synthea`` (or ``--synthea DIR``), warms the validator's
compiled tables, then times :meth:`profiles.validator.Validator.validate` over the entry
resources of a few types and over all of them, printing resources per second. Parsing and
decompression are not timed: the server validates already-parsed JSON.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from profiles.validator import Validator, default_validator

DEFAULT_SYNTHEA = Path("/work/shared/samples/synthea")
TYPES = ("Patient", "Observation", "Encounter")


def load(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """Entry resources of every bundle, by resource type."""
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(directory.glob("*.json.gz")):
        bundle = orjson.loads(gzip.decompress(path.read_bytes()))
        for entry in bundle.get("entry", ()):
            resource = entry["resource"]
            by_type[resource["resourceType"]].append(resource)
    return by_type


def rate(validator: Validator, resources: list[dict[str, Any]], min_seconds: float) -> tuple[float, int]:
    """Resources per second over at least ``min_seconds`` of repeated passes, and the error count."""
    errors = sum(1 for r in resources if any(i.is_error for i in validator.validate(r)))
    done, start = 0, time.perf_counter()
    while True:
        for resource in resources:
            validator.validate(resource)
        done += len(resources)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthea", type=Path, default=DEFAULT_SYNTHEA)
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per row")
    args = parser.parse_args()
    by_type = load(args.synthea)
    validator = default_validator()
    everything = [r for resources in by_type.values() for r in resources]
    for resource in everything:  # compile every table before timing
        validator.validate(resource)
    rows = [(name, by_type[name]) for name in TYPES] + [("all", everything)]
    print(f"{'resources':<12} {'count':>7} {'bytes/res':>9} {'errors':>6} {'resources/s':>12}")
    for name, resources in rows:
        size = sum(len(orjson.dumps(r)) for r in resources) // max(len(resources), 1)
        per_second, errors = rate(validator, resources, args.seconds)
        print(f"{name:<12} {len(resources):>7} {size:>9} {errors:>6} {per_second:>12,.0f}")


if __name__ == "__main__":
    main()

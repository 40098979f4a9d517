"""Where the sample corpora are.

The full shared read-only material is ``../shared`` beside the checkout (as on the developers'
machines and in CI), or ``YIDANG_SHARED``. A clone with nothing beside it uses the subset the
repository carries, ``tests/data/samples.tar.xz`` (all official R4 examples, the validator test
cases, three Synthea bundles; licences inside and in ``tests/data/README.md``), unpacked once per
test run into a temporary folder that is removed at exit. Tests that need the whole corpora (all 61
Synthea bundles) skip with a reason unless :data:`FULL_SAMPLES`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("YIDANG_SHARED") or ROOT.parent / "shared")
SHARED_SAMPLES = SHARED / "samples"
BUNDLED_SAMPLES = ROOT / "tests" / "data" / "samples.tar.xz"
FULL_SAMPLES = SHARED_SAMPLES.is_dir()
"""True when the full shared corpora are beside the checkout."""
NOT_FULL = "needs the full shared corpora (../shared/samples or YIDANG_SHARED); the repository carries a subset"


def _unpack_bundled() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="yidang-samples-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    with tarfile.open(BUNDLED_SAMPLES) as tar:
        tar.extractall(folder, filter="data")
    return folder


SAMPLES = SHARED_SAMPLES if FULL_SAMPLES else _unpack_bundled()

"""Where the shared read-only material is: ``../shared`` beside the checkout (as on the developers'
machines and in CI), or ``YIDANG_SHARED``."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("YIDANG_SHARED") or ROOT.parent / "shared")
SAMPLES = SHARED / "samples"

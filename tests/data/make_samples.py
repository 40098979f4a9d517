"""Rebuild ``samples.tar.xz`` from the full shared corpora (``../shared/samples`` or ``YIDANG_SHARED``).

The archive carries what the tests need on a clone with nothing beside it: all 711 official R4
examples (CC0), the fhir-test-cases validator cases (see their LICENSE.txt) and the first
:data:`SYNTHEA_BUNDLES` Synthea bundles with their ``index.json`` rows and LICENSE (Apache-2.0).
Run ``python -m tests.data.make_samples`` after the shared corpora change.
"""

from __future__ import annotations

import io
import json
import tarfile

from tests.paths import BUNDLED_SAMPLES, SHARED_SAMPLES

SYNTHEA_BUNDLES = 3


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def main() -> None:
    src = SHARED_SAMPLES
    synthea = sorted(p.name for p in (src / "synthea").glob("*.json.gz"))[:SYNTHEA_BUNDLES]
    index = [row for row in json.loads((src / "synthea" / "index.json").read_text()) if row["file"] in synthea]
    files = [src / "README.md", *sorted((src / "r4-examples").glob("*.json")),
             *sorted(p for p in (src / "validator-cases").rglob("*") if p.is_file()),
             src / "synthea" / "LICENSE", *(src / "synthea" / name for name in synthea)]
    with tarfile.open(BUNDLED_SAMPLES, "w:xz", preset=9) as tar:
        for path in files:
            _add(tar, path.relative_to(src).as_posix(), path.read_bytes())
        _add(tar, "synthea/index.json", json.dumps(index, indent=1, ensure_ascii=False).encode())
    print(f"{BUNDLED_SAMPLES}: {BUNDLED_SAMPLES.stat().st_size:,} bytes, {len(files) + 1} files")


if __name__ == "__main__":
    main()

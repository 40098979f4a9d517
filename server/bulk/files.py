"""A bulk job's files: ``<bulk_dir>/<job id>/<Type>-<n>.ndjson`` (``.gz`` on disk when gzip is on).

Files are appended a page at a time and flushed before the job saves its cursor, which records
each file's size; a resumed job truncates the file it was writing to that size, so what follows
the last saved cursor is written exactly once. With gzip a file is one gzip member whose deflate
stream is fully flushed after every page (a byte boundary, no back-reference across it): a resumed
job truncates to a flush point and goes on with a fresh compressor, the CRC-32 and length for the
trailer carried in the cursor; :func:`finish` writes the trailer when the file is complete.
"""

from __future__ import annotations

import re
import shutil
import struct
import zlib
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from server.settings import Settings

NAME = re.compile(r"^[A-Z][A-Za-z]*-[0-9]{1,6}\.ndjson$")
"""A file name as the URLs carry it (nothing else is ever opened: no path from a request)."""
JOB_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
CHUNK = 64 * 1024
GZIP_LEVEL = 6
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
"""RFC 1952 member header: deflate, no name, no mtime, unknown OS."""


UPLOAD = "upload:"
"""Source prefix of an ``$import`` input uploaded with the kick-off (a file in the job's directory)."""


def incoming(directory: Path) -> Path:
    """Where a kick-off puts an upload before its job exists (beside the jobs' directories)."""
    return directory.parent / "incoming"


def root(settings: Settings) -> Path:
    """Where bulk files live: ``bulk_dir``, else ``<data_dir>/bulk``."""
    return settings.bulk_dir if settings.bulk_dir is not None else settings.data_dir / "bulk"


def job_dir(settings: Settings, job_id: str) -> Path:
    if not JOB_ID.match(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return root(settings) / job_id


def file_name(type_: str, part: int) -> str:
    return f"{type_}-{part}.ndjson"


def on_disk(directory: Path, name: str, gzipped: bool) -> Path:
    return directory / (name + ".gz" if gzipped else name)


def append(path: Path, lines: Iterable[bytes], size: int, gzipped: bool, crc: int = 0,
           raw: int = 0) -> tuple[int, int, int]:
    """Append ``lines`` (each without its newline) to ``path`` after its first ``size`` bytes
    (anything beyond is a crashed run's unsaved work and is cut off). Returns the new size, and
    for gzip the CRC-32 and length of the uncompressed data so far (the trailer :func:`finish`
    writes)."""
    data = b"".join(line + b"\n" for line in lines)
    out = data
    if gzipped:
        deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        out = (GZIP_HEADER if size == 0 else b"") + deflate.compress(data) + deflate.flush(zlib.Z_FULL_FLUSH)
        crc, raw = zlib.crc32(data, crc), raw + len(data)
    return _write(path, size, out), crc, raw


def finish(path: Path, size: int, gzipped: bool, crc: int, raw: int) -> int:
    """End a gzip file: the final (empty) deflate block and the trailer. Nothing for plain files."""
    if not gzipped or size == 0:
        return size
    last = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS).flush(zlib.Z_FINISH)
    return _write(path, size, last + struct.pack("<II", crc & 0xFFFFFFFF, raw & 0xFFFFFFFF))


def _write(path: Path, size: int, data: bytes) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("r+b" if path.exists() else "wb") as out:
        out.truncate(size)
        out.seek(size)
        out.write(data)
        out.flush()
        return out.tell()


def keep_only(directory: Path, names: set[str]) -> None:
    """Remove files of ``directory`` not in ``names`` (on-disk names): written after the last save."""
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        if path.name not in names:
            path.unlink(missing_ok=True)


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


async def read(path: Path, gzipped: bool, decompress: bool) -> AsyncIterator[bytes]:
    """The file's bytes in chunks; a gzip file is decompressed when ``decompress`` (the client
    does not accept gzip), every member in turn, with bounded memory."""
    with path.open("rb") as source:
        if not (gzipped and decompress):
            while chunk := source.read(CHUNK):
                yield chunk
            return
        inflater = zlib.decompressobj(wbits=31)
        while chunk := source.read(CHUNK):
            while chunk:
                out = inflater.decompress(chunk, CHUNK)
                if out:
                    yield out
                while inflater.unconsumed_tail:
                    out = inflater.decompress(inflater.unconsumed_tail, CHUNK)
                    if out:
                        yield out
                if inflater.eof:  # the next member starts in what is left over
                    chunk = inflater.unused_data
                    inflater = zlib.decompressobj(wbits=31)
                else:
                    chunk = b""
        tail = inflater.flush()
        if tail:
            yield tail

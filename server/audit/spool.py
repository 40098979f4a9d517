"""The append-only spool: AuditEvents on local disk before the response is sent, and the queue the
writer stores them from.

Every event is appended as one NDJSON line to ``<spool dir>/spool-<pid>-<n>.ndjson`` with one
``write`` on the event loop's thread: in the page cache, it outlives the process (kill -9). With
``fsync`` the response also waits for the file to be fsync'd, which survives a power cut; requests
arriving while an fsync runs share the next one (group commit), so a burst of concurrent requests
costs one fsync per group, not one each. A segment is held with an exclusive ``flock`` by the
process writing it (released by the kernel even on kill -9), so at start-up a process replays
exactly the segments whose writer is gone. A segment is deleted once every event in it is in the
store; a torn last line (the process died mid-write, so before the response) is ignored.

The spool is also the queue: the writer reads the lines back (:meth:`Segment.peek`, from the page
cache) instead of keeping the events in memory, so a backlog of 100,000 events costs disk, not
memory or garbage-collector time.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.fhir.json import dumps

ROTATE_BYTES = 8 * 1024 * 1024
"""A segment takes no more appends beyond this size; a new one starts."""
READ_BYTES = 1024 * 1024
"""The writer reads a segment back in chunks of this size."""


@dataclass(eq=False)
class Segment:
    path: Path
    fd: int | None
    written: int = 0
    """Complete lines in the file (events spooled)."""
    stored: int = 0
    """Lines from the start that are in the store (or were unreadable, so never acknowledged)."""
    size: int = 0
    """Bytes of complete lines."""
    read_at: int = 0
    """Byte offset of the first line not yet stored."""
    closed: bool = False
    replayed: bool = False
    """Found at start-up: its events may already be in the store (dedupe by id when storing)."""

    def done(self) -> bool:
        return self.closed and self.stored >= self.written

    def peek(self, limit: int) -> tuple[list[bytes], int]:
        """Up to ``limit`` of the lines not yet stored, in order, and the offset just after them
        (for :meth:`consume` once they are stored). Reads nothing past :attr:`size`, so a line being
        written is never seen half-written."""
        assert self.fd is not None
        lines: list[bytes] = []
        at = self.read_at
        want = min(limit, self.written - self.stored)
        while len(lines) < want and at < self.size:
            chunk = os.pread(self.fd, min(self.size - at, READ_BYTES), at)
            if not chunk:
                break
            end = chunk.rfind(b"\n")
            if end < 0:  # one line longer than a chunk
                end = os.pread(self.fd, self.size - at, at).index(b"\n")
                chunk = os.pread(self.fd, end + 1, at)
            start = 0
            while len(lines) < want:
                stop = chunk.find(b"\n", start)
                if stop < 0 or stop > end:
                    break
                lines.append(chunk[start:stop])
                start = stop + 1
            at += start
        return lines, at

    def consume(self, count: int, offset: int) -> None:
        """``count`` lines up to ``offset`` are stored; other processes learn how far (:func:`behind`)."""
        self.stored += count
        self.read_at = offset
        with open(progress_path(self.path), "w") as f:
            f.write(str(offset))

    def remove(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.path.unlink(missing_ok=True)
        progress_path(self.path).unlink(missing_ok=True)


@dataclass
class Spool:
    directory: Path
    fsync: bool = True
    current: Segment | None = None
    _pending: list[asyncio.Future[None]] = field(default_factory=list)
    _unsynced: set[Segment] = field(default_factory=set)
    _flushing: asyncio.Task[None] | None = None
    _counter: int = 0
    fsyncs: int = 0

    def _open_segment(self) -> Segment:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._counter += 1
        path = self.directory / f"spool-{os.getpid()}-{time.time_ns()}-{self._counter}.ndjson"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return Segment(path, fd)

    def write(self, event: dict[str, Any] | list[Any]) -> Segment:
        """Append ``event`` (or the facts it is built from) as one line (one ``write`` of a few hundred
        bytes to the page cache: microseconds, on the event loop's thread, no thread hop); it survives
        the death of this process as soon as this returns. Returns its segment. With ``fsync``,
        :meth:`sync` next."""
        segment = self.current
        if segment is None or segment.size >= ROTATE_BYTES:
            if segment is not None:
                segment.closed = True
            segment = self.current = self._open_segment()
        line = dumps(event) + b"\n"
        assert segment.fd is not None
        _write_all(segment.fd, line)
        segment.size += len(line)
        segment.written += 1
        if self.fsync:
            self._unsynced.add(segment)
        return segment

    async def sync(self) -> None:
        """Wait for the next group fsync of what is written (with ``fsync``; at once without)."""
        if not self.fsync:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(future)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        await asyncio.shield(future)

    async def _flush(self) -> None:
        """Group commit: one fsync per segment written for everyone waiting when it starts. A segment
        removed meanwhile (all of it stored) needs no fsync: the store has its events."""
        while self._pending:
            batch, self._pending = self._pending, []
            segments, self._unsynced = self._unsynced, set()
            try:
                for segment in segments:
                    if segment.fd is not None:
                        await asyncio.to_thread(os.fsync, segment.fd)
            except Exception as error:
                for future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.fsyncs += 1
            for future in batch:
                if not future.done():
                    future.set_result(None)

    def rotate_if_idle(self) -> Segment | None:
        """Close the current segment when all its events are stored (so it can be deleted)."""
        segment = self.current
        if segment is not None and segment.written and segment.stored >= segment.written and not self._pending:
            segment.closed = True
            self.current = None
            return segment
        return None

    def close(self) -> None:
        """Stop appending: the current segment's file is closed (its lock released)."""
        if self.current is not None:
            if self.current.fd is not None:
                os.close(self.current.fd)
                self.current.fd = None
            self.current.closed = True
            self.current = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def progress_path(segment: Path) -> Path:
    """``<segment>.stored``: the byte offset up to which the segment's events are in the store."""
    return segment.with_name(segment.name + ".stored")


def _progress(segment: Path) -> int:
    """The offset in the segment's progress file (0: none yet, or unreadable)."""
    try:
        return int(progress_path(segment).read_text() or 0)
    except (OSError, ValueError):
        return 0


DRAIN_MARKER = "drain"
"""A file in the spool directory whose modification time asks every process's writer to store
what it has spooled (a reader of AuditEvents in one worker process sees the others' events)."""


def request_drain(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / DRAIN_MARKER).touch()  # sets the modification time to now, also of an existing file


def drain_requested(directory: Path) -> int:
    """When a drain was last asked for (``time_ns``; 0: never)."""
    try:
        return (directory / DRAIN_MARKER).stat().st_mtime_ns
    except OSError:
        return 0


def spooled_elsewhere(directory: Path, own: set[Path]) -> dict[Path, int]:
    """The segments other live writers hold (not in ``own``) and their sizes now. A segment whose
    lock is free belongs to a dead process: nobody stores it before the next start replays it, so
    a reader cannot wait for it."""
    found: dict[Path, int] = {}
    if directory.is_dir():
        for path in directory.glob("spool-*.ndjson"):
            if path not in own and _held(path):
                with suppress(OSError):
                    found[path] = path.stat().st_size
    return found


def _held(path: Path) -> bool:
    """Whether a live process holds the segment's lock (flock: per open file, so this process's own
    other spools count as holders too)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def behind(sizes: dict[Path, int]) -> dict[Path, int]:
    """The segments of ``sizes`` not yet stored up to that size, with how far they are (a segment
    that is gone was stored whole). A torn last line counts as not stored until its segment is
    replayed and deleted."""
    found: dict[Path, int] = {}
    for path, size in sizes.items():
        if not path.exists():
            continue
        done = _progress(path)
        if done < size:
            found[path] = done
    return found


def orphans(directory: Path) -> Iterator[Segment]:
    """Segments left by processes that are gone (their lock is free), up to their last complete
    line (a torn last line was never acknowledged). The segment stays locked by this process until
    removed."""
    if not directory.is_dir():
        return
    for stale in directory.glob("spool-*.ndjson.stored"):
        if not stale.with_name(stale.name[:-len(".stored")]).exists():
            stale.unlink(missing_ok=True)
    for path in sorted(directory.glob("spool-*.ndjson")):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a live process is writing it
            continue
        with open(path, "rb") as f:
            data = f.read()
        size = data.rfind(b"\n") + 1
        # what the dead process had stored already (dedupe covers a crash right after a commit)
        done = data.rfind(b"\n", 0, min(_progress(path), size)) + 1
        yield Segment(path, fd, written=data.count(b"\n", 0, size), stored=data.count(b"\n", 0, done), size=size,
                      read_at=done, closed=True, replayed=True)

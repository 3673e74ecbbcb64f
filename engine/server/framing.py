"""Crash-safe records: one line per record, ``<crc32 as 8 hex digits> <JSON, ASCII only>`` and a newline.

A record is written in one ``write``; a crash can leave only the *last* line of a file torn (cut short,
or with bytes of a write that never completed). :func:`scan` reads a file's records and stops at the
first line whose checksum, length or JSON does not hold; :func:`repair` truncates a file there, so the
next record never joins a torn one (the defect "a torn last line in events.jsonl swallows the next event
after a restart"). The JSON is written with ``ensure_ascii`` so that any Python string — a lone surrogate
such as ``U+DC80`` included — is stored losslessly and the line is plain ASCII.
"""

from __future__ import annotations

import errno
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from engine.private_files import DIR_MODE, FILE_MODE


def frame(record: Any) -> bytes:
    """``record`` as one framed line (bytes, ending in a newline)."""
    payload = json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def unframe(line: bytes) -> Any | None:
    """The record of one framed line (ending in a newline), or None when the line is torn."""
    if len(line) < 11 or line[8:9] != b" " or not line.endswith(b"\n"):
        return None
    payload = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        return json.loads(payload)
    except ValueError:
        return None


def scan(file: BinaryIO, offset: int = 0) -> Iterator[tuple[int, int, Any]]:
    """``(offset, next_offset, record)`` of each whole record from ``offset``; stops at the first torn line."""
    file.seek(offset)
    for line in file:
        record = unframe(line)
        if record is None:
            return
        yield offset, offset + len(line), record
        offset += len(line)


def valid_end(path: Path, offset: int = 0) -> int:
    """The offset just after the last whole record of ``path`` counted from ``offset`` (0 when missing)."""
    try:
        with path.open("rb") as file:
            end = offset
            for record_end in (stop for _start, stop, _record in scan(file, offset)):
                end = record_end
            return end
    except FileNotFoundError:
        return 0


def repair(path: Path, offset: int = 0) -> int:
    """Truncate ``path`` after its last whole record (a torn tail is cut off); returns the new size."""
    end = valid_end(path, offset)
    if path.exists() and path.stat().st_size != end:
        os.truncate(path, end)
    return end


def open_append(path: Path) -> BinaryIO:
    """``path`` opened for appending, created ``0600`` if new (no symlink followed)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    return os.fdopen(fd, "ab", buffering=0)


def write_all(file: BinaryIO, data: bytes) -> None:
    """Write every byte of ``data`` to an unbuffered ``file``; a short write (a disk filling up) goes on.

    Raises the ``OSError`` of the write that fails (ENOSPC when the disk is full).
    """
    view = memoryview(data)
    while view:
        written = file.write(view)
        if not written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def write_atomic(path: Path, data: bytes, fsync: bool) -> None:
    """Replace ``path`` with ``data`` in one rename (a crash leaves the old or the new file, never half)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            if fsync:
                os.fsync(file.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def make_state_dir(path: Path) -> None:
    """Create ``path`` (``0700``) and check it is a writable folder, failing fast with a clear message.

    An existing folder is tightened: itself and every folder in it to ``0700``, every file to ``0600`` (a state
    folder made by an older version or by hand). Raises :class:`StateDirError` when the folder cannot be created
    or written (read-only, not a folder).
    """
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        _tighten(path)
        probe = path / ".write-probe"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        raise StateDirError(f"state folder {path.name or '.'!r} is not writable: {reason}") from None


def _tighten(path: Path) -> None:
    """``path`` and the folders under it ``0700``, the files ``0600``; symbolic links are not followed."""
    os.chmod(path, DIR_MODE)
    for folder, dirs, files in os.walk(path):
        for name in dirs:
            if not os.path.islink(os.path.join(folder, name)):
                os.chmod(os.path.join(folder, name), DIR_MODE)
        for name in files:
            file = os.path.join(folder, name)
            if not os.path.islink(file) and os.stat(file).st_mode & 0o077:
                os.chmod(file, FILE_MODE)


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC and EDQUOT (no space, quota exceeded)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class StateDirError(OSError):
    """The state folder cannot be used (read-only, missing rights, not a folder): start-up stops."""

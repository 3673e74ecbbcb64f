"""The event log: framed records in size-rotated segments, read back by cursors.

Layout: ``<state>/events/<first seq, 12 digits>.log``, each a file of :mod:`engine.server.framing` lines
(``crc32 json``), one per event: ``{"seq", "appId", "callId", "event"}``. A segment is closed once it
holds ``segment_bytes`` (default :data:`DEFAULT_SEGMENT_BYTES`) and a new one is started; segments that every
sender has passed are removed (:meth:`EventLog.remove_before`). Opening the log repairs only the newest
segment (a torn tail is truncated) and reads its last record: start-up costs one segment, whatever the
history. A batch is written in one ``write``; if it fails (a full disk) the segment is cut back to its last
whole record and the error is raised, so a failed batch leaves nothing behind and can be written again.

Durability (``fsync``): False (the default) hands each batch to the kernel — it survives ``kill -9`` and
an engine crash, not a power cut; True also ``fsync``-s each batch (and the folder when a segment starts).

Only one thread (the delivery thread) appends and reads once the log is open.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from engine.server.framing import DIR_MODE, frame, open_append, scan, write_all

DEFAULT_SEGMENT_BYTES = 1 << 20
SUFFIX = ".log"

#: A place in the log: (the segment's first seq, byte offset in it).
Position = tuple[int, int]


class EventLog:
    """Append-only, segmented, crash-safe; ``last_seq`` is the newest record's ``seq`` (0 when empty)."""

    def __init__(self, folder: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES, fsync: bool = False) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self.segments: list[int] = sorted(int(p.stem) for p in folder.glob(f"*{SUFFIX}") if p.stem.isdigit())
        self.last_seq = 0
        self._file: BinaryIO | None = None
        self._size = 0
        if self.segments:  # one pass over the newest segment: its last record, and a torn tail cut off
            newest = self._path(self.segments[-1])
            self.last_seq = self.segments[-1] - 1
            with newest.open("rb") as file:
                for _start, self._size, record in scan(file):
                    if _is_record(record):
                        self.last_seq = record["seq"]
            if newest.stat().st_size != self._size:
                os.truncate(newest, self._size)

    def _path(self, first_seq: int) -> Path:
        return self.folder / f"{first_seq:012d}{SUFFIX}"

    @property
    def end(self) -> Position:
        """The position just after the newest record."""
        return (self.segments[-1], self._size) if self.segments else (self.last_seq + 1, 0)

    def tail_records(self) -> list[dict[str, Any]]:
        """The records of the newest segment (bounded by ``segment_bytes``), oldest first."""
        if not self.segments:
            return []
        with self._path(self.segments[-1]).open("rb") as file:
            return [record for _start, _end, record in scan(file) if _is_record(record)]

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Write ``records`` (each with its ``seq``, increasing) in one write; OSError leaves nothing behind."""
        records = list(records)
        if not records:
            return
        data = b"".join(frame(record) for record in records)
        self._open_for(records[0]["seq"])
        assert self._file is not None
        try:
            write_all(self._file, data)
            if self.fsync:
                os.fsync(self._file.fileno())
        except OSError:
            self._cut_back()
            raise
        self._size += len(data)
        self.last_seq = records[-1]["seq"]

    def read(self, position: Position, max_records: int) -> tuple[list[tuple[Position, dict[str, Any]]], Position]:
        """Up to ``max_records`` whole records from ``position``: ([(record's position, record)], next position).

        Moves on to the next segment at the end of one; stops at the end of the log.
        """
        out: list[tuple[Position, dict[str, Any]]] = []
        segment, offset = position
        while len(out) < max_records:
            if not self.segments:  # empty (or every segment removed): the reader is at the end
                return out, max(position, self.end)
            index = max(0, bisect.bisect_right(self.segments, segment) - 1)
            if self.segments[index] != segment:  # that segment was removed, or the log was empty
                segment, offset = self.segments[index], 0
            newest = index == len(self.segments) - 1
            limit = self._size if newest else None
            if limit is not None and offset >= limit:
                return out, (segment, offset)
            with self._path(segment).open("rb") as file:
                for start, end, record in scan(file, offset):
                    if limit is not None and end > limit:
                        break
                    if _is_record(record):
                        out.append(((segment, start), record))
                    offset = end
                    if len(out) >= max_records:
                        return out, (segment, offset)
            if newest:
                return out, (segment, offset)
            segment, offset = self.segments[index + 1], 0
            position = (segment, offset)
        return out, (segment, offset)

    def remove_before(self, position: Position) -> int:
        """Remove the segments wholly before ``position`` (never the newest); returns how many."""
        removed = 0
        while len(self.segments) > 1 and self.segments[1] <= position[0]:
            self._path(self.segments.pop(0)).unlink(missing_ok=True)
            removed += 1
        return removed

    def sync(self) -> None:
        """``fsync`` the newest segment now, whatever the policy."""
        if self._file is not None:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the newest segment's file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- internals ------------------------------------------------------------------------------------------

    def _open_for(self, first_seq: int) -> None:
        """Have the newest segment open for appending; start a new one (at ``first_seq``) when it is full."""
        if self._file is not None and self._size < self.segment_bytes:
            return
        if self._file is None and self.segments and self._size < self.segment_bytes:
            self._file = open_append(self._path(self.segments[-1]))
            return
        self.close()
        self.segments.append(first_seq)
        self._file = open_append(self._path(first_seq))
        self._size = 0
        if self.fsync:
            fd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _cut_back(self) -> None:
        """After a failed write: drop whatever part of it reached the file."""
        assert self._file is not None
        try:
            os.ftruncate(self._file.fileno(), self._size)
        except OSError:
            pass


def _is_record(record: Any) -> bool:
    return isinstance(record, dict) and isinstance(record.get("seq"), int)

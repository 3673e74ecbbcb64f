"""The journal of live calls and accepted requests, so that a crash leaves nobody without an outcome.

``<state>/journal.log`` holds :mod:`engine.server.framing` lines: ``{"op": "call", "appId", "callId"}`` when
a call is created, ``{"op": "req", "callId"}`` when a request is accepted (written *before* ``000000`` is
answered), ``{"op": "done", "callId"}`` when a request's ``multrpt`` is in the event log and
``{"op": "end", "callId"}`` when a call has ended. A call's requests end in the order they were accepted, so
a count per call is enough. After ``kill -9``, :meth:`Journal.open_calls` tells which calls were live and
how many of their requests had no outcome; the engine reports those (``multrpt`` ``error``, then a hang-up
event with reason ``restart``) and :meth:`Journal.reset` empties the journal.

The file is rewritten as a snapshot of what is open (one atomic rename) once it grows past
``compact_bytes`` (default :data:`DEFAULT_COMPACT_BYTES`), so its size follows the live calls, not history.
The delivery side compacts, never a write that must succeed before an answer (one that finds the file four times
over the size compacts too, a backstop), and the lock is held only to copy what is open and to swap the files:
the snapshot is framed and written to disk (fsynced, so the rename has nothing left to flush) without it,
while the records written meanwhile are appended to it before the swap. A compaction that fails leaves the file
as it was (it is retried once the file has grown by another quarter of ``compact_bytes``). The next compaction
waits until the file is twice its compacted size at least (many open calls: not a compaction per record).
Writes that must succeed before an answer (``call``, ``req``) raise :class:`StateWriteError` (``108104``)
when the disk is full or failing; the other two are kept in memory and written with the next snapshot.
Thread-safe; durability follows ``fsync`` as the event log does.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, BinaryIO

from engine.errors import EngineError
from engine.server.framing import (
    FILE_MODE,
    frame,
    is_disk_full,
    open_append,
    repair,
    scan,
    write_all,
    write_atomic,
)

log = logging.getLogger(__name__)
DEFAULT_COMPACT_BYTES = 1 << 20


class StateWriteError(EngineError, OSError):
    """The state folder could not be written (full disk, I/O error): the work that needs it is refused."""


class Journal:
    """Live calls and their requests without an outcome, on disk and in memory."""

    def __init__(self, state_dir: Path, fsync: bool = False, compact_bytes: int = DEFAULT_COMPACT_BYTES) -> None:
        self.path = state_dir / "journal.log"
        self.fsync = fsync
        self.compact_bytes = compact_bytes
        self._lock = threading.Lock()
        self._calls: dict[str, list[Any]] = {}  # call id → [app id, requests without an outcome]
        self._dirty: bool | None = False  # a write failed: the file is behind memory until the next snapshot
        self._since: list[bytes] | None = None  # while a compaction writes its snapshot: the records written since
        self._compact_at = compact_bytes  # the size from which the delivery side compacts
        self._snapshots = 0  # snapshots written under the lock (a compaction that saw one meanwhile is dropped)
        repair(self.path)
        self._load()
        self._file: BinaryIO = open_append(self.path)
        self._size = self.path.stat().st_size

    # -- the HTTP side: must be on disk before the answer -------------------------------------------------

    def call_started(self, app_id: str, call_id: str) -> None:
        """Journal a new call; :class:`StateWriteError` when it cannot be written."""
        with self._lock:
            self._write({"op": "call", "appId": app_id, "callId": call_id}, must=True)
            self._calls[call_id] = [app_id, 0]

    def request_accepted(self, call_id: str) -> None:
        """Journal an accepted request of ``call_id``; :class:`StateWriteError` when it cannot be written."""
        with self._lock:
            self._write({"op": "req", "callId": call_id}, must=True)
            entry = self._calls.get(call_id)
            if entry is not None:
                entry[1] += 1

    # -- the delivery side: best effort, never raises; compacts ---------------------------------------------

    def request_ended(self, call_id: str) -> None:
        """A request of ``call_id`` has its ``multrpt`` in the event log."""
        with self._lock:
            entry = self._calls.get(call_id)
            if entry is None or entry[1] == 0:
                return
            entry[1] -= 1
            self._write({"op": "done", "callId": call_id}, must=False)
        self._compact()

    def call_ended(self, call_id: str) -> None:
        """``call_id`` has ended (its events are in the event log)."""
        with self._lock:
            if self._calls.pop(call_id, None) is not None:
                self._write({"op": "end", "callId": call_id}, must=False)
        self._compact()

    # -- start-up -------------------------------------------------------------------------------------------

    def open_calls(self) -> list[tuple[str, str, int]]:
        """``(app id, call id, requests without an outcome)`` of every call the journal holds."""
        with self._lock:
            return [(app_id, call_id, count) for call_id, (app_id, count) in self._calls.items()]

    def reset(self) -> None:
        """Forget every call (their outcomes are in the event log now)."""
        with self._lock:
            self._calls.clear()
            self._snapshot()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._file.close()

    # -- internals ------------------------------------------------------------------------------------------

    def _load(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as file:
            for _start, _end, record in scan(file):
                self._apply(record)

    def _apply(self, record: Any) -> None:
        if not isinstance(record, dict):
            return
        op, call_id = record.get("op"), record.get("callId")
        if op == "call":
            self._calls[call_id] = [record.get("appId"), int(record.get("open", 0))]
        elif op in ("req", "done") and call_id in self._calls:
            self._calls[call_id][1] = max(0, self._calls[call_id][1] + (1 if op == "req" else -1))
        elif op == "end":
            self._calls.pop(call_id, None)

    def _write(self, record: dict[str, Any], must: bool) -> None:
        try:
            if self._dirty or (self._since is None and self._size >= 4 * self.compact_bytes):
                self._snapshot()
            data = frame(record)
            write_all(self._file, data)
            if self.fsync:
                os.fsync(self._file.fileno())
            self._size += len(data)
            if self._since is not None:
                self._since.append(data)
        except OSError as exc:
            self._cut_back()
            what = "the disk is full" if is_disk_full(exc) else os.strerror(exc.errno or 0) or type(exc).__name__
            if not self._dirty:
                log.error("state folder: cannot write the journal (%s): work that needs it is refused (108104) "
                          "until it can be written again", what)
            self._dirty = True
            if must:
                raise StateWriteError(f"state: cannot be written ({what})") from None
            return
        if self._dirty is None:
            log.warning("state folder: the journal is written again")
            self._dirty = False

    def _compact(self) -> None:
        """Rewrite the file as what is open, holding the lock only to copy it and to swap the files (docstring)."""
        with self._lock:
            if self._size < self._compact_at or self._since is not None or self._dirty is not False:
                return
            open_now = [(app_id, call_id, count) for call_id, (app_id, count) in self._calls.items()]
            self._since, snapshots = [], self._snapshots
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            data = _snapshot_of(open_now)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
            with os.fdopen(fd, "wb", buffering=0) as file:
                write_all(file, data)
                os.fsync(file.fileno())  # the rename then has (almost) nothing to flush: the lock is not held long
                with self._lock:
                    since, self._since = b"".join(self._since or ()), None
                    if self._dirty is not False or self._snapshots != snapshots:
                        raise OSError(0, "a write failed or a snapshot was written meanwhile")
                    write_all(file, since)
                    if self.fsync:
                        os.fsync(file.fileno())
                    self._swap(tmp, len(data) + len(since))
        except OSError as exc:
            with self._lock:
                self._since = None
                self._compact_at = self._size + self.compact_bytes // 4
            tmp.unlink(missing_ok=True)
            log.warning("state folder: the journal could not be compacted (%s); it is kept as it is",
                        os.strerror(exc.errno or 0) or type(exc).__name__)

    def _swap(self, tmp: Path, size: int) -> None:
        """(Lock held.) ``tmp`` becomes the journal; if it cannot be reopened, the next write snapshots first."""
        os.replace(tmp, self.path)
        try:
            file = open_append(self.path)
        except OSError:
            self._dirty = True  # the open handle is the replaced file's: the next write rewrites from memory
            raise
        self._file.close()
        self._file = file
        self._size = size
        self._compact_at = max(self.compact_bytes, 2 * size)  # many open calls: not a compaction per record

    def _snapshot(self) -> None:
        """Rewrite the file as what is open now, the lock held (raises OSError; memory is unchanged then)."""
        self._snapshots += 1
        data = _snapshot_of([(app_id, call_id, count) for call_id, (app_id, count) in self._calls.items()])
        write_atomic(self.path, data, self.fsync)
        self._file.close()
        self._file = open_append(self.path)
        self._size = len(data)
        self._dirty = None if self._dirty else False  # None: recovered, said once by _write

    def _cut_back(self) -> None:
        try:
            os.ftruncate(self._file.fileno(), self._size)
        except OSError:
            pass


def _snapshot_of(open_now: list[tuple[str, str, int]]) -> bytes:
    """The journal's lines for the calls open now: ``(app id, call id, requests without an outcome)``."""
    return b"".join(frame({"op": "call", "appId": app_id, "callId": call_id, "open": count})
                    for app_id, call_id, count in open_now)

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
from engine.server.framing import frame, is_disk_full, open_append, repair, scan, write_all, write_atomic

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

    # -- the delivery side: best effort, never raises ------------------------------------------------------

    def request_ended(self, call_id: str) -> None:
        """A request of ``call_id`` has its ``multrpt`` in the event log."""
        with self._lock:
            entry = self._calls.get(call_id)
            if entry is None or entry[1] == 0:
                return
            entry[1] -= 1
            self._write({"op": "done", "callId": call_id}, must=False)

    def call_ended(self, call_id: str) -> None:
        """``call_id`` has ended (its events are in the event log)."""
        with self._lock:
            if self._calls.pop(call_id, None) is not None:
                self._write({"op": "end", "callId": call_id}, must=False)

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
            if self._dirty or self._size >= self.compact_bytes:
                self._snapshot()
            data = frame(record)
            write_all(self._file, data)
            if self.fsync:
                os.fsync(self._file.fileno())
            self._size += len(data)
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

    def _snapshot(self) -> None:
        """Rewrite the file as what is open now (raises OSError; memory is unchanged then)."""
        data = b"".join(frame({"op": "call", "appId": app_id, "callId": call_id, "open": count})
                        for call_id, (app_id, count) in self._calls.items())
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

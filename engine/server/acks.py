"""Which events each application has acknowledged, kept so that a restart neither re-reads nor re-sends history.

Per application: ``position`` — a place in the event log before which every one of its events is
acknowledged — and the ``seq`` of events acknowledged after it (out of order, as calls are sent at once).
On disk: ``<state>/acks.json`` (a checkpoint, replaced atomically) and ``<state>/acks.log`` (framed
``{"a": appId, "s": seq}`` lines since the checkpoint). A checkpoint is written every ``checkpoint_every``
acknowledgements (default :data:`DEFAULT_CHECKPOINT_EVERY`) and at close, and then the line file is emptied:
both stay small whatever the history. Lines are written in one batch per sender pass (:meth:`AckBook.flush`);
a crash loses at most that pass's lines. A write that fails (full disk) is logged and memory goes on. Either
way the events concerned are sent again after a restart (at least once, never lost).

Used by the delivery thread only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, BinaryIO

from engine.server.event_log import Position
from engine.server.framing import frame, open_append, repair, scan, write_all, write_atomic

log = logging.getLogger(__name__)
DEFAULT_CHECKPOINT_EVERY = 10_000


class AckBook:
    """Acknowledgement state per application, on disk in two small files."""

    def __init__(self, state_dir: Path, fsync: bool = False,
                 checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY) -> None:
        self.checkpoint_path = state_dir / "acks.json"
        self.lines_path = state_dir / "acks.log"
        self.fsync = fsync
        self.checkpoint_every = checkpoint_every
        self.positions: dict[str, Position] = {}
        self.acked: dict[str, set[int]] = {}
        self._lines = 0
        self._failing = False
        self._buffer: list[bytes] = []
        self._load()
        self._file: BinaryIO = open_append(self.lines_path)
        self._size = self.lines_path.stat().st_size

    def position(self, app_id: str) -> Position | None:
        """Where ``app_id``'s sender starts reading (None: from the log's beginning)."""
        return self.positions.get(app_id)

    def ack(self, app_id: str, seq: int) -> None:
        """``app_id`` acknowledged event ``seq`` (written by the next :meth:`flush` or checkpoint)."""
        self.acked.setdefault(app_id, set()).add(seq)
        self._buffer.append(frame({"a": app_id, "s": seq}))
        self._lines += 1
        if self._lines >= self.checkpoint_every:
            self.checkpoint()

    def flush(self) -> None:
        """Write the acknowledgements since the last flush (one write; logged, not raised, on failure)."""
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        try:
            write_all(self._file, data)
            self._size += len(data)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._file.fileno(), self._size)  # no torn line for the next one to join
            if not self._failing:
                log.error("state folder: cannot record acknowledgements (%s); kept in memory",
                          os.strerror(exc.errno or 0))
            self._failing = True

    def passed(self, app_id: str, position: Position, seqs: list[int]) -> None:
        """Every event of ``app_id`` before ``position`` is acknowledged; ``seqs`` are no longer needed."""
        self.positions[app_id] = position
        kept = self.acked.get(app_id)
        if kept:
            kept.difference_update(seqs)

    def checkpoint(self) -> None:
        """Write the checkpoint and empty the line file (logged, not raised, on failure)."""
        state = {app: {"position": list(pos), "acked": sorted(self.acked.get(app, ()))}
                 for app, pos in self.positions.items()}
        for app, seqs in self.acked.items():
            if app not in state and seqs:
                state[app] = {"position": None, "acked": sorted(seqs)}
        try:
            write_atomic(self.checkpoint_path, json.dumps(state).encode(), self.fsync)
            self._buffer.clear()
            os.ftruncate(self._file.fileno(), 0)
            self._lines = self._size = 0
            self._failing = False
        except OSError as exc:
            if not self._failing:
                log.error("state folder: cannot write the acknowledgement checkpoint (%s)",
                          os.strerror(exc.errno or 0))
            self._failing = True

    def close(self) -> None:
        """Checkpoint and close."""
        self.checkpoint()
        self._file.close()

    def _load(self) -> None:
        try:
            state: Any = json.loads(self.checkpoint_path.read_bytes())
        except (OSError, ValueError):
            state = {}
        for app, entry in state.items() if isinstance(state, dict) else ():
            if entry.get("position") is not None:
                self.positions[app] = (int(entry["position"][0]), int(entry["position"][1]))
            self.acked[app] = set(entry.get("acked", ()))
        repair(self.lines_path)
        if self.lines_path.exists():
            with self.lines_path.open("rb") as file:
                for _start, _end, record in scan(file):
                    if isinstance(record, dict):
                        self.acked.setdefault(str(record.get("a")), set()).add(record.get("s"))
                        self._lines += 1

"""The media loop: one tick advances every call by one 20 ms frame, with key detection batched across calls.

The loop itself keeps no time: a driver calls :meth:`MediaLoop.tick` — as fast as possible to render, or at
the pace of an injected clock for live calls (:mod:`engine.media.pacer`).

Per tick: a play pass, a hear pass and one batched DTMF analysis of a preallocated (rows, 160) array. The
play pass ticks (:meth:`Call.tick <engine.media.call.Call.tick>`, no samples asked when the sink discards them)
only the calls not in a quiet run (:mod:`engine.media.runs`: frames that only move time on, one index each).
The hear pass reads callers with :meth:`~engine.audio.caller.CallerStream.read_into` (no allocation; a silent
caller's row is left alone once silent). Calls whose caller is a row of a shared object (an RTP session of the
hub: :mod:`engine.media.rows`) take no per-call step there: the port moves all their caller frames and played
frames at once. The media thread's CPU time per pass is kept in :attr:`MediaLoop.cpu_ns`.

Each call owns one row of that array and one channel of the detector. A call that leaves frees its row (the
row is silenced and its detector channel reset); the next call to arrive takes a free row. Rows are added
only when none is free, at the start of the next tick, in one step for all the calls that arrived and at least
a quarter of the rows already there: setting calls up and hanging them up costs the loop O(1) per call, never a
copy of every channel's state per call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.audio.stream import row_reader
from engine.dtmf.detector import BatchDtmfDetector
from engine.format import SAMPLE_DTYPE, SAMPLES_PER_FRAME, SILENT_FRAME
from engine.media.call import Call
from engine.media.rows import PortRows
from engine.media.runs import QuietRows
from engine.media.sinks import NullSink, Sink

log = logging.getLogger(__name__)
#: ``listener(frame, call) -> keep``: hears the call's caller frame each tick (False: stop listening).
Listener = Callable[[np.ndarray, Call], bool]
_FRAME = SAMPLES_PER_FRAME
#: Rows are added at least this fraction of the rows already there at a time (amortised O(1) per call).
GROWTH = 0.25

class _FreeRow:
    """What a free row holds: nothing plays there and nothing is heard."""

    __slots__ = ()

    def tick(self, keep: bool) -> None:
        """Nothing to play (nothing is heard either: the row was silenced when it was freed)."""


_FREE = _FreeRow()


class MediaLoop:
    """Every live call, ticked together; each call owns one row of the batched DTMF detector.

    A call whose tick raises is not allowed to stop the others: the error is logged and its current request
    ends with result ``error`` (:meth:`Call.fail`); ``failures`` counts them, ``failed`` lists the calls of
    the last tick, in row order (the live server hangs them up).
    """

    def __init__(self) -> None:
        self.detector = BatchDtmfDetector(0)
        self.ticks = 0
        self.failures = 0
        self.failed: list[Call] = []  # the calls that failed in the last tick
        # per row: the call (None: a free row), its Call.tick asking for the frame only when the sink records,
        # the frame it played in this tick; by row, the callers read one by one and the sinks written one by one
        self._rows: list[Call | None] = []
        self._playing: list[Call | _FreeRow] = []  # what the play pass ticks (methods called on the objects)
        self._keep: list[bool] = []  # the call's sink records: its frames are wanted
        self._frames: list[np.ndarray | None] = []
        self._into_rows: list[bool] = []  # the call's frames go to a row port: into its row of ``_played``
        self._hearing: dict[int, Any] = {}  # what the hear pass reads (objects with ``read_into``)
        self._sinks: dict[int, Sink] = {}
        self._ports = PortRows()  # the calls served by row ports (no per-call read or write)
        self._runs = QuietRows()  # the rows playing quiet runs (no per-call tick)
        self._row_of: dict[Call, int] = {}
        self._free: list[int] = []  # free rows, reused last freed first
        self._heard = np.zeros((0, _FRAME), dtype=SAMPLE_DTYPE)
        self._played = np.zeros((0, _FRAME), dtype=SAMPLE_DTYPE)  # by row: the frames row ports take
        #: The media thread's CPU time in each pass of :meth:`tick` since the start (ns): playing every call,
        #: hearing every caller (and recording), detecting keys (and acting on them).
        self.cpu_ns = {"play": 0, "hear": 0, "detect": 0}
        self._listeners: dict[str, Listener] = {}  # by call id: the few calls whose caller someone hears

    def listen(self, call_id: str, listener: Listener) -> None:
        """Hand each frame heard from ``call_id``'s caller to ``listener`` (media thread; replaces any other).

        A call that is not ticked (already removed) gets no listener.
        """
        if any(call.call_id == call_id for call in self.calls):
            self._listeners[call_id] = listener

    @property
    def calls(self) -> list[Call]:
        """The calls being ticked, in row order."""
        return [call for call in self._rows if call is not None]

    def __len__(self) -> int:
        return len(self._row_of)

    @property
    def gathered_frames(self) -> int:
        """Frames of quiet runs played into row ports by one gather per source (:mod:`engine.media.run_sources`)."""
        return self._runs.gathered

    @property
    def rows(self) -> int:
        """Rows of the detector's input (live calls and free rows)."""
        return len(self._rows)

    def add(self, call: Call) -> None:
        """Start ticking ``call`` at the next tick (its caller audio gets a fresh detector channel)."""
        if call in self._row_of:
            raise ValueError(f"call {call.call_id} is already in the loop")
        if self._free:
            row = self._free.pop()
        else:
            row = len(self._rows)
            self._append_free_row()
        heard_by_port, played_to_port = self._ports.bind(call, call.caller, call.sink, row)
        self._rows[row] = self._playing[row] = call
        self._keep[row] = played_to_port or not isinstance(call.sink, NullSink)
        self._into_rows[row] = played_to_port
        self._runs.want(row, self._keep[row], played_to_port)
        if not heard_by_port:
            self._hearing[row] = row_reader(call.caller)
        if self._keep[row] and not played_to_port:
            self._sinks[row] = call.sink
        self._row_of[call] = row

    def remove(self, call: Call) -> None:
        """Stop ticking ``call`` and close its sink; its row is silenced and freed."""
        row = self._row_of.pop(call)
        call.end_run()
        self._runs.want(row, False)
        self._ports.unbind(call, call.caller, row)
        self._rows[row] = None
        self._playing[row] = _FREE
        self._hearing.pop(row, None)
        self._sinks.pop(row, None)
        self._keep[row] = self._into_rows[row] = False
        self._frames[row] = None
        self._free.append(row)
        if row < self.detector.channels:
            self.detector.reset_channel(row)
            self._heard[row] = 0  # silent for the next caller
        self._listeners.pop(call.call_id, None)
        call.sink.close()

    def _append_free_row(self) -> None:
        self._rows.append(None)
        self._playing.append(_FREE)
        self._keep.append(False)
        self._into_rows.append(False)
        self._frames.append(None)

    def _grow(self) -> None:
        """Give every row its array row and detector channel: one step, at least :data:`GROWTH` more rows."""
        have, need = self.detector.channels, len(self._rows)
        more = max(need - have, int(have * GROWTH))
        for _ in range(more - (need - have)):  # spare rows, free for the next calls to arrive
            self._append_free_row()
        self._free[:0] = range(have + more - 1, need - 1, -1)  # taken lowest first, after the freed ones
        self.detector.add_channels(more)
        self._heard = np.concatenate([self._heard, np.zeros((more, _FRAME), dtype=SAMPLE_DTYPE)])
        self._played = np.concatenate([self._played, np.zeros((more, _FRAME), dtype=SAMPLE_DTYPE)])

    def tick(self) -> None:
        """Advance every call by one frame: play, hear, record, then detect keys in one batch.

        Passes over the calls (each call is played before it is heard and recorded); the media thread's CPU time
        of each goes to :attr:`cpu_ns`.
        """
        if len(self._rows) > self.detector.channels:
            self._grow()
        heard = self._heard
        failed_rows: set[int] = set()
        clock = time.thread_time_ns
        t0 = clock()
        self._play(failed_rows)
        t1 = clock()
        held = self._hear(heard, failed_rows)
        if self._listeners:
            self._tell_listeners(heard)
        self._record(heard, failed_rows)
        rows = self._rows
        # in row order, as one pass would find them
        failed = [call for row in sorted(failed_rows) if (call := rows[row]) is not None]
        t2 = clock()
        self._detect(heard, held, failed)
        for call in failed:
            self.failures += 1
            call.fail()
        self.failed = failed
        self.ticks += 1
        cpu = self.cpu_ns
        cpu["play"] += t1 - t0
        cpu["hear"] += t2 - t1
        cpu["detect"] += clock() - t2

    def _play(self, failed_rows: set[int]) -> None:
        """Play every call (a row in a quiet run from it, the others ticked and offered a run): frames by row.

        A frame is None when not wanted, silence when the call's tick failed.
        """
        keep, frames, playing, rows, runs = self._keep, self._frames, self._playing, self._rows, self._runs
        listeners, into_rows, played = self._listeners, self._into_rows, self._played
        for row in runs.play(len(playing), frames, played):
            call = playing[row]
            try:
                frames[row] = frame = call.tick(keep[row])
                if into_rows[row]:
                    played[row] = frame
                if rows[row] is not None and not (listeners and call.call_id in listeners):  # type: ignore[union-attr]
                    runs.offer(call, row)  # type: ignore[arg-type]
            except Exception:
                frames[row] = SILENT_FRAME
                if into_rows[row]:
                    played[row] = 0
                self._failed_row(row, failed_rows)

    def _record(self, heard: np.ndarray, failed_rows: set[int]) -> None:
        """Each frame played, with the caller's, to its call's sink (ports: all their rows at once)."""
        frames = self._frames
        for row, sink in self._sinks.items():
            if row not in failed_rows:
                try:
                    sink.write(frames[row], heard[row])  # type: ignore[arg-type]
                except Exception:
                    self._failed_row(row, failed_rows)
        self._ports.write(self._played)

    def _tell_listeners(self, heard: np.ndarray) -> None:
        """Hand each listened-to call its caller's frame (rare: a voicemail's silence watch)."""
        listeners = self._listeners
        for call, row in list(self._row_of.items()):
            listener = listeners.get(call.call_id)
            if listener is None:
                continue
            try:
                keep = listener(heard[row], call)
            except Exception:
                log.exception("a listener of call %s failed", call.call_id)
                keep = False
            if not keep and listeners.get(call.call_id) is listener:
                del listeners[call.call_id]


    def _hear(self, heard: np.ndarray, failed_rows: set[int]) -> np.ndarray | None:
        """Read every caller's frame into its row of ``heard``; the rows holding no audio this tick (or None).

        Rows in ``failed_rows`` are skipped, and join it when their caller fails.
        """
        hearing = self._hearing
        if failed_rows:  # rare: a copy in which the failed rows are not read
            hearing = {row: caller for row, caller in hearing.items() if row not in failed_rows}
        for row, caller in hearing.items():
            try:
                caller.read_into(heard, row)
            except Exception:
                self._failed_row(row, failed_rows)
        return self._ports.read(heard)

    def _detect(self, heard: np.ndarray, held: np.ndarray | None, failed: list[Call]) -> None:
        """Detect keys in every row at once and hand each to its call (a call that fails joins ``failed``).

        ``held``: rows whose frame is no audio this tick (a jitter buffer's wait): the detector holds them.
        """
        try:
            detected = self.detector.process(heard, held)
        except Exception:  # no keys this tick rather than no media thread
            log.exception("key detection failed for %d calls", len(self._row_of))
            return
        rows = self._rows
        for row, event in detected:
            call = rows[row]
            if call is None:
                continue
            try:
                call.on_key(event)
            except Exception:
                log.exception("call %s failed on a key", call.call_id)
                failed.append(call)

    def _failed_row(self, row: int, failed_rows: set[int]) -> None:
        call = self._rows[row]
        log.exception("call %s failed in the media loop", call.call_id if call else "?")
        failed_rows.add(row)

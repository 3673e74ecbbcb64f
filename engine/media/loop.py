"""The media loop: one tick advances every call by one 20 ms frame, with key detection batched across calls.

The loop itself keeps no time: a driver calls :meth:`MediaLoop.tick` — as fast as possible to render, or at
the pace of an injected clock for live calls (:mod:`engine.media.pacer`).

Per tick the cost is two passes over the calls in Python plus one batched DTMF analysis of a preallocated
(calls, 160) array. The play pass is kept lean: idle calls cost a few attribute reads, a playing call mostly
one compare (:attr:`~engine.core.player.RequestPlayer.fast_last`) and, only when its sink records (not for a
:class:`~engine.media.sinks.NullSink`), a slice. The hear pass reads callers from a buffer
(:class:`~engine.audio.caller.CallerAudio`) without allocating, and not at all while they are silent: their row of
the array is zeroed once and then left alone. The media thread's CPU time per pass is kept in
:attr:`MediaLoop.cpu_ns`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from engine.audio.caller import CallerAudio
from engine.dtmf.detector import BatchDtmfDetector
from engine.format import SAMPLE_DTYPE, SAMPLES_PER_FRAME
from engine.media.call import Call
from engine.media.sinks import NullSink, Sink

log = logging.getLogger(__name__)
#: ``listener(frame, call) -> keep``: hears the call's caller frame each tick (False: stop listening).
Listener = Callable[[np.ndarray, Call], bool]
_FRAME = SAMPLES_PER_FRAME
_SILENT = np.zeros(_FRAME, dtype=SAMPLE_DTYPE)
_SILENT.setflags(write=False)


class MediaLoop:
    """Every live call, ticked together; each call owns one channel of the batched DTMF detector.

    A call whose tick raises is not allowed to stop the others: the error is logged and its current request
    ends with result ``error`` (:meth:`Call.fail`); ``failures`` counts them, ``failed`` lists the calls of
    the last tick (the live server hangs them up).
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.detector = BatchDtmfDetector(0)
        self.ticks = 0
        self.failures = 0
        self.failed: list[Call] = []  # the calls that failed in the last tick
        self._heard = np.zeros((16, _FRAME), dtype=SAMPLE_DTYPE)
        self._dirty: list[bool] = [False] * 16  # rows that may hold non-silence from the last tick
        # per call, parallel to ``calls``: the caller if it is a buffer read in place (else None), the sink
        # unless it discards (else None)
        self._buffered: list[CallerAudio | None] = []
        self._sinks: list[Sink | None] = []
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

    def add(self, call: Call) -> None:
        """Start ticking ``call`` (its caller audio gets a fresh detector channel)."""
        self.calls.append(call)
        self.detector.add_channel()
        self._buffered.append(call.caller if type(call.caller).read is CallerAudio.read else None)
        self._sinks.append(None if isinstance(call.sink, NullSink) else call.sink)
        if len(self.calls) > len(self._heard):
            grown = np.zeros((2 * len(self._heard), _FRAME), dtype=SAMPLE_DTYPE)
            grown[: len(self._heard)] = self._heard
            self._heard = grown
            self._dirty.extend([False] * len(self._dirty))

    def remove(self, call: Call) -> None:
        """Stop ticking ``call`` and close its sink."""
        index = self.calls.index(call)
        self.detector.remove_channel(index)
        self.calls.pop(index)
        self._buffered.pop(index)
        self._sinks.pop(index)
        n = len(self.calls)
        self._heard[index:n] = self._heard[index + 1 : n + 1]
        self._heard[n] = 0
        del self._dirty[index]
        self._dirty.append(False)
        self._listeners.pop(call.call_id, None)
        call.sink.close()

    def tick(self) -> None:
        """Advance every call by one frame: play, hear, record, then detect keys in one batch.

        Passes over the calls (each call is played before it is heard and recorded); the media thread's CPU time
        of each goes to :attr:`cpu_ns`.
        """
        calls = self.calls
        heard = self._heard[: len(calls)]
        sinks = self._sinks
        failed_rows: set[int] = set()
        recorded: list[tuple[int, np.ndarray]] = []  # (row, frame played) of the calls whose sink records
        clock = time.thread_time_ns
        t0 = clock()
        for row, call in enumerate(calls):
            try:
                sink = sinks[row]
                player = call.player
                if player is not None:  # Call.next_frame, inlined
                    call.position += _FRAME
                    if sink is not None:
                        recorded.append((row, player.next_frame()))
                    else:  # the frame would go nowhere: only time moves on (RequestPlayer.skip_frame, inlined)
                        position = player.position
                        if position <= player.fast_last:
                            player.position = position + _FRAME
                        else:
                            player.skip_frame()
                    if player.events:
                        call.drain_events(player)
                elif call.pending and not call.hung_up:
                    frame = call.next_frame()
                    if sink is not None:
                        recorded.append((row, frame))
                else:
                    call.position += _FRAME  # idle: silence, nothing to drain
                    if sink is not None:
                        recorded.append((row, _SILENT))
            except Exception:
                self._failed_row(row, failed_rows)
        t1 = clock()
        self._hear(heard, failed_rows)
        if self._listeners:
            self._tell_listeners(heard)
        for row, frame in recorded:
            if row not in failed_rows:
                try:
                    sinks[row].write(frame, heard[row])  # type: ignore[union-attr]
                except Exception:
                    self._failed_row(row, failed_rows)
        failed = [calls[row] for row in sorted(failed_rows)]  # in call order, as one pass would find them
        t2 = clock()
        try:
            detected = self.detector.process(heard)
        except Exception:  # no keys this tick rather than no media thread
            log.exception("key detection failed for %d calls", len(calls))
            detected = []
        for channel, event in detected:
            try:
                calls[channel].on_key(event)
            except Exception:
                log.exception("call %s failed on a key", calls[channel].call_id)
                failed.append(calls[channel])
        for call in failed:
            self.failures += 1
            call.fail()
        self.failed = failed
        self.ticks += 1
        cpu = self.cpu_ns
        cpu["play"] += t1 - t0
        cpu["hear"] += t2 - t1
        cpu["detect"] += clock() - t2

    def _tell_listeners(self, heard: np.ndarray) -> None:
        listeners = self._listeners
        for row, call in enumerate(self.calls):
            listener = listeners.get(call.call_id)
            if listener is not None:
                try:
                    keep = listener(heard[row], call)
                except Exception:
                    log.exception("a listener of call %s failed", call.call_id)
                    keep = False
                if not keep and listeners.get(call.call_id) is listener:
                    del listeners[call.call_id]

    def _failed_row(self, row: int, failed_rows: set[int]) -> None:
        log.exception("call %s failed in the media loop", self.calls[row].call_id)
        failed_rows.add(row)

    def _hear(self, heard: np.ndarray, failed_rows: set[int]) -> None:
        """Read every caller's frame into its row of ``heard``.

        Rows in ``failed_rows`` are skipped, and join it when their caller fails.
        """
        calls = self.calls
        dirty = self._dirty
        for row, caller in enumerate(self._buffered):
            if failed_rows and row in failed_rows:
                continue
            try:
                if caller is not None:  # CallerAudio.read, without allocating, nor copying silence
                    start = caller.position
                    end = caller.position = start + _FRAME
                    if end > caller.sound_start:
                        caller.copy_into(heard[row], start)
                        dirty[row] = True
                    elif dirty[row]:  # silent: the row is zeroed once, then left alone
                        heard[row] = 0
                        dirty[row] = False
                else:
                    heard[row] = calls[row].caller.read(_FRAME)
                    dirty[row] = True
            except Exception:
                self._failed_row(row, failed_rows)

"""The media loop: one tick advances every call by one 20 ms frame, with key detection batched across calls.

The loop itself keeps no time: a driver calls :meth:`MediaLoop.tick` — as fast as possible to render, or at
the pace of an injected clock for live calls (:mod:`engine.pacer`).

Per tick the cost is one pass over the calls in Python plus one batched DTMF analysis of a preallocated
(calls, 160) array. The pass is kept lean: idle calls and silent callers cost a few attribute reads, callers
reading from a buffer (:class:`~engine.caller.CallerAudio`) are read without allocating, and sinks that
discard (:class:`~engine.sinks.NullSink`) are not called.
"""

from __future__ import annotations

import logging

import numpy as np

from .call import Call
from .caller import CallerAudio
from .dtmf import BatchDtmfDetector
from .format import SAMPLE_DTYPE, SAMPLES_PER_FRAME
from .sinks import NullSink

log = logging.getLogger(__name__)
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
        # per call: (buffered caller or None, recording sink or None), parallel to ``calls``
        self._fast: list[tuple[CallerAudio | None, object | None]] = []

    def add(self, call: Call) -> None:
        """Start ticking ``call`` (its caller audio gets a fresh detector channel)."""
        self.calls.append(call)
        self.detector.add_channel()
        caller = call.caller if type(call.caller).read is CallerAudio.read else None
        sink = None if isinstance(call.sink, NullSink) else call.sink
        self._fast.append((caller, sink))
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
        self._fast.pop(index)
        n = len(self.calls)
        self._heard[index:n] = self._heard[index + 1 : n + 1]
        self._heard[n] = 0
        del self._dirty[index]
        self._dirty.append(False)
        call.sink.close()

    def tick(self) -> None:
        """Advance every call by one frame: play, hear, record, then detect keys in one batch."""
        calls = self.calls
        heard = self._heard[: len(calls)]
        dirty = self._dirty
        fast = self._fast
        failed: list[Call] = []
        for row, call in enumerate(calls):
            try:
                player = call.player
                if player is not None:  # Call.next_frame, inlined
                    call.position += _FRAME
                    frame = player.next_frame()
                    if player.events:
                        call.drain_events(player)
                elif call.pending and not call.hung_up:
                    frame = call.next_frame()
                else:
                    call.position += _FRAME  # idle: silence, nothing to drain
                    frame = None
                caller, sink = fast[row]
                if caller is not None:  # CallerAudio.read, without allocating
                    start = caller.position
                    caller.position = start + _FRAME
                    samples = caller.samples
                    if start + _FRAME <= samples.shape[0]:
                        heard[row] = samples[start : start + _FRAME]
                        dirty[row] = True
                    elif dirty[row] or start < samples.shape[0]:
                        heard[row] = 0
                        if start < samples.shape[0]:
                            tail = samples[start:]
                            heard[row, : tail.shape[0]] = tail
                        dirty[row] = start < samples.shape[0]
                else:
                    heard[row] = call.caller.read(_FRAME)
                    dirty[row] = True
                if sink is not None:
                    sink.write(_SILENT if frame is None else frame, heard[row])
            except Exception:
                log.exception("call %s failed in the media loop", call.call_id)
                failed.append(call)
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

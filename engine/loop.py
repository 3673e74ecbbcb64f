"""The media loop: one tick advances every call by one 20 ms frame, with key detection batched across calls.

The loop itself keeps no time: a driver calls :meth:`MediaLoop.tick` — as fast as possible to render, or at
the pace of an injected clock for live calls (:mod:`engine.pacer`).
"""

from __future__ import annotations

import numpy as np

from .call import Call
from .dtmf import BatchDtmfDetector
from .format import SAMPLE_DTYPE, SAMPLES_PER_FRAME


class MediaLoop:
    """Every live call, ticked together; each call owns one channel of the batched DTMF detector."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.detector = BatchDtmfDetector(0)
        self.ticks = 0

    def add(self, call: Call) -> None:
        """Start ticking ``call`` (its caller audio gets a fresh detector channel)."""
        self.calls.append(call)
        self.detector.add_channel()

    def remove(self, call: Call) -> None:
        """Stop ticking ``call`` and close its sink."""
        index = self.calls.index(call)
        self.detector.remove_channel(index)
        self.calls.pop(index)
        call.sink.close()

    def tick(self) -> None:
        """Advance every call by one frame: play, hear, detect keys, record."""
        calls = self.calls
        played = [call.next_frame() for call in calls]
        heard = np.empty((len(calls), SAMPLES_PER_FRAME), dtype=SAMPLE_DTYPE)
        for row, call in enumerate(calls):
            heard[row] = call.caller.read(SAMPLES_PER_FRAME)
        for channel, event in self.detector.process(heard):
            calls[channel].on_key(event)
        for row, call in enumerate(calls):
            call.sink.write(played[row], heard[row])
        self.ticks += 1

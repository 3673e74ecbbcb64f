"""A bounded queue of 20 ms frames between a media loop (the producer) and a sound device's callback.

The callback never waits: an empty queue is played as silence and counted as an *underflow*; a full queue
makes a blocking producer wait (the pacing of ``play``: the loop never reads a clock) or, for a producer with
its own pace (a server call), drops the frame and counts an *overflow*.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np

#: Queue length for ``play``: 10 frames = 200 ms, filled before the stream starts.
QUEUE_FRAMES = 10
END = object()  # FrameQueue.pop: no frame will ever come again


class FrameQueue:
    """Bounded FIFO of frames between a producer thread and the device callback.

    ``capacity_frames``: most frames held; ``prefill_frames``: frames needed before popping starts, and
    again after an underflow (default: the capacity). Counters: ``underflows`` (pops that found the primed
    queue empty, and those played as silence while it refilled), ``overflows`` (frames refused by
    :meth:`offer`), ``popped``, ``pushed``.
    """

    def __init__(self, capacity_frames: int = QUEUE_FRAMES, prefill_frames: int | None = None) -> None:
        self.capacity_frames = capacity_frames
        self.prefill_frames = min(capacity_frames, prefill_frames or capacity_frames)
        self._frames: deque[np.ndarray] = deque()
        self._cond = threading.Condition()
        self._primed = False
        self._started = False  # primed at least once: from then on, missing frames are underflows
        self.finished = False  # the producer put its last frame
        self.closed = False  # the consumer is gone: producers stop waiting
        self.underflows = self.overflows = self.popped = self.pushed = 0

    @property
    def ready(self) -> bool:
        """Enough frames queued to start playing (or the producer is done)."""
        return len(self._frames) >= self.prefill_frames or self.finished

    def put(self, frame: np.ndarray, timeout_s: float | None = None) -> bool:
        """Queue ``frame``, waiting up to ``timeout_s`` (None: for ever) for room; False if not queued."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.closed or len(self._frames) < self.capacity_frames,
                                       timeout_s) or self.closed:
                return False
            self._frames.append(frame)
            self.pushed += 1
            return True

    def offer(self, frame: np.ndarray) -> bool:
        """Queue ``frame`` if there is room, else drop it and count an overflow; never waits."""
        with self._cond:
            if len(self._frames) >= self.capacity_frames:
                self.overflows += 1
                return False
            self._frames.append(frame)
            self.pushed += 1
            return True

    def pop(self) -> Any:
        """The next frame; None (play silence) when not primed or empty; :data:`END` once all are played."""
        with self._cond:
            frames = self._frames
            if not self._primed:
                if not frames and self.finished:
                    return END
                if len(frames) < self.prefill_frames and not self.finished:
                    self.underflows += self._started
                    return None
                self._primed = self._started = True
            if frames:
                self.popped += 1
                self._cond.notify()
                return frames.popleft()
            if self.finished:
                return END
            self.underflows += 1
            self._primed = False
            return None

    @property
    def drained(self) -> bool:
        """The producer is done and every frame has been popped."""
        return self.finished and not self._frames

    def finish(self) -> None:
        """The producer's last frame is queued."""
        with self._cond:
            self.finished = True

    def close(self) -> None:
        """The consumer is gone: waiting producers return at once, later puts are refused."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

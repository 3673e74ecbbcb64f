"""Clocks and the real-time driver of the media loop: one tick per 20 ms frame at absolute deadlines.

The pacer ticks at ``t0 + k·period`` (no drift: a late tick does not push the next deadline). Each tick's
*lateness* is ``now − deadline`` when it starts. A tick starting more than one period after its deadline is a
*missed frame*. Catching up: a late pacer ticks again at once, without sleeping and without skipping a
deadline, so a phone call never loses audio — a stall delays frames (the far end's jitter buffer absorbs
that) but drops none. Only when the pacer falls more than ``max_behind_s`` (default 1 s) behind (a stopped
process, a suspended machine) does it re-anchor its deadlines to now (counted in ``resyncs``): frames still are
not skipped, the timeline simply continues from the present.

Media code never reads a clock: the pacer is given one. :class:`MonotonicClock` is real time,
:class:`ManualClock` is moved by hand (its ``sleep_until`` jumps there at once: unit tests run instantly) and
:class:`ScaledClock` runs ``speed`` times faster than real time (server tests: long timelines, short waits).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from engine.format import FRAME_MS

FRAME_SECONDS = FRAME_MS / 1000


class Clock(Protocol):
    """Monotonic time in seconds, and a way to wait for a moment of it."""

    def now(self) -> float:
        """Return the current monotonic time in seconds."""

    def sleep_until(self, t: float) -> None:
        """Wait until monotonic time ``t`` (seconds)."""


class MonotonicClock:
    """Real time: ``time.monotonic`` and ``time.sleep``."""

    def now(self) -> float:
        """Seconds on the monotonic clock."""
        return time.monotonic()

    def sleep_until(self, t: float) -> None:
        """Sleep until monotonic time ``t`` (returns at once when it has passed)."""
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class ManualClock:
    """A clock moved by hand; ``sleep_until(t)`` advances it to ``t`` at once. Starts at ``start`` (s)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        """The clock's time in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        with self._lock:
            self._now += seconds

    def sleep_until(self, t: float) -> None:
        """Jump to ``t`` if it is in the future."""
        with self._lock:
            self._now = max(self._now, t)


class ScaledClock:
    """Time running ``speed`` times faster than real time (``speed`` 50: a 20 ms frame every 0.4 ms)."""

    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self._origin = time.monotonic()

    def now(self) -> float:
        """Scaled seconds since the clock was made."""
        return (time.monotonic() - self._origin) * self.speed

    def sleep_until(self, t: float) -> None:
        """Sleep (really) until scaled time ``t``."""
        delay = (t - self.now()) / self.speed
        if delay > 0:
            time.sleep(delay)


@dataclass
class PacerStats:
    """What the pacer measured: ``ticks``, ``missed`` frames, ``resyncs`` and the lateness of recent ticks (s)."""

    ticks: int
    missed: int
    resyncs: int
    max_lateness_s: float
    p50_lateness_s: float
    p99_lateness_s: float


class Pacer:
    """Calls ``tick()`` at ``t0 + k·period_s`` on ``clock`` until :meth:`stop`.

    ``period_s``: default one frame (0.02 s). ``window``: how many recent latenesses are kept for percentiles
    (default 65536, about 22 minutes of frames). ``max_behind_s``: beyond this the deadlines are re-anchored.
    """

    def __init__(self, clock: Clock, tick: Callable[[], None], period_s: float = FRAME_SECONDS,
                 window: int = 65536, max_behind_s: float = 1.0) -> None:
        self.clock = clock
        self.tick = tick
        self.period_s = period_s
        self.max_behind_s = max_behind_s
        self.ticks = 0
        self.missed = 0
        self.resyncs = 0
        self.max_lateness_s = 0.0
        self._lateness = np.zeros(window, dtype=np.float64)
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the tick in progress."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    def run(self, max_ticks: int | None = None) -> None:
        """Tick until :meth:`stop` (or ``max_ticks`` ticks, for tests). Exceptions of ``tick`` propagate."""
        clock, period = self.clock, self.period_s
        origin = clock.now()
        k = done = 0
        while not self._stop.is_set() and (max_ticks is None or done < max_ticks):
            deadline = origin + k * period
            clock.sleep_until(deadline)
            lateness = clock.now() - deadline
            if lateness > self.max_behind_s:
                self.resyncs += 1
                origin, k = clock.now(), 0
            self._record(lateness)
            self.tick()
            k += 1
            done += 1

    def _record(self, lateness_s: float) -> None:
        self._lateness[self.ticks % len(self._lateness)] = lateness_s
        self.ticks += 1
        if lateness_s > self.period_s:
            self.missed += 1
        if lateness_s > self.max_lateness_s:
            self.max_lateness_s = lateness_s

    def lateness(self) -> np.ndarray:
        """The lateness of the recent ticks (s), oldest first is not guaranteed."""
        return self._lateness[: min(self.ticks, len(self._lateness))].copy()

    def stats(self) -> PacerStats:
        """A snapshot of the measurements."""
        recent = self.lateness()
        p50, p99 = (np.percentile(recent, [50, 99]).tolist() if len(recent) else (0.0, 0.0))
        return PacerStats(self.ticks, self.missed, self.resyncs, self.max_lateness_s, p50, p99)

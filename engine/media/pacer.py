"""The real-time driver of the media loop: one tick per 20 ms frame at absolute deadlines, and the truth about it.

The pacer ticks at ``t0 + k·period`` (no drift: a late tick does not push the next deadline). Each tick's
*lateness* is ``now − deadline`` when it starts. A frame is *missed* when it is not delivered on time: its
tick starts more than one period after its deadline (with :data:`ROUNDING_S` of tolerance for float
rounding). Catching up: a late pacer ticks again at once, without sleeping and without skipping a deadline,
so a phone call never loses audio; each of those late ticks is a missed frame. Only when the pacer falls
more than ``max_behind_s`` (default 1 s) behind (a stopped process, a suspended machine) does it re-anchor its
deadlines to now (counted in ``resyncs``): frames still are not skipped, the timeline continues from the
present, and ``missed`` counts every frame catching up would have ticked late: a resync of N frames counts N,
exactly as many as catching up would have.

Lateness is kept for the last ``window`` ticks (default :data:`DEFAULT_WINDOW_TICKS`, one minute of frames):
:meth:`Pacer.stats` gives p50, p99 and max over that window, and the all-time max.

Media code never reads a clock: the pacer is given one (:mod:`engine.media.clock`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.format import FRAME_MS
from engine.media.clock import Clock, ManualClock, MonotonicClock, ScaledClock
from engine.media.lateness import LatenessWindow

__all__ = ["FRAME_SECONDS", "Clock", "ManualClock", "MonotonicClock", "Pacer", "PacerStats", "ScaledClock"]

FRAME_SECONDS = FRAME_MS / 1000
#: Ticks of lateness kept for the percentiles (default of ``window``): 3000 frames, one minute.
DEFAULT_WINDOW_TICKS = 3000
#: Lateness below one period plus this (s) is on time: float rounding of ``t0 + k·period`` is not a miss.
ROUNDING_S = 1e-6


@dataclass
class PacerStats:
    """What the pacer measured.

    ``ticks``: ticks made; ``missed``: frames not delivered on time (all time); ``resyncs``: re-anchorings;
    ``max_lateness_s``: the largest lateness ever (s); ``window_ticks``: how many recent ticks the next three
    cover; ``p50_lateness_s``, ``p99_lateness_s``, ``window_max_lateness_s``: over those ticks (s).
    """

    ticks: int
    missed: int
    resyncs: int
    max_lateness_s: float
    p50_lateness_s: float
    p99_lateness_s: float
    window_max_lateness_s: float
    window_ticks: int


def late_frames(lateness_s: float, period_s: float) -> int:
    """How many frames are missed when a tick starts ``lateness_s`` after its deadline and catches up.

    The ticks of catching up start ``lateness_s − j·period_s`` late (j = 0, 1, ...); those more than a period
    (and :data:`ROUNDING_S`) late are missed frames.
    """
    behind = (lateness_s - ROUNDING_S) / period_s - 1
    return max(0, math.ceil(behind))


class Pacer:
    """Calls ``tick()`` at ``t0 + k·period_s`` on ``clock`` until :meth:`stop`.

    ``period_s``: default one frame (0.02 s). ``window``: how many recent latenesses are kept for the
    percentiles (default :data:`DEFAULT_WINDOW_TICKS`). ``max_behind_s``: beyond this (default 1 s) the
    deadlines are re-anchored.
    """

    def __init__(self, clock: Clock, tick: Callable[[], None], period_s: float = FRAME_SECONDS,
                 window: int = DEFAULT_WINDOW_TICKS, max_behind_s: float = 1.0) -> None:
        if not period_s > 0 or not max_behind_s > 0 or window < 1:
            raise ValueError(f"period_s and max_behind_s must be > 0 and window >= 1, got {period_s}, "
                             f"{max_behind_s}, {window}")
        self.clock = clock
        self.tick = tick
        self.period_s = period_s
        self.max_behind_s = max_behind_s
        self.ticks = self.missed = self.resyncs = 0  # ticks run, frames missed, re-anchorings
        self.max_lateness_s = 0.0
        #: The deadline of the tick running or waited for (the clock's seconds; inf before the first).
        self.deadline_s = math.inf
        self._lateness = LatenessWindow(window)
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
            deadline = self.deadline_s = origin + k * period
            clock.sleep_until(deadline)
            lateness = clock.now() - deadline
            if lateness > self.max_behind_s:
                self.resyncs += 1
                self.missed += late_frames(lateness, period)
                origin, k = clock.now(), 0
            elif lateness > period + ROUNDING_S:
                self.missed += 1
            self._record(lateness)
            self.tick()
            k += 1
            done += 1

    def _record(self, lateness_s: float) -> None:
        self._lateness.record(lateness_s)
        self.ticks += 1
        if lateness_s > self.max_lateness_s:
            self.max_lateness_s = lateness_s

    def lateness(self) -> np.ndarray:
        """The lateness of the recent ticks (s), oldest first: at most ``window`` of them."""
        return self._lateness.recent()

    def stats(self) -> PacerStats:
        """A snapshot of the measurements (safe to call from another thread while :meth:`run` ticks)."""
        recent = self.lateness()
        if len(recent):
            p50, p99 = np.percentile(recent, [50, 99]).tolist()
            window_max = float(recent.max())
        else:
            p50 = p99 = window_max = 0.0
        return PacerStats(self.ticks, self.missed, self.resyncs, self.max_lateness_s, p50, p99, window_max,
                          len(recent))

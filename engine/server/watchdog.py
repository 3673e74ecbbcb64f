"""The watchdog: samples the media loop, decides whether it has headroom for new calls and whether it stalled.

A thread (``ipcc-watchdog``) takes a :class:`Sample` every ``sample_s`` seconds of real time: the loop's ticks,
its CPU time (:attr:`~engine.media.loop.MediaLoop.cpu_ns`), missed frames, and the pacer's own clock. Over the
last ``judge_window_s`` (default 2 s: one late tick does not close the door) it derives

* ``cpu_share``: the media thread's CPU time over the real time elapsed (1.0 is one core);
* ``real_time``: ticks run over ticks due by the pacer's clock (1.0: the loop keeps up; the pacer's clock may be
  scaled in tests, so this ratio is measured on it);
* ``missed``: frames that started more than a frame late;
* ``duty``: the share of real time the loop spent in ticks (the media thread's ``busy_s``, on the pacer's clock),
  and ``contention``: that time over the ticks' CPU time (1: the thread ran whenever it wanted; more: it waited
  for the GIL or, on a busy machine, for a core); the time waited is part of the projection of
  :meth:`Watchdog.projected_refusal`.

Headroom is gone when ``cpu_share`` exceeds ``max_cpu_share``, ``real_time`` is below ``min_real_time`` or the
p90 lateness of the last 250 ticks (5 s) exceeds ``max_lateness_s`` (a stall of the machine of well under a
second does not close the door; a loop that keeps falling behind does); new calls are then refused
(``108102``) and the reason is in the
status. Headroom is judged only when the pacer's clock is real time (:class:`~engine.media.pacer.MonotonicClock`):
a scaled test clock has no real-time budget. The loop is *stalled* when its tick count has not moved for
``stall_s`` real seconds; this is checked on every :meth:`Watchdog.health` call as well, so a dead watchdog
thread cannot hide a stall.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from engine.media.loop import MediaLoop
from engine.media.pacer import MonotonicClock, Pacer
from engine.server.limits import GuardSettings

log = logging.getLogger(__name__)
RECENT_TICKS = 250  # the window of the lateness percentile (5 s of frames)
MAX_CONTENTION = 20.0  # a tick's time over its CPU time is taken at most this (a stopped process is a stall)


@dataclass(frozen=True)
class Sample:
    """One look at the loop: real seconds (``at_s``), the pacer's clock (``clock_s``), its counters."""

    at_s: float
    clock_s: float
    ticks: int
    cpu_ns: int
    missed: int
    calls: int
    busy_s: float = 0.0  # the loop's time in ticks, on the pacer's clock


@dataclass(frozen=True)
class Health:
    """What the watchdog concluded: ``stalled_s`` (0 when ticking), why headroom is gone (``reasons``), the figures."""

    stalled_s: float
    reasons: tuple[str, ...]
    cpu_share: float
    real_time: float
    p90_lateness_s: float
    p99_lateness_s: float
    missed_in_window: int
    cpu_per_call: float = 0.0  # the CPU share one call costs (0 without calls)
    duty: float = 0.0  # the share of real time the loop spent in ticks
    contention: float = 1.0  # time in ticks over their CPU time (>= 1: waits for the GIL or for a core)

    @property
    def healthy(self) -> bool:
        """True unless the loop stalled."""
        return self.stalled_s == 0.0

    @property
    def headroom(self) -> bool:
        """True when new calls may be admitted."""
        return self.healthy and not self.reasons

    def why(self) -> list[str]:
        """Every reason new calls are refused (a stall first)."""
        stall = [f"media loop stalled for {self.stalled_s:.1f} s"] if self.stalled_s else []
        return stall + list(self.reasons)


def recent_lateness(pacer: Pacer, count: int) -> np.ndarray:
    """The lateness of (at most) the last ``count`` ticks (s), from the pacer's ring of recent latenesses."""
    ticks = pacer.ticks
    window = pacer.lateness()
    if ticks <= len(window):  # not wrapped yet: in order
        return window[-count:]
    end = ticks % len(window)
    return window[np.arange(end - count, end) % len(window)]


class Watchdog:
    """Watches ``media`` driven by ``pacer``; ``monotonic`` is real time (seconds, default ``time.monotonic``)."""

    def __init__(self, media: MediaLoop, pacer: Pacer, settings: GuardSettings,
                 monotonic: Callable[[], float] = time.monotonic, busy_s: Callable[[], float] | None = None) -> None:
        self.media = media
        self.pacer = pacer
        self._busy_s = busy_s or (lambda: 0.0)
        self.settings = settings
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._previous = self._sample()
        self._history: deque[Sample] = deque([self._previous])
        self._moved_at_s = self._previous.at_s  # real time at which the tick count was last seen to move
        self._health = Health(0.0, (), 0.0, 1.0, 0.0, 0.0, 0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = 0
        #: Headroom is judged only against real time: a scaled or manual clock (tests) has no budget to defend.
        self.judges_headroom = isinstance(pacer.clock, MonotonicClock)

    def _sample(self) -> Sample:
        cpu = sum(self.media.cpu_ns.values())
        return Sample(self._monotonic(), self.pacer.clock.now(), self.pacer.ticks, cpu, self.pacer.missed,
                      len(self.media), self._busy_s())

    def start(self) -> None:
        """Start sampling on a daemon thread."""
        with self._lock:
            self._previous = self._sample()  # the time before the loop ran is not the loop's
            self._moved_at_s = self._previous.at_s
            self._history = deque([self._previous])
        self._thread = threading.Thread(target=self._run, name="ipcc-watchdog", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop sampling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.sample_s):
            try:
                self.step()
            except Exception:  # the watchdog must outlive its own bugs
                log.exception("the watchdog failed to sample the media loop")

    def step(self) -> Health:
        """Take a sample and update the verdict (the thread calls this every ``sample_s``)."""
        now = self._sample()
        with self._lock:
            if now.ticks != self._previous.ticks:
                self._moved_at_s = now.at_s
            self._previous = now
            history = self._history
            history.append(now)
            while len(history) > 2 and now.at_s - history[1].at_s >= self.settings.judge_window_s:
                history.popleft()  # keep the oldest sample at least one window old
            self._health = self._judge(history[0], now)
            self.samples += 1
            return self._health

    def _judge(self, before: Sample, now: Sample) -> Health:
        elapsed_s = max(now.at_s - before.at_s, 1e-9)
        cpu_share = (now.cpu_ns - before.cpu_ns) / 1e9 / elapsed_s
        due = (now.clock_s - before.clock_s) / self.pacer.period_s
        ticks = now.ticks - before.ticks
        real_time = min(ticks / due, 1.0) if due >= 1 and before.ticks else 1.0  # from the first tick on
        recent = recent_lateness(self.pacer, RECENT_TICKS)
        p90, p99 = (float(v) for v in np.percentile(recent, [90, 99])) if len(recent) else (0.0, 0.0)
        reasons = self._reasons(cpu_share, real_time, p90) if self.judges_headroom else []
        mean_calls = (before.calls + now.calls) / 2
        per_call = cpu_share / mean_calls if mean_calls >= 1 else 0.0
        busy_s = now.busy_s - before.busy_s
        duty = busy_s / elapsed_s
        cpu_s = (now.cpu_ns - before.cpu_ns) / 1e9
        # measured only over enough CPU (1 % of the window) that the ratio means something
        contention = min(max(busy_s / cpu_s, 1.0), MAX_CONTENTION) if cpu_s >= 0.01 * elapsed_s else 1.0
        return Health(self._stalled_s(now.at_s), tuple(reasons), cpu_share, real_time, p90, p99,
                      now.missed - before.missed, per_call, duty, contention)

    def _reasons(self, cpu_share: float, real_time: float, p90_s: float) -> list[str]:
        s = self.settings
        reasons = []
        if cpu_share > s.max_cpu_share:
            reasons.append(f"media thread CPU {cpu_share:.0%} of a core > {s.max_cpu_share:.0%}")
        if real_time < s.min_real_time:
            reasons.append(f"media loop at {real_time:.0%} of real time < {s.min_real_time:.0%}")
        if p90_s > s.max_lateness_s:
            reasons.append(f"frame lateness p90 {p90_s * 1000:.0f} ms > {s.max_lateness_s * 1000:.0f} ms")
        return reasons

    def _stalled_s(self, at_s: float) -> float:
        quiet = at_s - self._moved_at_s
        return quiet if quiet >= self.settings.stall_s and not self.pacer.stopping else 0.0

    def projected_refusal(self, calls: int) -> str:
        """Why ``calls`` live calls would be too many for the media thread ("" when they are not).

        The CPU share one call costs (measured, and at least ``call_cpu_share``: what a call costs once it plays)
        times ``calls``, plus the share of real time the loop now spends waiting inside its ticks (``duty`` minus
        ``cpu_share``: for the GIL, or for a core of a busy machine), against ``max_cpu_share``. A burst of
        set-ups is refused at the projected limit, not two seconds after the calls it let in started playing and
        the loop fell behind.
        """
        health = self._health
        waiting = max(health.duty - health.cpu_share, 0.0)
        projected = max(health.cpu_per_call, self.settings.call_cpu_share) * calls + waiting
        if not self.judges_headroom or projected <= self.settings.max_cpu_share:
            return ""
        return (f"{calls} calls would take {projected:.0%} of the media thread's time "
                f"> {self.settings.max_cpu_share:.0%} (of which {waiting:.0%} waiting for the GIL or a core)")

    def health(self) -> Health:
        """The verdict of the last sample, with the stall re-checked now (a dead watchdog thread shows as a stall)."""
        with self._lock:
            health = self._health
            moved = self.pacer.ticks != self._previous.ticks
            stalled = 0.0 if moved else self._stalled_s(self._monotonic())
        return health if stalled == health.stalled_s else replace(health, stalled_s=stalled)

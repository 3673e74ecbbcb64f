"""Clocks for media code, which never reads one itself: it is given one.

:class:`MonotonicClock` is real time; :class:`ManualClock` is moved by hand (its ``sleep_until`` jumps there at
once: unit tests run instantly); :class:`ScaledClock` runs ``speed`` times faster than another clock (server
tests: long timelines, short waits). Times are seconds (float) on a monotonic scale.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


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
        while delay > 0:  # time.sleep may return a hair early: never wake before ``t``
            time.sleep(delay)
            delay = t - time.monotonic()


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
    """Time running ``speed`` times faster than ``base`` (default real time), from 0 when made.

    ``speed`` 50: a 20 ms frame every 0.4 ms of ``base``.
    """

    def __init__(self, speed: float, base: Clock | None = None) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self.base: Clock = base if base is not None else MonotonicClock()
        self._origin = self.base.now()

    def now(self) -> float:
        """Scaled seconds since the clock was made."""
        return (self.base.now() - self._origin) * self.speed

    def sleep_until(self, t: float) -> None:
        """Wait on ``base`` until scaled time ``t``."""
        self.base.sleep_until(self._origin + t / self.speed)

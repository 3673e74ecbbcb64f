"""Timers on an injected clock: the SIP layer schedules, a driver fires what is due.

Nothing here reads a clock: :meth:`Timers.run_due` is given the time (seconds), by the SIP transport's
periodic task in real use and by tests directly (a 32 s transaction timeout tested in microseconds).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class Timer:
    """A scheduled callback; :meth:`cancel` stops it."""

    __slots__ = ("due", "callback", "cancelled")

    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """It will not fire."""
        self.cancelled = True


class Timers:
    """A heap of :class:`Timer`; ``now`` is the last time given to :meth:`run_due` (seconds)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self._heap: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()

    def after(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` ``delay_s`` seconds after :attr:`now`."""
        timer = Timer(self.now + delay_s, callback)
        heapq.heappush(self._heap, (timer.due, next(self._order), timer))
        return timer

    def run_due(self, now: float) -> int:
        """Fire every timer due at or before ``now``, in order (an exception is logged); returns how many."""
        fired = 0
        while self._heap and self._heap[0][0] <= now:
            due, _, timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            self.now = max(self.now, due)
            fired += 1
            try:
                timer.callback()
            except Exception:
                log.exception("SIP timer failed")
        self.now = max(self.now, now)
        return fired

    def next_due(self) -> float | None:
        """When the next live timer is due (None: none)."""
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return sum(1 for _, _, t in self._heap if not t.cancelled)

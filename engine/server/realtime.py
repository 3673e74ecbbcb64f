"""What a process that keeps real time asks of the interpreter: a short GIL switch interval, short collections.

The media thread shares the GIL with the HTTP event loop and the engine's pools. Two things of the interpreter
make its frames late when the server is under HTTP load; :class:`RealTimeProcess` sets both right:

* **The GIL switch interval.** A thread that wants the GIL waits up to ``sys.getswitchinterval()`` (CPython's
  default 5 ms) before the thread holding it is asked to drop it. The media thread wants it back at every
  deadline and after every NumPy call that released it (each large array operation of a tick does), so a busy
  event loop stretches a tick by up to one interval per hand-over. ``switch_interval_s`` (default
  :data:`SWITCH_INTERVAL_S`) bounds each hand-over instead; the other threads lose only the switches' cost.
* **Full collections.** A generation-2 collection scans every tracked object with the GIL held; each live call
  and each queued request holds a few dozen, so with thousands of calls one collection holds every other thread
  for tens of milliseconds. :meth:`RealTimeProcess.on_tick` collects the young generations and moves what
  survived them out of the collector's reach every ``freeze_ticks`` ticks (``gc.freeze``: constant time), so
  the oldest generation holds at most a second of survivors and every automatic collection stays short.
  Frozen objects are still freed when their last reference goes (reference counting); only garbage *cycles*
  among them wait: when the loop holds no live call (no frame to make late), ``full_ticks`` ticks have passed
  since the last full collection and ``full_growth`` more objects are frozen than after it, everything is
  unfrozen, collected in full and frozen again. The policy is the process's (the collector is): several
  servers in one process (tests) each apply it.

:meth:`RealTimeProcess.stats` counts the freezes, the full collections and what they found (``/ipcc/status``).
"""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass

#: The GIL switch interval of a real-time process (s): CPython's default is 5 ms.
SWITCH_INTERVAL_S = 0.0005
#: Ticks between two freezes of the collector's survivors (50: one second of frames).
FREEZE_TICKS = 50
#: Ticks at least between two full collections, which run only while no call is live (3000: one minute).
FULL_TICKS = 3000
#: Objects frozen since the last full collection before the next one is worth its pause.
FULL_GROWTH = 20_000


@dataclass
class CollectorStats:
    """What the policy did, and how many objects are frozen now (``frozen``).

    ``freezes`` and ``full_collections``: how many ran; ``last_found``: the objects the last full collection found
    unreachable (cycles that waited for it).
    """

    freezes: int = 0
    full_collections: int = 0
    last_found: int = 0
    frozen: int = 0


class RealTimeProcess:
    """The interpreter's settings for the media thread (module docstring); :meth:`on_tick` runs on it."""

    def __init__(self, switch_interval_s: float = SWITCH_INTERVAL_S, freeze_ticks: int = FREEZE_TICKS,
                 full_ticks: int = FULL_TICKS, full_growth: int = FULL_GROWTH) -> None:
        if not switch_interval_s > 0 or freeze_ticks < 1 or full_ticks < 1 or full_growth < 0:
            raise ValueError(f"switch_interval_s must be > 0, freeze_ticks and full_ticks >= 1, full_growth >= 0, "
                             f"got {switch_interval_s}, {freeze_ticks}, {full_ticks}, {full_growth}")
        self.switch_interval_s = switch_interval_s
        self.freeze_ticks = freeze_ticks
        self.full_ticks = full_ticks
        self.full_growth = full_growth
        self._full_at_tick = 0
        self._frozen_after_full = 0
        self._stats = CollectorStats()

    def start(self) -> None:
        """Set the switch interval and freeze what start-up made (modules, the web framework's objects)."""
        sys.setswitchinterval(self.switch_interval_s)
        gc.freeze()
        self._frozen_after_full = gc.get_freeze_count()

    def on_tick(self, ticks: int, live_calls: int) -> None:
        """After tick number ``ticks`` with ``live_calls`` calls: freeze, or collect in full while no call is live."""
        if ticks % self.freeze_ticks:
            return
        stats = self._stats
        if live_calls == 0 and ticks - self._full_at_tick >= self.full_ticks \
                and gc.get_freeze_count() - self._frozen_after_full >= self.full_growth:
            self._full_at_tick = ticks
            gc.unfreeze()
            stats.last_found = gc.collect()
            stats.full_collections += 1
            gc.freeze()
            self._frozen_after_full = gc.get_freeze_count()
        else:
            gc.collect(1)  # the young generations first: what is frozen is what outlived them
            gc.freeze()
        stats.freezes += 1

    def stats(self) -> CollectorStats:
        """A copy of the counters, with the objects frozen now."""
        return CollectorStats(self._stats.freezes, self._stats.full_collections, self._stats.last_found,
                              gc.get_freeze_count())

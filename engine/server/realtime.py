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

A third thing is the HTTP side's to do: **not to contend with a tick.** Every large NumPy operation of a tick
releases the GIL and must take it back; while the event loop is busy that takes up to a switch interval each
time, a convoy that stretches the tick and costs both threads forced switches. :meth:`RealTimeProcess.on_tick`
counts the ticks that ended, and :meth:`RealTimeProcess.wait_for_tick` lets a request that arrives during a
tick wait (the GIL released) until the tick ends, at most ``bound_s`` per tick: HTTP work then runs between
ticks.

:meth:`RealTimeProcess.stats` counts the freezes, the full collections and what they found (``/ipcc/status``).
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable
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
    waits_for_tick: int = 0  # requests that waited for a tick to end


class RealTimeProcess:
    """The interpreter's settings for the media thread (module docstring); :meth:`on_tick` runs on it."""

    def __init__(self, switch_interval_s: float = SWITCH_INTERVAL_S, freeze_ticks: int = FREEZE_TICKS,
                 full_ticks: int = FULL_TICKS, full_growth: int = FULL_GROWTH) -> None:
        if not switch_interval_s > 0 or freeze_ticks < 1 or full_ticks < 1 or full_growth < 0:
            raise ValueError(f"switch_interval_s must be > 0, freeze_ticks and full_ticks >= 1, full_growth >= 0, "
                             f"got {switch_interval_s}, {freeze_ticks}, {full_ticks}, {full_growth}")
        self.switch_interval_s = switch_interval_s
        self.freeze_ticks, self.full_ticks, self.full_growth = freeze_ticks, full_ticks, full_growth  # the GC's
        self._full_at_tick = 0
        self._frozen_after_full = 0
        self._stats = CollectorStats()
        self._ticked = threading.Condition()
        self.ticks_ended = 0
        self._outlasted = -1  # the count of ticks ended when a wait last ran out (that tick is not waited for again)

    def start(self) -> None:
        """Set the switch interval and freeze what start-up made (modules, the web framework's objects)."""
        sys.setswitchinterval(self.switch_interval_s)
        gc.freeze()
        self._frozen_after_full = gc.get_freeze_count()

    def on_tick(self, ticks: int, live_calls: int) -> None:
        """After tick number ``ticks`` with ``live_calls`` calls: freeze, or collect in full while no call is live.

        Wakes the requests waiting for the tick to end first (:meth:`wait_for_tick`).
        """
        with self._ticked:
            self.ticks_ended += 1
            self._ticked.notify_all()
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

    def wait_for_tick(self, ticking: Callable[[], bool], bound_s: float) -> None:
        """While a tick runs (``ticking()``, read off the pacer), wait for it to end, at most ``bound_s``.

        The bound is per tick, not per request: once a wait for a tick ran out, the requests after it do not wait
        for that tick again (a long tick delays the event loop by ``bound_s`` once, not once per queued request).
        """
        with self._ticked:
            if not ticking():  # asked with the lock held: a tick that ends now is counted after this
                return
            ended = self.ticks_ended
            if ended == self._outlasted:  # this tick outlasted a wait already: the next requests go on
                return
            self._stats.waits_for_tick += 1
            if not self._ticked.wait_for(lambda: self.ticks_ended != ended, bound_s):
                self._outlasted = ended

    def stats(self) -> CollectorStats:
        """A copy of the counters, with the objects frozen now."""
        s = self._stats
        return CollectorStats(s.freezes, s.full_collections, s.last_found, gc.get_freeze_count(), s.waits_for_tick)

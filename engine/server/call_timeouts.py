"""The call timeouts: each live call's lifetime and idle deadlines, in media ticks (the media thread only).

A call ends by itself after ``lifetime_ticks`` from its start, or after ``idle_ticks`` without any request
held (from its start, or from its last ``multrpt``). Deadlines are kept in a heap, so the media thread pays
O(1) per tick and O(log n) per call; an idle deadline made void by a request queued since is dropped when it
comes due (each call has a *generation*, bumped whenever it stops or starts being idle).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator

LIFETIME = "lifetime"
IDLE = "idle"


class CallTimeouts:
    """The lifetime and idle deadlines of the live calls (``lifetime_ticks``, ``idle_ticks``: 20 ms ticks)."""

    def __init__(self, lifetime_ticks: int, idle_ticks: int) -> None:
        self.lifetime_ticks = lifetime_ticks
        self.idle_ticks = idle_ticks
        self.ended = {LIFETIME: 0, IDLE: 0}  # calls ended by a timeout, by reason
        # (tick, order, call id, kind, generation) of lifetime and idle deadlines
        self._deadlines: list[tuple[int, int, str, str, int]] = []
        self._generation: dict[str, int] = {}  # per call: bumped when a request is queued on it
        self._order = itertools.count()

    def start(self, call_id: str, now_tick: int) -> None:
        """A new call at ``now_tick``: its lifetime and idle deadlines start."""
        self._generation[call_id] = 0
        self._push(now_tick + self.lifetime_ticks, call_id, LIFETIME)
        self._push(now_tick + self.idle_ticks, call_id, IDLE)

    def busy(self, call_id: str) -> None:
        """A request was queued on ``call_id``: it is no longer idle (its idle deadline is void)."""
        self._generation[call_id] += 1

    def idle_again(self, call_id: str, now_tick: int) -> None:
        """``call_id`` holds no request any more (no-op once it ended): a new idle deadline."""
        if call_id in self._generation:
            self._generation[call_id] += 1
            self._push(now_tick + 1 + self.idle_ticks, call_id, IDLE)

    def forget(self, call_id: str) -> None:
        """``call_id`` ended: its deadlines are dropped when they come due."""
        self._generation.pop(call_id, None)

    def due(self, now_tick: int) -> bool:
        """True when a deadline is at or before ``now_tick`` (cheap: called every tick)."""
        return bool(self._deadlines) and self._deadlines[0][0] <= now_tick

    def expired(self, now_tick: int) -> Iterator[tuple[str, str]]:
        """Pop the deadlines due at ``now_tick``; yield ``(call_id, kind)`` of those still valid."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now_tick:
            _, _, call_id, kind, generation = heapq.heappop(deadlines)
            current = self._generation.get(call_id)
            if current is None or (kind == IDLE and generation != current):
                continue
            yield call_id, kind

    def _push(self, at_tick: int, call_id: str, kind: str) -> None:
        heapq.heappush(self._deadlines, (at_tick, next(self._order), call_id, kind, self._generation[call_id]))

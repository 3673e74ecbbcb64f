"""The media loop's quiet runs: rows whose frames are played without ticking their calls.

Most of a call's frames change nothing but its time: a slice of the prompt playing, or the silence of a wait
for keys. :meth:`Call.quiet_run <engine.media.call.Call.quiet_run>` hands the loop those coming frames at once;
:class:`QuietRows` keeps them by row and, per tick, puts each running row's frame in place with one index
(none at all for a row whose frames go nowhere) and gives the loop the rows it must tick: the others, in row
order. Anything else asked of a call in a run ends the run (the call's ``on_end`` comes back here) and the
loop ticks it from the next tick on. Starting a run costs more than a tick of the call, so at most
:data:`OFFERS_PER_TICK` start per tick: calls whose segments end together (calls set up in one burst play in
step) are not all offered one in the same tick; the others tick as usual and are offered in the next ones.
"""

from __future__ import annotations

import numpy as np

from engine.media.call import Call, TickCount

__all__ = ["OFFERS_PER_TICK", "QuietRows"]

#: The most quiet runs started in one tick.
OFFERS_PER_TICK = 256


class QuietRows:
    """Per row of a media loop: its quiet run's frames (None: no run) and the first tick after it."""

    def __init__(self) -> None:
        self.ticks = TickCount()
        self._end = np.zeros(0, dtype=np.int64)  # per row: the first tick not in its run (<= now: the row ticks)
        self._wanted = np.zeros(0, dtype=bool)  # per row: its frames are wanted (its sink records them)
        self._start: list[int] = []
        self._frames: list[np.ndarray | None] = []
        self.running = 0  # rows in a run now
        self._offers_left = 0  # runs that may still start in this tick

    def fit(self, rows: int) -> None:
        """Make room for ``rows`` rows (new ones: no run, frames not wanted)."""
        have = len(self._end)
        if rows <= have:
            return
        more = max(rows - have, have)
        self._end = np.concatenate([self._end, np.full(more, -1, dtype=np.int64)])
        self._wanted = np.concatenate([self._wanted, np.zeros(more, dtype=bool)])
        self._start += [0] * more
        self._frames += [None] * more

    def want(self, row: int, wanted: bool) -> None:
        """Whether ``row``'s frames are wanted (the loop's ``keep``)."""
        self.fit(row + 1)
        self._wanted[row] = wanted

    def play(self, rows: int, frames: list[np.ndarray | None]) -> list[int] | range:
        """Start a tick: each running row's frame into ``frames[row]`` (if wanted); the rows to tick, in order."""
        tick = self.ticks.started
        self.ticks.started = tick + 1
        self._offers_left = OFFERS_PER_TICK
        if not self.running:
            return range(rows)
        end = self._end[:rows]
        running = end > tick
        starts, runs = self._start, self._frames
        for row in np.flatnonzero(running & self._wanted[:rows]).tolist():
            frames[row] = runs[row][tick - starts[row]]  # type: ignore[index]
        return np.flatnonzero(~running).tolist()

    def offer(self, call: Call, row: int) -> None:
        """Start ``call``'s quiet run in ``row`` if it has one (after its tick) and this tick may start one more."""
        if not self._offers_left:
            return
        frames = call.quiet_run(self.ticks, self._ended, row)
        if frames is not None:
            start = self.ticks.started
            self._end[row] = start + len(frames)
            self._start[row] = start
            self._frames[row] = frames
            self.running += 1
            self._offers_left -= 1

    def _ended(self, row: int) -> None:
        """The run in ``row`` ended (its call was asked for something, or ticked): the row ticks again."""
        self._end[row] = -1
        self._frames[row] = None
        self.running -= 1

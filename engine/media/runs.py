"""The media loop's quiet runs: rows whose frames are played without ticking their calls.

Most of a call's frames change nothing but its time: a slice of the prompt playing, or the silence of a wait
for keys. :meth:`Call.quiet_run <engine.media.call.Call.quiet_run>` hands the loop those coming frames at once;
:class:`QuietRows` keeps them by row and, per tick, puts each running row's frame in place and gives the loop
the rows it must tick: the others, in row order. A row whose frames go nowhere costs nothing. A row played
*into rows* (the loop's array of played frames, which a row port takes whole: RTP sessions) is gathered with
the others playing the same audio in one index per source (:class:`~engine.media.run_sources.RunSources`);
any other wanted row gets its frame by one index of its run. Anything else asked of a call in a run ends the
run (the call's ``on_end`` comes back here) and the loop ticks it from the next tick on. Starting a run costs
more than a tick of the call, so at most :data:`OFFERS_PER_TICK` start per tick: calls whose segments end
together (calls set up in one burst play in step) are not all offered one in the same tick; the others tick
as usual and are offered in the next ones.
"""

from __future__ import annotations

import numpy as np

from engine.media.call import Call, TickCount
from engine.media.run_sources import RunSources

__all__ = ["OFFERS_PER_TICK", "QuietRows"]

#: The most quiet runs started in one tick.
OFFERS_PER_TICK = 256


class QuietRows:
    """Per row of a media loop: its quiet run's frames (None: no run) and the first tick after it."""

    def __init__(self) -> None:
        self.ticks = TickCount()
        self._end = np.zeros(0, dtype=np.int64)  # per row: the first tick not in its run (<= now: the row ticks)
        self._wanted = np.zeros(0, dtype=bool)  # per row: its frames are wanted (its sink records them)
        self._into_rows = np.zeros(0, dtype=bool)  # per row: its frames go into the loop's played rows
        self._start: list[int] = []
        self._frames: list[np.ndarray | None] = []
        self._sources = RunSources()
        self.running = 0  # rows in a run now
        self._offers_left = 0  # runs that may still start in this tick

    @property
    def gathered(self) -> int:
        """Frames played by a gather (rows played into rows, many on one source) since the start."""
        return self._sources.gathered

    def fit(self, rows: int) -> None:
        """Make room for ``rows`` rows (new ones: no run, frames not wanted)."""
        have = len(self._end)
        if rows <= have:
            return
        more = max(rows - have, have)
        self._end = np.concatenate([self._end, np.full(more, -1, dtype=np.int64)])
        self._wanted = np.concatenate([self._wanted, np.zeros(more, dtype=bool)])
        self._into_rows = np.concatenate([self._into_rows, np.zeros(more, dtype=bool)])
        self._sources.fit(have + more)
        self._start += [0] * more
        self._frames += [None] * more

    def want(self, row: int, wanted: bool, into_rows: bool = False) -> None:
        """Whether ``row``'s frames are wanted (the loop's ``keep``), and whether into the loop's played rows."""
        self.fit(row + 1)
        self._wanted[row] = wanted
        self._into_rows[row] = wanted and into_rows

    def play(self, rows: int, frames: list[np.ndarray | None], played: np.ndarray) -> list[int] | range:
        """Start a tick: each running row's frame in place; the rows to tick, in row order.

        A wanted row's frame goes to ``frames[row]``, or to ``played[row]`` (int16, 160 samples) when it is
        played into rows.
        """
        tick = self.ticks.started
        self.ticks.started = tick + 1
        self._offers_left = OFFERS_PER_TICK
        if not self.running:
            return range(rows)
        running = self._end[:rows] > tick
        wanted = running & self._wanted[:rows]
        into = wanted & self._into_rows[:rows]
        starts, runs = self._start, self._frames
        if into.any():
            for row in self._sources.gather(np.flatnonzero(into), tick, played):
                played[row] = runs[row][tick - starts[row]]  # type: ignore[index]
            wanted &= ~into
        for row in np.flatnonzero(wanted).tolist():
            frames[row] = runs[row][tick - starts[row]]  # type: ignore[index]
        return np.flatnonzero(~running).tolist()

    def offer(self, call: Call, row: int) -> None:
        """Start ``call``'s quiet run in ``row`` if it has one (after its tick) and this tick may start one more."""
        if not self._offers_left:
            return
        quiet = call.quiet_run(self.ticks, self._ended, row)
        if quiet is not None:
            start = self.ticks.started
            frames = quiet.samples
            self._end[row] = start + len(frames)
            self._start[row] = start
            self._frames[row] = frames
            if self._into_rows[row]:
                self._sources.begin(row, quiet, start)
            self.running += 1
            self._offers_left -= 1

    def _ended(self, row: int) -> None:
        """The run in ``row`` ended (its call was asked for something, or ticked): the row ticks again."""
        self._end[row] = -1
        self._frames[row] = None
        self._sources.end(row)
        self.running -= 1

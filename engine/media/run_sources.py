"""The audio rows' quiet runs play, by source: every row playing one source gathered with one index per tick.

A quiet run's frames (:class:`~engine.core.quiet.QuietFrames`) are a view of the audio they come from: frames of
a prompt's samples one frame apart, or one silent frame repeated. :class:`RunSources` keeps that audio (the
*source*) while a run plays it and, per tick, takes the frames of all the rows playing one source with one index
of its 160-sample windows, written into their rows of the loop's played frames. Sources played by fewer than
:data:`MIN_GATHERED` rows in a tick are left to the caller (one index per row).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from engine.core.quiet import QuietFrames
from engine.format import SAMPLE_DTYPE, SAMPLES_PER_FRAME

__all__ = ["MIN_GATHERED", "RunSources"]

#: A source is gathered in a tick when at least this many rows play it (fewer: one index per row is cheaper).
MIN_GATHERED = 16
_F = SAMPLES_PER_FRAME


class RunSources:
    """Per row: the source its run plays (-1: none) and the window of its frame at tick 0, moving ``step`` a tick."""

    def __init__(self) -> None:
        self._source = np.zeros(0, dtype=np.int64)
        self._origin = np.zeros(0, dtype=np.int64)  # the window index at tick 0 (the run's first minus its start)
        self._step = np.zeros(0, dtype=np.int64)  # windows per tick: a frame (160), or 0 (one frame repeated)
        self._audio: list[np.ndarray | None] = []  # per source: its samples (held while a run plays them)
        self._windows: list[np.ndarray | None] = []  # per source: its 160-sample windows (made when gathered)
        self._users: list[int] = []  # per source: the runs playing it
        self._of_audio: dict[int, int] = {}  # by the id of its samples: the source
        self._free: list[int] = []
        self.gathered = 0  # frames played by gathers since the start

    def __len__(self) -> int:
        """Sources held now (each played by at least one run)."""
        return len(self._of_audio)

    def fit(self, rows: int) -> None:
        """Make room for ``rows`` rows (new ones: no source)."""
        more = rows - len(self._source)
        if more > 0:
            self._source = np.concatenate([self._source, np.full(more, -1, dtype=np.int64)])
            self._origin = np.concatenate([self._origin, np.zeros(more, dtype=np.int64)])
            self._step = np.concatenate([self._step, np.zeros(more, dtype=np.int64)])

    def begin(self, row: int, quiet: QuietFrames, start_tick: int) -> None:
        """``row``'s run plays ``quiet`` from ``start_tick`` (a row's run replaces the one it had)."""
        self.end(row)
        audio, first, step = quiet.source, quiet.first_sample, quiet.step_samples
        if first < 0 or first + step * (len(quiet.samples) - 1) + _F > len(audio):
            return
        source = self._of_audio.get(id(audio))
        if source is None:
            if audio.ndim != 1 or audio.dtype != SAMPLE_DTYPE or not audio.flags.c_contiguous:
                return
            source = self._new_source(audio)
        self._users[source] += 1
        self._source[row] = source
        self._origin[row] = first - step * start_tick
        self._step[row] = step

    def end(self, row: int) -> None:
        """``row``'s run (if any) ended: its source is given back (let go when no run plays it)."""
        source = int(self._source[row])
        if source < 0:
            return
        self._source[row] = -1
        self._users[source] -= 1
        if not self._users[source]:
            del self._of_audio[id(self._audio[source])]
            self._audio[source] = self._windows[source] = None
            self._free.append(source)

    def gather(self, rows: np.ndarray, tick: int, played: np.ndarray) -> list[int]:
        """Each of ``rows``' frame of ``tick`` into ``played[row]``; returns the rows left to the caller, in order."""
        source = self._source[rows]
        counts = np.bincount(source + 1, minlength=1)
        gathered = np.flatnonzero(counts[1:] >= MIN_GATHERED)
        if not len(gathered):
            return rows.tolist()
        window = self._origin[rows] + self._step[rows] * tick
        if int(counts[gathered[0] + 1]) == len(rows):  # the usual: every row on one source
            played[rows] = self._windows_of(int(gathered[0]))[window]
            self.gathered += len(rows)
            return []
        for k in gathered.tolist():
            of_source = source == k
            played[rows[of_source]] = self._windows_of(k)[window[of_source]]
            self.gathered += int(counts[k + 1])
        return rows[(source < 0) | (counts[source + 1] < MIN_GATHERED)].tolist()

    def _new_source(self, audio: np.ndarray) -> int:
        source = self._free.pop() if self._free else len(self._audio)
        if source == len(self._audio):
            self._audio.append(None)
            self._windows.append(None)
            self._users.append(0)
        self._audio[source] = audio
        self._of_audio[id(audio)] = source
        return source

    def _windows_of(self, source: int) -> np.ndarray:
        windows = self._windows[source]
        if windows is None:
            audio = self._audio[source]
            assert audio is not None
            windows = self._windows[source] = sliding_window_view(audio, _F)
        return windows

"""Streaming in-band DTMF detection (ITU-T Q.24 acceptance as Asterisk/spandsp implement it), batched.

Every threshold named below is in :mod:`engine.dtmf.thresholds`.

Analysis (:mod:`engine.dtmf.analysis`): 10 ms Hann windows every 5 ms; per window the candidate key, each
tone's Hann-corrected amplitude, its frequency from the bin's phase advance, and the two tones' share of the
window's power. Windows pass a gate (level and power share) before analysis.

Decision (:mod:`engine.dtmf.decision`), per channel, over a *run* of consecutive gated windows with the same
candidate key. A window is *strict* when both tones are within the strict deviation and hold the strict share of
its power. A key is accepted when the run has

* duration ``D = 5 ms · Σ amplitude / max amplitude`` (per tone, the smaller) of at least the minimum tone
  length. Hann at half overlap sums to one, so D is the tone's length whatever its alignment to the window grid;
* at least two strict windows, and no non-strict window (measurable: not an onset or drop-out edge) as loud as
  the loud-failure fraction of the tone (talk-off guard);
* the strict windows' amplitude-weighted mean deviation of each tone within the maximum deviation, and the two
  deviations within the maximum differential deviation of each other;
* the two tones' total power at least the minimum total level;
* twist (low − high level) within the maximum normal (high tone weaker) and reverse (low tone weaker) twist.

A key is reported once, when accepted, with its level and twist (of the run's largest amplitudes), then *held*:
it ends after a few windows in a row without it at a fraction of its accepted amplitude, so short drop-outs are
bridged and a pause separates two presses of the same key. The decision runs per channel in Python for a few
channels in play, vectorised across channels for many; both give identical results.

Cost: each call first screens the channels by energy alone (one dot product for one channel fed a frame, one
einsum over every 5 ms sub-block otherwise). A channel whose windows all stay under the gate is not analysed;
if it has no run or held key in progress either, it costs nothing more. The channels above the gate are
analysed from their new samples and the two sub-blocks before them (kept raw per channel), so a window's
features depend on the audio alone, never on how it was split into calls or batched with other channels.
One channel fed whole sub-blocks (a :class:`~engine.dtmf.channel.DtmfDetector` fed 20 ms frames) takes a shorter
path to the same results (:meth:`BatchDtmfDetector.process_one`, :func:`~engine.dtmf.floats.features_row`). The
figures are in ``benchmarks/bench_dtmf.py``.

Sample positions are counted per channel from the channel's start (creation, :meth:`add_channel` or
:meth:`reset_channel`).
"""

from __future__ import annotations

import numpy as np

from engine.dtmf.analysis import (
    GATE_ENERGY,
    STRICT,
    SUB_SAMPLES,
    Features,
    block_energy,
    features,
    gate,
)
from engine.dtmf.decision import Field, RowAccepted, new_state, step_scalar, step_vector
from engine.dtmf.event import KeyEvent
from engine.dtmf.floats import Lists, features_lists, features_row
from engine.dtmf.tones import KEYS

#: Channels in play at once above which the decision runs vectorised (numpy) instead of per channel.
VECTOR_MIN_CHANNELS = 24
#: Windows (channels × windows per call) up to which their features are computed with Python floats rather
#: than numpy (the two agree to the bit), when the decision also runs per channel.
LIST_MAX_WINDOWS = 64
#: Raw samples kept per channel: the two sub-blocks before the next call's first (its first window's
#: other half, and the window before it for the phase advance).
HISTORY_SAMPLES = 2 * SUB_SAMPLES
#: Screening threshold (Σx², int16² units): a little under the gate, so that rounding in the screen's float32
#: sums (of at most 320 samples: relative error < 1e-4) never skips a window the exact analysis would gate.
SCREEN_ENERGY = GATE_ENERGY * (1 - 1e-3)
_RUN, _HELD = int(Field.RUN), int(Field.HELD)  # list indices on the per-frame path (an IntEnum costs more)


class BatchDtmfDetector:
    """Detects DTMF in many channels at once: feed one (channels, n) int16 array per tick.

    State is kept across calls: any split of the audio into calls gives the same events. Channels join with
    :meth:`add_channel` and leave with :meth:`remove_channel`, which shifts later channels down by one (as
    ``list.pop`` does), so a channel's index always equals its row in ``frames``.
    """

    def __init__(self, channels: int = 1) -> None:
        if channels < 0:
            raise ValueError(f"channels must be >= 0, got {channels}")
        self._fed = 0  # samples fed per channel since the detector started
        self._rest = np.zeros((channels, 0), dtype=np.float32)  # incomplete sub-block
        self._hist = np.zeros((channels, HISTORY_SAMPLES), dtype=np.float32)  # the last two sub-blocks
        self._tail = np.zeros(channels, dtype=np.float32)  # ≥ Σx² of the last sub-block (to screen)
        self._state = new_state(channels, 0)
        self._active: set[int] = set()  # channels with a run or a held key in progress

    @property
    def channels(self) -> int:
        """The number of channels (rows expected by :meth:`process`)."""
        return self._state.shape[1]

    def add_channel(self) -> int:
        """Append a channel with fresh state (its positions count from now); return its index."""
        return self.add_channels(1)

    def add_channels(self, count: int) -> int:
        """Append ``count`` channels with fresh state in one step; return the index of the first."""
        first = self.channels
        self._rest = np.concatenate([self._rest, np.zeros((count, self._rest.shape[1]), np.float32)])
        self._hist = np.concatenate([self._hist, np.zeros((count, HISTORY_SAMPLES), np.float32)])
        self._tail = np.concatenate([self._tail, np.zeros(count, np.float32)])
        self._state = np.concatenate([self._state, new_state(count, self._fed)], axis=1)
        return first

    def remove_channel(self, index: int) -> None:
        """Drop channel ``index``; channels after it shift down by one."""
        self._check(index)
        for name in ("_rest", "_hist", "_tail"):
            setattr(self, name, np.delete(getattr(self, name), index, axis=0))
        self._state = np.delete(self._state, index, axis=1)
        self._active = {c - (c > index) for c in self._active if c != index}

    def reset_channel(self, index: int) -> None:
        """Forget channel ``index``'s audio and state; its positions count from now."""
        self._check(index)
        for name in ("_rest", "_hist", "_tail"):
            getattr(self, name)[index] = 0
        self._state[:, index] = new_state(1, self._fed)[:, 0]
        self._active.discard(index)

    def _check(self, index: int) -> None:
        if not 0 <= index < self.channels:
            raise IndexError(f"no channel {index} (the detector has {self.channels})")

    def process(self, frames: np.ndarray, hold: np.ndarray | None = None) -> list[tuple[int, KeyEvent]]:
        """Feed ``frames`` (channels, n) int16, any n ≥ 0; return (channel, event) for keys accepted now.

        ``hold``: channels whose row is no audio this time (their jitter buffer ran dry, its playout waits):
        left as they were and reporting nothing, so a wait inside a tone does not cut it in two (positions
        advance for all: the tone measures longer by the wait). Needs whole sub-blocks, as 20 ms frames are.
        """
        if hold is None or not len(hold):
            return self._process(frames)
        if frames.shape[1] % SUB_SAMPLES or self._rest.shape[1]:
            raise ValueError(f"hold needs whole sub-blocks of {SUB_SAMPLES} samples, got {frames.shape[1]}")
        held = hold.tolist()
        saved = self._hist[held].copy(), self._tail[held].copy(), self._state[:, held].copy()
        active = self._active.intersection(held)
        events = self._process(frames)
        self._hist[held], self._tail[held], self._state[:, held] = saved
        self._active = self._active.difference(held) | active
        return [(c, event) for c, event in events if c not in saved_set] if (saved_set := set(held)) else events

    def _process(self, frames: np.ndarray) -> list[tuple[int, KeyEvent]]:
        channels = self._state.shape[1]
        if frames.ndim != 2 or frames.shape[0] != channels:
            raise ValueError(f"frames must have shape ({channels}, n), got {frames.shape}")
        x = frames.astype(np.float32)  # a fresh array: views of it are kept as history
        rest = self._rest.shape[1]
        first_end = self._fed - rest + SUB_SAMPLES  # global end of the call's first window
        self._fed += frames.shape[1]
        if rest:
            x = np.concatenate([self._rest, x], axis=1)
        subs = x.shape[1] // SUB_SAMPLES
        cut = subs * SUB_SAMPLES
        if cut != x.shape[1] or rest:
            self._rest, x = x[:, cut:], x[:, :cut]
        if subs == 0 or channels == 0:
            return []
        hist = self._hist
        self._hist = x[:, -HISTORY_SAMPLES:] if subs >= 2 else np.concatenate([hist, x], axis=1)[:, SUB_SAMPLES:]
        if channels == 1 and subs <= 8:  # screen with one dot product: the call's energy (bounding its last
            # sub-block's, kept for the next call); longer rows take the per-sub-block sums below
            row = x[0]
            energy = float(np.dot(row, row))
            loud = energy + float(self._tail[0]) >= SCREEN_ENERGY
            self._tail[0] = energy
            if not loud:
                return self._decide(_NO_ROWS, [], subs, first_end) if self._active else []
            return self._analyse(_ROW0, hist, x, first_end)
        energy_sub = block_energy(x.reshape(-1, SUB_SAMPLES)).reshape(channels, subs)
        loud = energy_sub[:, 0] + self._tail >= SCREEN_ENERGY
        if subs > 1:
            loud |= (energy_sub[:, 1:] + energy_sub[:, :-1]).max(axis=1) >= SCREEN_ENERGY
        self._tail = energy_sub[:, -1]
        rows = np.flatnonzero(loud)
        if len(rows) < channels:
            hist, x = hist[rows], x[rows]
        return self._analyse(rows, hist, x, first_end)

    def process_one(self, samples: np.ndarray) -> list[KeyEvent] | None:
        """Feed channel 0 of a one-channel detector with ``samples`` (n,) int16, as :meth:`process` would.

        A shorter path; None (nothing fed) unless n is a multiple of :data:`SUB_SAMPLES` up to 8 of them and no
        incomplete sub-block is pending.
        """
        n = samples.shape[0]
        if n % SUB_SAMPLES or not 0 < n <= 8 * SUB_SAMPLES or self._rest.shape[1] or self._state.shape[1] != 1:
            return None
        x = samples.astype(np.float32)
        first_end = self._fed + SUB_SAMPLES
        self._fed += n
        hist = self._hist
        self._hist = x[None, -HISTORY_SAMPLES:] if n > SUB_SAMPLES else np.concatenate([hist[:, SUB_SAMPLES:],
                                                                                           x[None]], axis=1)
        energy = float(np.dot(x, x))  # the screen of process, to the bit
        loud = energy + float(self._tail[0]) >= SCREEN_ENERGY
        self._tail[0] = energy
        f = features_row(np.concatenate([hist[0], x]).reshape(-1, SUB_SAMPLES)) if loud else None
        if f is None:
            if not self._active:
                return []
            windows = n // SUB_SAMPLES
            f = ([-1] * windows, [0] * windows, *([0.0] * windows,) * 4)  # type: ignore[assignment]
        v = self._state[:, 0].tolist()
        found = step_scalar(v, *f, first_end)
        self._state[:, 0] = v
        self._active = {0} if v[_RUN] >= 0 or v[_HELD] >= 0 else set()
        return [KeyEvent(KEYS[k], *rest) for k, *rest in found]

    def _analyse(self, rows: np.ndarray, hist: np.ndarray, body: np.ndarray,
                 first_end: int) -> list[tuple[int, KeyEvent]]:
        """Analyse channels ``rows`` (their history and new sub-blocks, float32) and decide.

        The first new window ends at global sample ``first_end``.
        """
        subs = body.shape[1] // SUB_SAMPLES
        windows = None
        if len(rows):
            blocks = np.concatenate([hist, body], axis=1).reshape(-1, SUB_SAMPLES)
            windows = gate(blocks, block_energy(blocks).reshape(len(rows), subs + 2))
        if windows is None:
            return self._decide(_NO_ROWS, [], subs, first_end) if self._active else []
        hit = windows[2].any(axis=1)
        if not hit.all():  # rows whose windows all stay under the gate
            rows, windows = rows[hit], tuple(a[hit] for a in windows)
        few = windows[2].size <= LIST_MAX_WINDOWS and len(rows) + len(self._active) < VECTOR_MIN_CHANNELS
        return self._decide(rows, features_lists(*windows) if few else features(*windows), subs, first_end)

    def _decide(self, rows: np.ndarray, f: Features | list[Lists], windows: int,
                first_end: int) -> list[tuple[int, KeyEvent]]:
        """Run the decisions of channels ``rows`` and of those with a key in progress over ``windows`` windows.

        ``f``: the windows' features of ``rows``, as arrays or as lists. The first window ends at global sample
        ``first_end``.
        """
        gated = rows.tolist()
        todo = sorted(self._active.union(gated)) if gated else sorted(self._active)
        found: list[RowAccepted] = []  # with the channel for the row
        if len(todo) < VECTOR_MIN_CHANNELS:
            if isinstance(f, Features):
                f = list(zip(np.where(f.gated, f.key, -1).tolist(), f.status.tolist(), f.amp_low.tolist(),
                             f.amp_high.tolist(), f.dev_low.tolist(), f.dev_high.tolist(), strict=True))
            windows_of = dict(zip(gated, f, strict=True))
            for c in todo:
                v = self._state[:, c].tolist()
                lists = windows_of.get(c) or ([-1] * windows, [0] * windows, *([0.0] * windows,) * 4)
                found += [(c, *ev) for ev in step_scalar(v, *lists, first_end)]
                self._state[:, c] = v
                if v[_RUN] >= 0 or v[_HELD] >= 0:
                    self._active.add(c)
                else:
                    self._active.discard(c)
        else:
            idx = np.array(todo)
            shape = (len(idx), windows)
            key, status = np.full(shape, -1), np.zeros(shape, dtype=np.int64)
            a_l, a_h, d_l, d_h = (np.zeros(shape) for _ in range(4))
            if gated:
                assert isinstance(f, Features)  # fewer channels than that take the lists
                pos = np.searchsorted(idx, rows)
                g = f.gated
                key[pos] = np.where(g, f.key, -1)
                status[pos] = np.where(g, f.status, 0)
                a_l[pos], a_h[pos] = np.where(g, f.amp_low, 0.0), np.where(g, f.amp_high, 0.0)
                strict = g & (f.status == STRICT)
                d_l[pos], d_h[pos] = np.where(strict, f.dev_low, 0.0), np.where(strict, f.dev_high, 0.0)
            st = self._state[:, idx]
            found = [(todo[r], *ev) for r, *ev in step_vector(st, key, status, a_l, a_h, d_l, d_h, first_end)]
            self._state[:, idx] = st
            live = (st[Field.RUN] >= 0) | (st[Field.HELD] >= 0)
            self._active = set(idx[live].tolist())
        if len(found) > 1:
            found.sort(key=lambda e: (e[0], e[3]))
        return [(c, KeyEvent(KEYS[k], *rest)) for c, k, *rest in found]


_ROW0 = np.zeros(1, dtype=np.intp)
_NO_ROWS = np.zeros(0, dtype=np.intp)

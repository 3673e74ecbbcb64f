"""Streaming in-band DTMF detection (ITU-T Q.24 acceptance as Asterisk/spandsp implement it), batched.

Analysis (:mod:`engine.dtmf_analysis`): 10 ms Hann windows every 5 ms; per window the candidate key, each
tone's Hann-corrected amplitude, its frequency from the bin's phase advance, and the two tones' share of the
window's power. Windows pass a gate (≥ −38 dBm0, strongest bins hold ≥ 45 % of the power) before analysis.

Decision (:mod:`engine.dtmf_decision`), per channel, over a *run* of consecutive gated windows with the same
candidate key. A window is *strict* when both tones are within ±3 % and hold ≥ 75 % of its power. A key is
accepted when the run has

* duration ``D = 5 ms · Σ amplitude / max amplitude`` (per tone, the smaller) ≥ 27 ms. Hann at half overlap
  sums to one, so D is the tone's length whatever its alignment to the window grid: 40 ms tones pass,
  20–23 ms tones never do;
* at least two strict windows, and no non-strict window (measurable: not an onset or drop-out edge) as loud
  as 70 % of the tone (talk-off guard);
* the strict windows' amplitude-weighted mean deviation of each tone within ±2.5 %, and the two deviations
  within 3.5 % of each other (±1.5 % each makes 3 %; a note with its octave, which a 1.917 pair of keys 2,
  6 and C invites, makes 4.3 %);
* the two tones' total power ≥ −26.5 dBm0 (−29.5 dBm0 per tone at zero twist);
* twist (low − high level) from −6 dB (reverse) to +10 dB (normal).

A key is reported once, when accepted, then *held*: it ends after 4 windows (20 ms) in a row without it at
≥ 1/4 of its accepted amplitude, so drop-outs up to 10 ms are bridged and a 40 ms pause separates two
presses of the same key. Latency: ~32 ms from the tone's onset (median). The decision runs per channel in
Python for a few channels in play, vectorised across channels for many; both give identical results.

Sample positions are counted per channel from the channel's start (creation, :meth:`add_channel` or
:meth:`reset_channel`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dtmf_analysis import (
    FIRST,
    GATE_ENERGY,
    STRICT,
    SUB_SAMPLES,
    TABLE,
    WINDOW_SAMPLES,
    Features,
    window_features,
)
from .dtmf_decision import HELD, RUN, new_state, step_scalar, step_vector
from .tones import KEYS

#: Channels in play at once above which the decision runs vectorised (numpy) instead of per channel.
VECTOR_MIN_CHANNELS = 24


@dataclass(frozen=True)
class KeyEvent:
    """A detected key. ``start_sample``: estimated onset of the tone; ``detected_sample``: end of the window
    that confirmed it; both in samples since the channel's start."""

    key: str
    start_sample: int
    detected_sample: int


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
        self._first = np.zeros((channels, 16), dtype=np.float32)  # first-half bins of the last sub-block
        self._energy_sub = np.zeros(channels, dtype=np.float32)  # Σx² of the last sub-block
        self._x_last = np.zeros((channels, 16), dtype=np.float32)  # the last window
        self._energy_last = np.zeros(channels, dtype=np.float32)
        self._state = new_state(channels, 0)
        self._active: set[int] = set()

    @property
    def channels(self) -> int:
        """The number of channels (rows expected by :meth:`process`)."""
        return self._state.shape[1]

    def add_channel(self) -> int:
        """Append a channel with fresh state (its positions count from now); return its index."""
        self._rest = np.concatenate([self._rest, np.zeros((1, self._rest.shape[1]), np.float32)])
        self._first = np.concatenate([self._first, np.zeros((1, 16), np.float32)])
        self._x_last = np.concatenate([self._x_last, np.zeros((1, 16), np.float32)])
        self._energy_sub = np.append(self._energy_sub, np.float32(0))
        self._energy_last = np.append(self._energy_last, np.float32(0))
        self._state = np.concatenate([self._state, new_state(1, self._fed)], axis=1)
        return self.channels - 1

    def remove_channel(self, index: int) -> None:
        """Drop channel ``index``; channels after it shift down by one."""
        self._check(index)
        for name in ("_rest", "_first", "_x_last", "_energy_sub", "_energy_last"):
            setattr(self, name, np.delete(getattr(self, name), index, axis=0))
        self._state = np.delete(self._state, index, axis=1)
        self._active = {c - (c > index) for c in self._active if c != index}

    def reset_channel(self, index: int) -> None:
        """Forget channel ``index``'s audio and state; its positions count from now."""
        self._check(index)
        for name in ("_rest", "_first", "_x_last", "_energy_sub", "_energy_last"):
            getattr(self, name)[index] = 0
        self._state[:, index] = new_state(1, self._fed)[:, 0]
        self._active.discard(index)

    def _check(self, index: int) -> None:
        if not 0 <= index < self.channels:
            raise IndexError(f"no channel {index} (the detector has {self.channels})")

    def process(self, frames: np.ndarray) -> list[tuple[int, KeyEvent]]:
        """Feed ``frames`` (channels, n) int16, any n ≥ 0; return (channel, event) for keys accepted now."""
        if frames.ndim != 2 or frames.shape[0] != self.channels:
            raise ValueError(f"frames must have shape ({self.channels}, n), got {frames.shape}")
        base = self._fed - self._rest.shape[1]  # global position of the buffer's first sample
        self._fed += frames.shape[1]
        x = frames.astype(np.float32)
        if self._rest.shape[1]:
            x = np.concatenate([self._rest, x], axis=1)
        subs = x.shape[1] // SUB_SAMPLES
        self._rest = x[:, subs * SUB_SAMPLES:].copy()
        if subs == 0 or not self.channels:
            return []
        blocks = x[:, :subs * SUB_SAMPLES].reshape(-1, SUB_SAMPLES)
        energy_sub = np.einsum("ij,ij->i", blocks, blocks).reshape(-1, subs)
        energy = np.concatenate([self._energy_sub[:, None], energy_sub[:, :-1]], axis=1) + energy_sub
        quiet = not self._active and float(energy.max()) < GATE_ENERGY
        energy_before, x_before = self._energy_last, self._x_last
        self._energy_sub, self._energy_last = energy_sub[:, -1], energy[:, -1]
        if quiet:  # nothing to analyse: only the next window's first half is needed
            self._first = blocks.reshape(-1, subs, SUB_SAMPLES)[:, -1] @ FIRST
            return []
        prod = (blocks @ TABLE).reshape(-1, subs, 32)
        win = prod[:, :, 16:].copy()
        win[:, 0] += self._first
        win[:, 1:] += prod[:, :-1, :16]
        self._first = prod[:, -1, :16]
        self._x_last = win[:, -1]
        feats = window_features(win, energy, x_before, energy_before)
        return self._decide(feats, subs, base + WINDOW_SAMPLES - SUB_SAMPLES)

    def _decide(self, f: Features, windows: int, first_end: int) -> list[tuple[int, KeyEvent]]:
        """Run the channels' decisions over ``windows`` windows, the first ending at global ``first_end``."""
        gated = f.channel.tolist()
        todo = sorted(self._active.union(gated))
        if not todo:
            return []
        found: list[tuple[int, int, int, int]] = []  # (channel, key, start, detected)
        if len(todo) < VECTOR_MIN_CHANNELS:
            rows = list(zip(f.window.tolist(), f.key.tolist(), f.status.tolist(), f.amp_low.tolist(),
                            f.amp_high.tolist(), f.dev_low.tolist(), f.dev_high.tolist(), strict=True))
            by_channel: dict[int, list[tuple[int, int, int, float, float, float, float]]] = {}
            for c, row in zip(gated, rows, strict=True):
                by_channel.setdefault(c, []).append(row)
            for c in todo:
                v = self._state[:, c].tolist()
                found += [(c, *ev) for ev in step_scalar(v, by_channel.get(c, []), windows, first_end)]
                self._state[:, c] = v
        else:
            idx = np.array(todo)
            pos = np.searchsorted(idx, f.channel)
            shape = (len(idx), windows)
            key, status = np.full(shape, -1), np.zeros(shape, dtype=np.int64)
            a_l, a_h, d_l, d_h = (np.zeros(shape) for _ in range(4))
            key[pos, f.window], status[pos, f.window] = f.key, f.status
            a_l[pos, f.window], a_h[pos, f.window] = f.amp_low, f.amp_high
            strict = f.status == STRICT
            d_l[pos, f.window] = np.where(strict, f.dev_low, 0.0)
            d_h[pos, f.window] = np.where(strict, f.dev_high, 0.0)
            st = self._state[:, idx]
            found = [(todo[r], *ev) for r, *ev in step_vector(st, key, status, a_l, a_h, d_l, d_h, first_end)]
            self._state[:, idx] = st
        live = (self._state[RUN, todo] >= 0) | (self._state[HELD, todo] >= 0)
        for c, alive in zip(todo, live.tolist(), strict=True):
            if alive:
                self._active.add(c)
            else:
                self._active.discard(c)
        found.sort(key=lambda e: (e[0], e[3]))
        return [(c, KeyEvent(KEYS[k], start, detected)) for c, k, start, detected in found]


class DtmfDetector:
    """One channel; a thin wrapper over ``BatchDtmfDetector(1)``: single and batched results are identical."""

    def __init__(self) -> None:
        self._batch = BatchDtmfDetector(1)

    def process(self, samples: np.ndarray) -> list[KeyEvent]:
        """Feed int16 ``samples`` (any length); return the keys accepted within them."""
        return [ev for _, ev in self._batch.process(np.asarray(samples).reshape(1, -1))]

    def reset(self) -> None:
        """Forget all audio; positions count from now."""
        self._batch.reset_channel(0)


def detect_keys(samples: np.ndarray) -> list[KeyEvent]:
    """All keys in a whole int16 buffer, flushed with silence so a tone ending the buffer is still reported
    if long enough (``detected_sample`` is then clamped to the buffer's length)."""
    det = DtmfDetector()
    events = det.process(samples)
    events += det.process(np.zeros(WINDOW_SAMPLES + SUB_SAMPLES, dtype=np.int16))
    n = len(samples)
    return [ev if ev.detected_sample <= n else KeyEvent(ev.key, ev.start_sample, n) for ev in events]

"""The DTMF detector's per-channel decision (runs, acceptance, hold), in two equal implementations.

State lives in one float64 array of shape (:data:`FIELDS`, channels), one row per :class:`Field`.
:func:`step_scalar` walks one channel's windows with Python floats (cheap for a few channels); :func:`step_vector`
walks all given channels at once, window by window, with numpy (cheap for many). Both perform the same float64
operations in the same order and share the acceptance test (:func:`accepts`), so they give identical results;
the rules are described in :mod:`engine.dtmf.detector`, their thresholds are in :mod:`engine.dtmf.thresholds`.
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import TypeVar

import numpy as np

from engine.dtmf.analysis import FAILED, HOP_SAMPLES, STRICT
from engine.dtmf.thresholds import (
    HOLD_FRACTION,
    LOUD_FAILURE_FRACTION,
    MAX_DEVIATION,
    MAX_DIFFERENTIAL_DEVIATION,
    MAX_NORMAL_TWIST_DB,
    MAX_REVERSE_TWIST_DB,
    MIN_TONE_SAMPLES,
    MIN_TOTAL_LEVEL_DBM0,
    MISSES_TO_END,
)
from engine.format import dbm0_to_peak


class Field(IntEnum):
    """The rows of the decision state: the run in progress, then the key held.

    Amplitudes are peaks in int16 units; keys are indices into :data:`~engine.dtmf.tones.KEYS` (−1: none).
    """

    RUN = 0  #: candidate key of the run of gated windows in progress (−1: no run)
    SUM_LOW = 1  #: Σ low-tone amplitude over the run's windows
    SUM_HIGH = 2  #: Σ high-tone amplitude
    MAX_LOW = 3  #: largest low-tone amplitude of the run
    MAX_HIGH = 4  #: largest high-tone amplitude
    FAILED_LOW = 5  #: largest low-tone amplitude among the run's failed (non-strict, measurable) windows
    FAILED_HIGH = 6  #: largest high-tone amplitude among them
    STRICT_COUNT = 7  #: strict windows in the run
    DEV_LOW = 8  #: Σ weight · low-tone deviation over the strict windows
    DEV_HIGH = 9  #: Σ weight · high-tone deviation
    WEIGHT = 10  #: Σ weight (low × high amplitude) over the strict windows
    HELD = 11  #: the key accepted and not yet ended (−1: none)
    HELD_LOW = 12  #: its low-tone amplitude when accepted
    HELD_HIGH = 13  #: its high-tone amplitude when accepted
    MISSES = 14  #: windows in a row without the held key
    ORIGIN = 15  #: global sample from which the channel's positions count


FIELDS = len(Field)
#: A_l² + A_h² (peak² of the two sines) at :data:`~engine.dtmf.thresholds.MIN_TOTAL_LEVEL_DBM0`.
MIN_POWER = dbm0_to_peak(MIN_TOTAL_LEVEL_DBM0) ** 2
#: Smallest high/low amplitude ratio accepted (normal twist).
MIN_HIGH_OVER_LOW = 10 ** (-MAX_NORMAL_TWIST_DB / 20)
#: Smallest low/high amplitude ratio accepted (reverse twist).
MIN_LOW_OVER_HIGH = 10 ** (-MAX_REVERSE_TWIST_DB / 20)

#: An accepted key: (key, start_sample, detected_sample, peak amplitude of the stronger tone, low/high ratio of the
#: run's mean amplitudes).
Accepted = tuple[int, int, int, float, float]
#: An accepted key of one of :func:`step_vector`'s rows: (row, *:data:`Accepted`).
RowAccepted = tuple[int, int, int, int, float, float]
_T = TypeVar("_T", float, np.ndarray)


def new_state(channels: int, origin: int) -> np.ndarray:
    """Fresh state for ``channels`` channels whose positions count from global sample ``origin``."""
    state = np.zeros((FIELDS, channels))
    state[Field.RUN] = state[Field.HELD] = -1.0
    state[Field.ORIGIN] = origin
    return state


def accepts(duration: _T, sum_low: _T, sum_high: _T, max_low: _T, max_high: _T, failed_low: _T, failed_high: _T,
            dev_low: _T, dev_high: _T, weight: _T) -> bool | np.ndarray:
    """The acceptance test of a run, for Python floats or numpy arrays alike (element-wise).

    ``duration``: the run's measured tone length (samples); the others are the run's :class:`Field` values. Twist is
    measured on the run's mean amplitudes (its sums): the largest window of each tone is biased by the other tone's
    leakage, which rotates in phase from one window to the next and averages out over the run.
    """
    tolerance = MAX_DEVIATION * weight
    return ((duration >= MIN_TONE_SAMPLES) & (max_low * max_low + max_high * max_high >= MIN_POWER)
            & (sum_high >= MIN_HIGH_OVER_LOW * sum_low) & (sum_low >= MIN_LOW_OVER_HIGH * sum_high)
            & ((failed_low < LOUD_FAILURE_FRACTION * max_low) | (failed_high < LOUD_FAILURE_FRACTION * max_high))
            & (abs(dev_low) <= tolerance) & (abs(dev_high) <= tolerance)
            & (abs(dev_high - dev_low) <= MAX_DIFFERENTIAL_DEVIATION * weight))


def _onset(end: float, duration: float, origin: float) -> int:
    return int(max(0.0, end - HOP_SAMPLES // 2 - math.ceil(duration) - origin))


def step_scalar(v: list[float], key: list[int], status: list[int], a_l: list[float], a_h: list[float],
                d_l: list[float], d_h: list[float], first_end: int) -> list[Accepted]:
    """Advance one channel over its windows; return the keys accepted (:data:`Accepted`).

    State ``v``: a list of :data:`FIELDS` floats (indexed by :class:`Field`), updated in place. The first window ends
    at global sample ``first_end``; per window: ``key`` (−1 where not gated), ``status``, amplitudes and deviations.
    """
    # Unpacked in Field order (an IntEnum index costs ten times an int's on this per-window path); the vectorised
    # twin reads every field by name, and the two are tested equal.
    (run, sum_low, sum_high, max_low, max_high, failed_low, failed_high, strict_count, dev_low, dev_high, weight,
     held, held_low, held_high, misses, origin) = v
    out = []
    for w, k in enumerate(key):
        if held >= 0:
            if k == held and a_l[w] >= HOLD_FRACTION * held_low and a_h[w] >= HOLD_FRACTION * held_high:
                misses = 0.0
            else:
                misses += 1.0
                if misses >= MISSES_TO_END:
                    if run == held:
                        run = -1.0
                    held = -1.0
        if k < 0:
            run = -1.0
            continue
        amp_low, amp_high = a_l[w], a_h[w]
        if k != run:
            run = float(k)
            sum_low = sum_high = max_low = max_high = failed_low = failed_high = 0.0
            strict_count = dev_low = dev_high = weight = 0.0
        sum_low += amp_low
        sum_high += amp_high
        max_low = max(max_low, amp_low)
        max_high = max(max_high, amp_high)
        s = status[w]
        if s == STRICT:
            strict_count += 1.0
            x = amp_low * amp_high
            weight += x
            dev_low += x * d_l[w]
            dev_high += x * d_h[w]
        elif s == FAILED:
            failed_low = max(failed_low, amp_low)
            failed_high = max(failed_high, amp_high)
        if k == held or strict_count < 2:
            continue
        duration = HOP_SAMPLES * min(sum_low / max_low, sum_high / max_high)
        if duration >= MIN_TONE_SAMPLES and accepts(  # most runs are still short: the cheap test first
                duration, sum_low, sum_high, max_low, max_high, failed_low, failed_high, dev_low, dev_high, weight):
            held, held_low, held_high, misses = float(k), max_low, max_high, 0.0
            end = first_end + w * HOP_SAMPLES
            out.append((k, _onset(end, duration, origin), int(end - origin), max(max_low, max_high),
                        sum_low / sum_high))
    v[:] = (run, sum_low, sum_high, max_low, max_high, failed_low, failed_high, strict_count, dev_low, dev_high,
            weight, held, held_low, held_high, misses, origin)
    return out


def step_vector(st: np.ndarray, key: np.ndarray, status: np.ndarray, a_l: np.ndarray, a_h: np.ndarray,
                d_l: np.ndarray, d_h: np.ndarray, first_end: int) -> list[RowAccepted]:
    """Advance channels with state ``st`` (FIELDS, n; updated in place) over the windows of dense (n, count) arrays.

    ``key`` is −1 where not gated; ``d_l``/``d_h`` 0 where not strict. Return the keys accepted
    (:data:`RowAccepted`), in window order.
    """
    run, held, misses = st[Field.RUN], st[Field.HELD], st[Field.MISSES]
    held_low, held_high = st[Field.HELD_LOW], st[Field.HELD_HIGH]
    sum_low, sum_high, max_low, max_high = st[Field.SUM_LOW], st[Field.SUM_HIGH], st[Field.MAX_LOW], st[Field.MAX_HIGH]
    failed_low, failed_high, strict_count = st[Field.FAILED_LOW], st[Field.FAILED_HIGH], st[Field.STRICT_COUNT]
    dev_low, dev_high, weight, origin = st[Field.DEV_LOW], st[Field.DEV_HIGH], st[Field.WEIGHT], st[Field.ORIGIN]
    out = []
    for w in range(key.shape[1]):
        k, s, amp_low, amp_high = key[:, w], status[:, w], a_l[:, w], a_h[:, w]
        holding = held >= 0
        present = (holding & (k == held) & (amp_low >= HOLD_FRACTION * held_low)
                   & (amp_high >= HOLD_FRACTION * held_high))
        misses = np.where(present, 0.0, np.where(holding, misses + 1.0, misses))
        ended = holding & (misses >= MISSES_TO_END)
        run = np.where(ended & (run == held), -1.0, run)
        held = np.where(ended, -1.0, held)
        gated = k >= 0
        keep = (k == run).astype(np.float64)  # 0 where a new run starts: its sums restart
        run = np.where(gated, k, -1.0)
        sum_low = sum_low * keep + amp_low
        sum_high = sum_high * keep + amp_high
        max_low = np.maximum(max_low * keep, amp_low)
        max_high = np.maximum(max_high * keep, amp_high)
        strict = s == STRICT
        x = np.where(strict, amp_low * amp_high, 0.0)
        strict_count = strict_count * keep + strict
        weight = weight * keep + x
        dev_low = dev_low * keep + x * d_l[:, w]
        dev_high = dev_high * keep + x * d_h[:, w]
        failed = s == FAILED
        failed_low = np.maximum(failed_low * keep, np.where(failed, amp_low, 0.0))
        failed_high = np.maximum(failed_high * keep, np.where(failed, amp_high, 0.0))
        candidate = gated & (k != held) & (strict_count >= 2)
        if not candidate.any():
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            duration = HOP_SAMPLES * np.minimum(sum_low / max_low, sum_high / max_high)
            ok = candidate & accepts(duration, sum_low, sum_high, max_low, max_high, failed_low, failed_high, dev_low,
                                     dev_high, weight)
        if ok.any():
            held = np.where(ok, k, held)
            held_low = np.where(ok, max_low, held_low)
            held_high = np.where(ok, max_high, held_high)
            misses = np.where(ok, 0.0, misses)
            rows = np.flatnonzero(ok)
            out += _accepted(rows, k[rows], first_end + w * HOP_SAMPLES - origin[rows], duration[rows],
                             np.maximum(max_low[rows], max_high[rows]), sum_low[rows] / sum_high[rows])
    st[Field.RUN], st[Field.HELD], st[Field.MISSES] = run, held, misses
    st[Field.HELD_LOW], st[Field.HELD_HIGH] = held_low, held_high
    st[Field.SUM_LOW], st[Field.SUM_HIGH], st[Field.MAX_LOW], st[Field.MAX_HIGH] = sum_low, sum_high, max_low, max_high
    st[Field.FAILED_LOW], st[Field.FAILED_HIGH], st[Field.STRICT_COUNT] = failed_low, failed_high, strict_count
    st[Field.DEV_LOW], st[Field.DEV_HIGH], st[Field.WEIGHT] = dev_low, dev_high, weight
    return out


def _accepted(rows: np.ndarray, key: np.ndarray, since: np.ndarray, duration: np.ndarray, peak: np.ndarray,
              low_over_high: np.ndarray) -> list[RowAccepted]:
    """:func:`step_vector`'s accepted keys of ``rows``; ``since``: the window's end in the channel's samples."""
    start = np.maximum(0.0, since - HOP_SAMPLES // 2 - np.ceil(duration))  # as _onset, exactly: integers in float64
    return list(zip(rows.tolist(), key.tolist(), start.astype(np.int64).tolist(), since.astype(np.int64).tolist(),
                    peak.tolist(), low_over_high.tolist(), strict=True))

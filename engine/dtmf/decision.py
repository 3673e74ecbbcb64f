"""The DTMF detector's per-channel decision (runs, acceptance, hold), in two equal implementations.

State lives in one float64 array of shape (:data:`FIELDS`, channels). :func:`step_scalar` walks one channel's
windows with Python floats (cheap for a few channels); :func:`step_vector` walks all given channels at once,
window by window, with numpy (cheap for many). Both perform the same float64 operations in the same order, so
they give identical results; the rules are described in :mod:`engine.dtmf.detector`.
"""

from __future__ import annotations

import math

import numpy as np

from engine.dtmf.analysis import FAILED, HOP_SAMPLES, STRICT
from engine.format import dbm0_to_peak

MIN_TONE_SAMPLES = 216  # 27 ms
MAX_DEVIATION = 0.025
#: High − low deviation: ±1.5 % each makes at most 3 %; a note and its octave over a 1.917 pair make 4.3 %.
MAX_DIFFERENTIAL_DEVIATION = 0.035
MIN_TOTAL_LEVEL_DBM0 = -26.5
MAX_NORMAL_TWIST_DB = 10.0
MAX_REVERSE_TWIST_DB = 6.0
MISSES_TO_END = 4
HOLD_FRACTION = 0.25
LOUD_FAILURE_FRACTION = 0.7
MIN_POWER = dbm0_to_peak(MIN_TOTAL_LEVEL_DBM0) ** 2  # A_l² + A_h² (peak² of the two sines)
NORMAL = 10 ** (-MAX_NORMAL_TWIST_DB / 20)
REVERSE = 10 ** (-MAX_REVERSE_TWIST_DB / 20)

# state fields (rows)
(RUN, SUM_L, SUM_H, MAX_L, MAX_H, BAD_L, BAD_H, NSTRICT, DEV_L, DEV_H, WEIGHT, HELD, HELD_L, HELD_H, MISSES,
 ORIGIN) = range(16)
FIELDS = 16


def new_state(channels: int, origin: int) -> np.ndarray:
    """Fresh state for ``channels`` channels whose positions count from global sample ``origin``."""
    st = np.zeros((FIELDS, channels))
    st[RUN] = st[HELD] = -1.0
    st[ORIGIN] = origin
    return st


def _onset(end: float, duration: float, origin: float) -> int:
    return int(max(0.0, end - HOP_SAMPLES // 2 - math.ceil(duration) - origin))


def step_scalar(v: list[float], key: list[int], status: list[int], a_l: list[float], a_h: list[float],
                d_l: list[float], d_h: list[float], first_end: int) -> list[tuple[int, int, int]]:
    """Advance one channel over its windows; return (key, start_sample, detected_sample) of the keys accepted.

    State ``v``: a list of FIELDS floats, updated in place. The first window ends at global sample ``first_end``; per
    window: ``key`` (−1 where not gated), ``status``, amplitudes and deviations.
    """
    run, sl, sh, ml, mh, bl, bh, ns, dl, dh, wt, held, hl, hh, mi, origin = v
    out = []
    for w, k in enumerate(key):
        if held >= 0:
            if k == held and a_l[w] >= HOLD_FRACTION * hl and a_h[w] >= HOLD_FRACTION * hh:
                mi = 0.0
            else:
                mi += 1.0
                if mi >= MISSES_TO_END:
                    if run == held:
                        run = -1.0
                    held = -1.0
        if k < 0:
            run = -1.0
            continue
        al, ah = a_l[w], a_h[w]
        if k != run:
            run = float(k)
            sl = sh = ml = mh = bl = bh = ns = dl = dh = wt = 0.0
        sl += al
        sh += ah
        ml = max(ml, al)
        mh = max(mh, ah)
        s = status[w]
        if s == STRICT:
            ns += 1.0
            x = al * ah
            wt += x
            dl += x * d_l[w]
            dh += x * d_h[w]
        elif s == FAILED:
            bl = max(bl, al)
            bh = max(bh, ah)
        if k == held or ns < 2:
            continue
        duration = HOP_SAMPLES * min(sl / ml, sh / mh)
        tol = MAX_DEVIATION * wt
        if (duration < MIN_TONE_SAMPLES or ml * ml + mh * mh < MIN_POWER
                or mh < NORMAL * ml or ml < REVERSE * mh
                or (bl >= LOUD_FAILURE_FRACTION * ml and bh >= LOUD_FAILURE_FRACTION * mh)
                or abs(dl) > tol or abs(dh) > tol or abs(dh - dl) > MAX_DIFFERENTIAL_DEVIATION * wt):
            continue
        held, hl, hh, mi = float(k), ml, mh, 0.0
        end = first_end + w * HOP_SAMPLES
        out.append((k, _onset(end, duration, origin), int(end - origin)))
    v[:] = [run, sl, sh, ml, mh, bl, bh, ns, dl, dh, wt, held, hl, hh, mi, origin]
    return out


def step_vector(st: np.ndarray, key: np.ndarray, status: np.ndarray, a_l: np.ndarray, a_h: np.ndarray,
                d_l: np.ndarray, d_h: np.ndarray, first_end: int) -> list[tuple[int, int, int, int]]:
    """Advance channels with state ``st`` (FIELDS, n; updated in place) over the windows of dense (n, count) arrays.

    ``key`` is −1 where not gated; ``d_l``/``d_h`` 0 where not strict. Return (row, key, start_sample, detected_sample)
    of the keys accepted, in window order.
    """
    run, sl, sh, ml, mh, bl, bh, ns, dl, dh, wt, held, hl, hh, mi, origin = st
    out = []
    for w in range(key.shape[1]):
        k, s, al, ah = key[:, w], status[:, w], a_l[:, w], a_h[:, w]
        h = held >= 0
        ok = h & (k == held) & (al >= HOLD_FRACTION * hl) & (ah >= HOLD_FRACTION * hh)
        mi = np.where(ok, 0.0, np.where(h, mi + 1.0, mi))
        end_hold = h & (mi >= MISSES_TO_END)
        run = np.where(end_hold & (run == held), -1.0, run)
        held = np.where(end_hold, -1.0, held)
        gated = k >= 0
        keep = (k == run).astype(np.float64)
        run = np.where(gated, k, -1.0)
        sl = sl * keep + al
        sh = sh * keep + ah
        ml = np.maximum(ml * keep, al)
        mh = np.maximum(mh * keep, ah)
        strict = s == STRICT
        x = np.where(strict, al * ah, 0.0)
        ns = ns * keep + strict
        wt = wt * keep + x
        dl = dl * keep + x * d_l[:, w]
        dh = dh * keep + x * d_h[:, w]
        failed = s == FAILED
        bl = np.maximum(bl * keep, np.where(failed, al, 0.0))
        bh = np.maximum(bh * keep, np.where(failed, ah, 0.0))
        cand = gated & (k != held) & (ns >= 2)
        if not cand.any():
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            duration = HOP_SAMPLES * np.minimum(sl / ml, sh / mh)
        tol = MAX_DEVIATION * wt
        acc = cand & ~((duration < MIN_TONE_SAMPLES) | (ml * ml + mh * mh < MIN_POWER) | (mh < NORMAL * ml)
                       | (ml < REVERSE * mh)
                       | ((bl >= LOUD_FAILURE_FRACTION * ml) & (bh >= LOUD_FAILURE_FRACTION * mh))
                       | (np.abs(dl) > tol) | (np.abs(dh) > tol)
                       | (np.abs(dh - dl) > MAX_DIFFERENTIAL_DEVIATION * wt))
        if acc.any():
            held = np.where(acc, k, held)
            hl = np.where(acc, ml, hl)
            hh = np.where(acc, mh, hh)
            mi = np.where(acc, 0.0, mi)
            end = first_end + w * HOP_SAMPLES
            rows = np.flatnonzero(acc)
            since = end - origin[rows]  # as _onset, exactly: integers in float64
            start = np.maximum(0.0, since - HOP_SAMPLES // 2 - np.ceil(duration[rows]))
            out += zip(rows.tolist(), k[rows].tolist(), start.astype(np.int64).tolist(),
                       since.astype(np.int64).tolist(), strict=True)
    st[:] = np.stack([run, sl, sh, ml, mh, bl, bh, ns, dl, dh, wt, held, hl, hh, mi, origin])
    return out

"""The DTMF analysis's features with Python floats: for a few windows, where numpy's cost per call dominates.

:func:`features_lists` equals :func:`engine.dtmf.analysis.features` to the last bit (the same IEEE operations on the
same float64 values, see :mod:`engine.dtmf.analysis`); :func:`features_row` also gates one channel's sub-blocks with
Python floats, its float64 sums standing in for the float32 ones within a margin, and leaves a comparison closer to
its threshold than that to the float32 path, so it agrees to the bit as well.
"""

from __future__ import annotations

import math

import numpy as np

from engine.dtmf.analysis import (
    FAILED,
    FREQS_HZ_LIST,
    GAIN,
    GAIN_GRID_HZ,
    GATE_ENERGY,
    HALF_SUM,
    HZ_PER_RADIAN,
    POWER_SCALE,
    ROT_IM_LIST,
    ROT_RE_LIST,
    STRICT,
    TABLE,
    UNMEASURED,
    WINDOW_SAMPLES,
    block_energy,
    gate,
    strongest_bins,
)
from engine.dtmf.thresholds import GATE_FRACTION, STRICT_DEVIATION, STRICT_FRACTION

Lists = tuple[list[int], list[int], list[float], list[float], list[float], list[float]]
#: Margin (relative) of :func:`features_row`'s float64 stand-ins for float32 sums (off by < 100 float32 ulp):
#: a comparison closer than this to its threshold is left to the float32 path.
_LOW, _HIGH = 1 - 1e-4, 1 + 1e-4
_GATE_LOW, _GATE_HIGH = GATE_ENERGY * _LOW, GATE_ENERGY * _HIGH
_STRICT_LOW, _STRICT_HIGH = STRICT_FRACTION * _LOW, STRICT_FRACTION * _HIGH
_FRACTION32, _SCALE = float(np.float32(GATE_FRACTION)), float(POWER_SCALE)
_GAIN_L, _SLOPE_L = GAIN.tolist(), (np.diff(GAIN) / np.diff(GAIN_GRID_HZ)).tolist()  # np.interp's slopes
_GRID0 = int(GAIN_GRID_HZ[0])
assert np.array_equal(GAIN_GRID_HZ, np.arange(_GRID0, _GRID0 + len(GAIN_GRID_HZ)))  # integers, 1 Hz apart
_vecdot = getattr(np, "vecdot", None)  # numpy ≥ 2


def _lag(cur: list[float], prev: list[float], b: int) -> tuple[float, float, float]:
    """Bin ``b``'s phase advance from ``prev`` to ``cur`` (re, im; rotated by the bin's hop), ``prev``'s magnitude."""
    cr, ci, pr, pi = cur[b], cur[b + 8], prev[b], prev[b + 8]
    re, im = cr * pr + ci * pi, ci * pr - cr * pi
    rot_re, rot_im = ROT_RE_LIST[b], ROT_IM_LIST[b]
    return re * rot_re - im * rot_im, re * rot_im + im * rot_re, math.sqrt(pr * pr + pi * pi)


def _amplitude(magnitude: float, measured: bool, deviation_hz: float, b: int) -> tuple[float, float]:
    """(amplitude, relative deviation) of bin ``b``: np.interp over the gain table's 1 Hz grid, to the bit."""
    if not measured:
        return magnitude / HALF_SUM / 1.0, math.nan
    j = math.floor(deviation_hz) - _GRID0
    gain = _SLOPE_L[j] * (deviation_hz - (j + _GRID0)) + _GAIN_L[j]
    return magnitude / HALF_SUM / gain, deviation_hz / FREQS_HZ_LIST[b]


def _features(xs: list, en: list[list[float]], cands: list[tuple[int, int, int, int, float, float]],
              windows: int, exact: bool = True) -> list[Lists] | None:
    """Features with Python floats.

    ``xs[r][w]``: re and im of the 8 bins of row ``r``'s window ``w`` (as :func:`gate`'s ``x``), ``en[r][w]`` its
    energy; ``cands``: (row, window ≥ 1, low bin, high bin, their powers) of the gated windows. With ``exact`` False,
    ``en`` may be off by < 100 float32 ulp, and None is returned when that could change a status.
    """
    lag_re: list[float] = []
    lag_im: list[float] = []
    found = []
    for r, w, lo, hi, pl, ph in cands:
        cur, prev = xs[r][w], xs[r][w - 1]
        re_l, im_l, prev_l = _lag(cur, prev, lo)
        re_h, im_h, prev_h = _lag(cur, prev, hi)
        lag_re += (re_l, re_h)
        lag_im += (im_l, im_h)
        abs_l, abs_h = math.sqrt(pl), math.sqrt(ph)  # the magnitudes of window w (pl = re² + im² of bin lo)
        found.append((r, w, lo, hi, abs_l, prev_l >= 0.5 * abs_l, abs_h, prev_h >= 0.5 * abs_h))
    angles = np.arctan2(lag_im, lag_re).tolist()
    result = [([-1] * windows, [0] * windows, [0.0] * windows, [0.0] * windows, [0.0] * windows,
               [0.0] * windows) for _ in xs]
    for i, (r, w, lo, hi, abs_l, meas_l, abs_h, meas_h) in enumerate(found):
        a_l, d_l = _amplitude(abs_l, meas_l, angles[2 * i] * HZ_PER_RADIAN, lo)
        a_h, d_h = _amplitude(abs_h, meas_h, angles[2 * i + 1] * HZ_PER_RADIAN, hi)
        e_before = en[r][w - 1]
        if not exact and _GATE_LOW <= e_before < _GATE_HIGH:
            return None
        unmeasured = e_before < GATE_ENERGY or not (meas_l and meas_h)
        strict = not unmeasured and abs(d_l) <= STRICT_DEVIATION and abs(d_h) <= STRICT_DEVIATION
        if strict:
            fraction = (a_l * a_l + a_h * a_h) * (WINDOW_SAMPLES / 2) / en[r][w]
            if not exact and _STRICT_LOW <= fraction < _STRICT_HIGH:
                return None
            strict = fraction >= STRICT_FRACTION
        rk, rs, ral, rah, rdl, rdh = result[r]
        rk[w - 1], rs[w - 1] = lo * 4 + hi - 4, STRICT if strict else (UNMEASURED if unmeasured else FAILED)
        ral[w - 1], rah[w - 1], rdl[w - 1], rdh[w - 1] = a_l, a_h, d_l, d_h
    return result


def features_lists(x: np.ndarray, energy: np.ndarray, gated: np.ndarray) -> list[Lists]:
    """The features of :func:`gate`'s windows, with Python floats; equal to :func:`features`.

    Per row (key, status, amp_low, amp_high, dev_low, dev_high), one entry per window; key −1 where not gated.
    """
    xs, strongest = x.tolist(), strongest_bins(x).tolist()
    cands = []
    for r, w in zip(*(a.tolist() for a in np.nonzero(gated)), strict=True):
        lo, hi = strongest[r][w]
        cur = xs[r][w + 1]
        cands.append((r, w + 1, lo, hi + 4, cur[lo] * cur[lo] + cur[lo + 8] * cur[lo + 8],
                      cur[hi + 4] * cur[hi + 4] + cur[hi + 12] * cur[hi + 12]))
    return _features(xs, energy.tolist(), cands, gated.shape[1])  # type: ignore[return-value]


def features_row_exact(blocks: np.ndarray) -> Lists | None:
    """Features of one channel's sub-blocks by :func:`gate` then :func:`features_lists`.

    The input is (B, :data:`SUB_SAMPLES`) float32 sub-blocks (two of history, then B − 2 new); returns its windows'
    features, or None when no window is gated.
    """
    windows = gate(blocks, block_energy(blocks).reshape(1, -1))
    return None if windows is None else features_lists(*windows)[0]


def features_row(blocks: np.ndarray) -> Lists | None:
    """:func:`features_row_exact`, to the bit, at a fraction of its cost for a few windows.

    One matrix product and one sum of squares with numpy, the gate in float64 with a margin, the rest as
    :func:`features_lists`; the float32 path decides when a comparison is too close to call.
    """
    prod = np.dot(blocks, TABLE)
    xs = (prod[1:, 16:] + prod[:-1, :16]).tolist()
    es = (_vecdot(blocks, blocks) if _vecdot else block_energy(blocks)).tolist()
    en = [es[w] + es[w + 1] for w in range(len(es) - 1)]  # float64: within the margin of gate's
    cands = []
    for w in range(1, len(en)):
        e = en[w]
        if e < _GATE_LOW:
            continue
        if e < _GATE_HIGH:
            return features_row_exact(blocks)
        r0, r1, r2, r3, r4, r5, r6, r7, i0, i1, i2, i3, i4, i5, i6, i7 = xs[w]
        p0, p1, p2, p3 = r0 * r0 + i0 * i0, r1 * r1 + i1 * i1, r2 * r2 + i2 * i2, r3 * r3 + i3 * i3
        p4, p5, p6, p7 = r4 * r4 + i4 * i4, r5 * r5 + i5 * i5, r6 * r6 + i6 * i6, r7 * r7 + i7 * i7
        lo, pl = (1, p1) if p1 > p0 else (0, p0)  # the first of equal maxima, in float64: as strongest
        lo, pl = (2, p2) if p2 > pl else (lo, pl)
        lo, pl = (3, p3) if p3 > pl else (lo, pl)
        hi, ph = (5, p5) if p5 > p4 else (4, p4)
        hi, ph = (6, p6) if p6 > ph else (hi, ph)
        hi, ph = (7, p7) if p7 > ph else (hi, ph)
        need = _FRACTION32 * e
        total, pair = (p0 + p1 + p2 + p3 + p4 + p5 + p6 + p7) * _SCALE, (pl + ph) * _SCALE
        if total < need * _LOW or pair < need * _LOW:
            continue
        if total < need * _HIGH or pair < need * _HIGH:
            return features_row_exact(blocks)
        cands.append((0, w, lo, hi, pl, ph))
    if not cands:
        return None
    f = _features([xs], [en], cands, len(en) - 1, exact=False)
    return f[0] if f is not None else features_row_exact(blocks)

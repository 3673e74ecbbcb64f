"""Block analysis for the DTMF detector: Hann-windowed DFT bins at the 8 DTMF frequencies, for many channels.

Geometry (samples at 8 kHz): audio is cut into sub-blocks of :data:`SUB_SAMPLES` (40 = 5 ms); analysis windows
are :data:`WINDOW_SAMPLES` (80 = 10 ms, periodic Hann) long and advance by :data:`HOP_SAMPLES` (40), so window
``b`` covers sub-blocks ``b-1`` and ``b`` and is computed as soon as sub-block ``b`` is complete. Hann at half
overlap sums to one (COLA), which the detector uses to measure tone duration from window amplitudes.

All 8 complex DFT bins of every sub-block half come from one float32 matrix product
``(channels·sub-blocks, 40) @ (40, 32)``; a window is the first-half product of one sub-block plus the
second-half product of the next.

Per window the strongest low and high bins give the candidate key. Each tone's frequency is measured from the
phase advance of its bin between consecutive windows (lag 40 samples: unambiguous within ±100 Hz), its
amplitude is corrected for the Hann response at that frequency, and the two tones' power is compared with the
window's total power (``fraction``). The gate's and the strict window's thresholds are in
:mod:`engine.dtmf.thresholds`.

The gate (:func:`gate`) runs in float32 with numpy over all the windows handed in. The features of the gated
windows then come from one of two equal implementations: :func:`features` (numpy, dense over rows and
windows: for many channels) and :func:`engine.dtmf.floats.features_lists` (Python floats: for a few windows, where
numpy's cost per call dominates). Both perform the same IEEE operations (+ − × ÷, square roots, the gain table's
linear interpolation as ``np.interp`` computes it; Python and numpy round them alike) on the same float64 values and
share the only transcendental one (arctan2) as a numpy call, so they agree to the last bit: a window's
features depend only on its samples, never on the other rows or on how the audio was split into calls.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from engine.dtmf.thresholds import GATE_FRACTION, GATE_LEVEL_DBM0, STRICT_DEVIATION, STRICT_FRACTION
from engine.dtmf.tones import HIGH_HZ, LOW_HZ
from engine.format import SAMPLE_RATE_HZ, dbm0_to_peak

SUB_SAMPLES = 40
WINDOW_SAMPLES = 2 * SUB_SAMPLES
HOP_SAMPLES = SUB_SAMPLES
FREQS_HZ = np.array(LOW_HZ + HIGH_HZ, dtype=np.float64)

#: Window status: passes every per-window test / fails one / frequency not measurable (onset, drop-out).
STRICT, FAILED, UNMEASURED = 1, 2, 0

_OMEGA = 2 * np.pi * FREQS_HZ / SAMPLE_RATE_HZ
_N = np.arange(WINDOW_SAMPLES)
_HANN = 0.5 - 0.5 * np.cos(2 * np.pi * _N / WINDOW_SAMPLES)
_HANN_SUM = float(_HANN.sum())  # 40: |X| of a full-window tone of peak A is A·_HANN_SUM/2


def _table() -> np.ndarray:
    """The (40, 32) float32 table: [first half re(8), im(8), second half re(8), im(8)].

    Phase is referenced to the window start, so a window's bin is ``first[b-1] + second[b]``.
    """
    cols = []
    for half in range(2):
        n = _N[half * SUB_SAMPLES:(half + 1) * SUB_SAMPLES, None]
        w = _HANN[half * SUB_SAMPLES:(half + 1) * SUB_SAMPLES, None]
        cols += [w * np.cos(_OMEGA * n), -w * np.sin(_OMEGA * n)]
    return np.hstack(cols).astype(np.float32)


TABLE = _table()
_ROT = np.exp(-1j * _OMEGA * HOP_SAMPLES)  # removes the nominal phase advance over one hop
_ROT_RE, _ROT_IM = _ROT.real.copy(), _ROT.imag.copy()
GAIN_GRID_HZ = np.arange(-200.0, 200.5, 1.0)
GAIN = np.abs(np.exp(1j * 2 * np.pi * GAIN_GRID_HZ[:, None] / SAMPLE_RATE_HZ * _N) @ _HANN) / _HANN_SUM
#: Power of a full-window tone pair in int16² units per |X|² (rectangular window power = (A_l²+A_h²)/2).
_PW_TO_POWER = 1.0 / (2 * (_HANN_SUM / 2) ** 2)
GATE_ENERGY = WINDOW_SAMPLES * dbm0_to_peak(GATE_LEVEL_DBM0) ** 2 / 2


POWER_SCALE = np.float32(_PW_TO_POWER * WINDOW_SAMPLES)  # Σ|X|² → rectangular window energy
HZ_PER_RADIAN = SAMPLE_RATE_HZ / (2 * np.pi * HOP_SAMPLES)
HALF_SUM = _HANN_SUM / 2
_PAIR = np.array([0, 4])  # offset of the low / high group among the 8 bins
ROT_RE_LIST, ROT_IM_LIST, FREQS_HZ_LIST = _ROT_RE.tolist(), _ROT_IM.tolist(), FREQS_HZ.tolist()


class Features:
    """Dense features per analysed row and window, arrays of shape (rows, windows).

    ``gated`` (bool: the window passed the gate; the other fields of a window not gated are meaningless), ``key`` (index
    into KEYS), ``status`` (:data:`STRICT`, :data:`FAILED` or :data:`UNMEASURED`), ``amp_low``/``amp_high`` (peak
    amplitude in int16 units, Hann-corrected), ``dev_low``/``dev_high`` (relative frequency deviation, NaN if
    unmeasurable).
    """

    __slots__ = ("gated", "key", "status", "amp_low", "amp_high", "dev_low", "dev_high")

    def __init__(self, gated: np.ndarray, key: np.ndarray, status: np.ndarray, amp_low: np.ndarray,
                 amp_high: np.ndarray, dev_low: np.ndarray, dev_high: np.ndarray) -> None:
        self.gated, self.key, self.status = gated, key, status
        self.amp_low, self.amp_high, self.dev_low, self.dev_high = amp_low, amp_high, dev_low, dev_high


def block_energy(blocks: np.ndarray) -> np.ndarray:
    """Σx² (int16² units, float32) of each row of ``blocks`` (rows, :data:`SUB_SAMPLES`) float32.

    The one formula every path uses for the gate's energies, so that they agree to the last bit
    (:func:`engine.dtmf.floats.features_row` only takes a float64 stand-in within its margin).
    """
    return np.einsum("ij,ij->i", blocks, blocks)


def gate(blocks: np.ndarray, energy_sub: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The windows over ``blocks`` and which pass the gate: (x, energy, gated), or None when none does.

    ``blocks``: (rows·B, :data:`SUB_SAMPLES`) float32 sub-blocks, B per row.

    ``energy_sub`` (rows, B): the blocks' :func:`block_energy`. Sub-blocks 0 and 1 of a row are history: its
    window ``w`` (0-based, ``w < B - 2``) covers sub-blocks ``w + 1`` and ``w + 2`` and is ``x[:, w + 1]``;
    ``x[:, 0]`` (sub-blocks 0 and 1) precedes it for the phase advance. ``x`` (rows, B − 1, 16) float32: re of
    the 8 bins, then im; ``energy`` (rows, B − 1) float32: Σx² of each window; ``gated`` (rows, B − 2).
    """
    rows, count = energy_sub.shape
    prod = (blocks @ TABLE).reshape(rows, count, 32)
    x = prod[:, 1:, 16:] + prod[:, :-1, :16]
    energy = energy_sub[:, :-1] + energy_sub[:, 1:]
    e_cur = energy[:, 1:]
    flat = x.reshape(-1, 16)
    total = np.einsum("ij,ij->i", flat, flat).reshape(energy.shape)[:, 1:]  # Σ over 8 bins ≥ the pair's
    sq = x[:, 1:] * x[:, 1:]
    pw = sq[..., :8] + sq[..., 8:]
    strongest = np.maximum(np.maximum(pw[..., 0::4], pw[..., 1::4]), np.maximum(pw[..., 2::4], pw[..., 3::4]))
    need = GATE_FRACTION * e_cur
    gated = ((e_cur >= GATE_ENERGY) & (total * POWER_SCALE >= need)
             & ((strongest[..., 0] + strongest[..., 1]) * POWER_SCALE >= need))
    return (x, energy, gated) if gated.any() else None


@lru_cache(maxsize=64)
def _window_offsets(rows: int, windows: int) -> np.ndarray:
    """(rows, windows − 1, 8) flat offsets into a (rows, windows, 16) array, for the low and high bins.

    They are added to the low and high bins four times over: of re (low, high) in window ``w + 1``, then in window
    ``w``, then the same for im.
    """
    start = (np.arange(rows)[:, None] * windows + np.arange(1, windows)) * 16
    return start[:, :, None] + np.array([0, 0, -16, -16, 8, 8, -8, -8])


def strongest_bins(x: np.ndarray) -> np.ndarray:
    """(rows, W, 2): the strongest low bin (0–3) and high bin (0–3, among the high 4) of each window.

    The windows are those of :func:`gate`'s ``x`` but the first (power in float64; the first of equal maxima).
    """
    cur = x[:, 1:].astype(np.float64)
    sq = cur * cur
    pw = sq[..., :8] + sq[..., 8:]
    if pw.size <= 4096:  # argmax over a short last axis costs little for a few windows, much for many
        return pw.reshape(x.shape[0], x.shape[1] - 1, 2, 4).argmax(axis=3)
    a, b, c, d = pw[..., 0::4], pw[..., 1::4], pw[..., 2::4], pw[..., 3::4]  # each (rows, W, 2): low, high
    return np.where(np.maximum(c, d) > np.maximum(a, b), 2 + (d > c), (b > a).astype(np.intp))


def features(x: np.ndarray, energy: np.ndarray, gated: np.ndarray) -> Features:
    """The features of :func:`gate`'s windows, with numpy.

    Dense: windows not gated are computed too, unless they are most, when the gated ones are computed apart and put in
    place.
    """
    rows, windows = gated.shape
    count = int(np.count_nonzero(gated))
    if count * 2 < gated.size:
        r, w = np.nonzero(gated)
        f = features(np.stack([x[r, w], x[r, w + 1]], axis=1), np.stack([energy[r, w], energy[r, w + 1]], axis=1),
                      np.ones((count, 1), dtype=bool))
        out = Features(gated, np.zeros(gated.shape, np.intp), np.zeros(gated.shape, np.intp),
                       *(np.zeros(gated.shape) for _ in range(4)))
        for name in Features.__slots__[1:]:
            getattr(out, name)[r, w] = getattr(f, name)[:, 0]
        return out
    bins = strongest_bins(x) + _PAIR  # (rows, W, 2)
    z = np.take(x, np.concatenate([bins, bins, bins, bins], axis=2) + _window_offsets(rows, windows + 1))
    z = z.astype(np.float64)  # (rows, W, 8): re (low, high) of the window, of the one before, im of both
    cr, pr, ci, pi = z[..., 0:2], z[..., 2:4], z[..., 4:6], z[..., 6:8]
    re, im = cr * pr + ci * pi, ci * pr - cr * pi  # cur · conj(prev), then rotated back by one hop:
    rot_re, rot_im = _ROT_RE[bins], _ROT_IM[bins]
    delta_hz = np.arctan2(re * rot_im + im * rot_re, re * rot_re - im * rot_im) * HZ_PER_RADIAN
    abs_cur = np.sqrt(cr * cr + ci * ci)
    measured = np.sqrt(pr * pr + pi * pi) >= 0.5 * abs_cur
    amp = abs_cur / HALF_SUM / np.where(measured, np.interp(delta_hz, GAIN_GRID_HZ, GAIN), 1.0)
    dev = np.where(measured, delta_hz / FREQS_HZ[bins], np.nan)
    unmeasured = (energy[:, :-1] < GATE_ENERGY) | ~measured.all(axis=2)
    a_l, a_h = amp[..., 0], amp[..., 1]
    fraction = (a_l * a_l + a_h * a_h) * (WINDOW_SAMPLES / 2) / np.maximum(energy[:, 1:], GATE_ENERGY)
    strict = (fraction >= STRICT_FRACTION) & (np.abs(dev) <= STRICT_DEVIATION).all(axis=2) & ~unmeasured
    status = np.where(strict, STRICT, np.where(unmeasured, UNMEASURED, FAILED))
    key = bins[..., 0] * 4 + (bins[..., 1] - 4)
    return Features(gated, key, status, a_l, a_h, dev[..., 0], dev[..., 1])

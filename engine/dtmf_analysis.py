"""Block analysis for the DTMF detector: Hann-windowed DFT bins at the 8 DTMF frequencies, for many channels.

Geometry (samples at 8 kHz): audio is cut into sub-blocks of :data:`SUB_SAMPLES` (40 = 5 ms); analysis windows
are :data:`WINDOW_SAMPLES` (80 = 10 ms, periodic Hann) long and advance by :data:`HOP_SAMPLES` (40), so window
``b`` covers sub-blocks ``b-1`` and ``b`` and is computed as soon as sub-block ``b`` is complete. Hann at half
overlap sums to one (COLA), which the detector uses to measure tone duration from window amplitudes.

All 8 complex DFT bins of every sub-block half come from one float32 matrix product
``(channels·sub-blocks, 40) @ (40, 32)``; a window is the first-half product of one sub-block plus the
second-half product of the next.

Per window the strongest low and high bins give the candidate key. Each tone's frequency is measured from the
phase advance of its bin between consecutive windows (lag 40 samples: unambiguous within ±100 Hz, standard
deviation ≈ 1.5 Hz at 15 dB SNR), its amplitude is corrected for the Hann response at that frequency, and the
two tones' power is compared with the window's total power (``fraction``).
"""

from __future__ import annotations

import numpy as np

from .format import SAMPLE_RATE_HZ, dbm0_to_peak
from .tones import HIGH_HZ, LOW_HZ

SUB_SAMPLES = 40
WINDOW_SAMPLES = 2 * SUB_SAMPLES
HOP_SAMPLES = SUB_SAMPLES
FREQS_HZ = np.array(LOW_HZ + HIGH_HZ, dtype=np.float64)

#: Windows quieter than this total power (dBm0) are not analysed (accepted tones are ≥ −26.5 dBm0 in total).
GATE_LEVEL_DBM0 = -38.0
#: Pre-gate: the strongest low + high bins must hold this share of the window's power (uncorrected).
GATE_FRACTION = 0.45
#: A "strict" window: corrected two-tone power ≥ this share of the window's power ...
STRICT_FRACTION = 0.75
#: ... and each tone within this relative deviation of its nominal frequency (the run average must be
#: within the tighter acceptance tolerance of the detector).
STRICT_DEVIATION = 0.03

#: Window status: passes every per-window test / fails one / frequency not measurable (onset, drop-out).
STRICT, FAILED, UNMEASURED = 1, 2, 0

_OMEGA = 2 * np.pi * FREQS_HZ / SAMPLE_RATE_HZ
_N = np.arange(WINDOW_SAMPLES)
_HANN = 0.5 - 0.5 * np.cos(2 * np.pi * _N / WINDOW_SAMPLES)
_HANN_SUM = float(_HANN.sum())  # 40: |X| of a full-window tone of peak A is A·_HANN_SUM/2


def _table() -> np.ndarray:
    """(40, 32) float32: [first half re(8), im(8), second half re(8), im(8)], phase referenced to the window
    start, so a window's bin is ``first[b-1] + second[b]``."""
    cols = []
    for half in range(2):
        n = _N[half * SUB_SAMPLES:(half + 1) * SUB_SAMPLES, None]
        w = _HANN[half * SUB_SAMPLES:(half + 1) * SUB_SAMPLES, None]
        cols += [w * np.cos(_OMEGA * n), -w * np.sin(_OMEGA * n)]
    return np.hstack(cols).astype(np.float32)


TABLE = _table()
FIRST = np.ascontiguousarray(TABLE[:, :16])
_ROT = np.exp(-1j * _OMEGA * HOP_SAMPLES)  # removes the nominal phase advance over one hop
_GAIN_GRID_HZ = np.arange(-200.0, 200.5, 1.0)
_GAIN = np.abs(np.exp(1j * 2 * np.pi * _GAIN_GRID_HZ[:, None] / SAMPLE_RATE_HZ * _N) @ _HANN) / _HANN_SUM
#: Power of a full-window tone pair in int16² units per |X|² (rectangular window power = (A_l²+A_h²)/2).
_PW_TO_POWER = 1.0 / (2 * (_HANN_SUM / 2) ** 2)
GATE_ENERGY = WINDOW_SAMPLES * dbm0_to_peak(GATE_LEVEL_DBM0) ** 2 / 2


class Features:
    """Per gated window (flat arrays, ordered by channel then window): ``channel``, ``window`` (index within
    the call), ``key`` (index into KEYS), ``status`` (:data:`STRICT`, :data:`FAILED` or :data:`UNMEASURED`),
    ``amp_low``/``amp_high`` (peak amplitude in int16
    units, Hann-corrected), ``dev_low``/``dev_high`` (relative frequency deviation, NaN if unmeasurable)."""

    __slots__ = ("channel", "window", "key", "status", "amp_low", "amp_high", "dev_low", "dev_high")

    def __init__(self, channel: np.ndarray, window: np.ndarray, key: np.ndarray, status: np.ndarray,
                 amp_low: np.ndarray, amp_high: np.ndarray, dev_low: np.ndarray,
                 dev_high: np.ndarray) -> None:
        self.channel, self.window, self.key, self.status = channel, window, key, status
        self.amp_low, self.amp_high, self.dev_low, self.dev_high = amp_low, amp_high, dev_low, dev_high


def _tone(x_cur: np.ndarray, x_prev: np.ndarray, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude (int16 units) and relative frequency deviation of the tone in ``bins`` (complex inputs).

    The deviation is NaN (unmeasured) when the previous window holds less than half the amplitude (an onset
    or a drop-out: its phase is mostly noise); the amplitude is then left uncorrected."""
    lag = x_cur * np.conj(x_prev) * _ROT[bins]
    delta_hz = np.angle(lag) * (SAMPLE_RATE_HZ / (2 * np.pi * HOP_SAMPLES))
    measured = np.abs(x_prev) >= 0.5 * np.abs(x_cur)
    gain = np.where(measured, np.interp(delta_hz, _GAIN_GRID_HZ, _GAIN), 1.0)
    amp = np.abs(x_cur) / (_HANN_SUM / 2) / gain
    return amp, np.where(measured, delta_hz / FREQS_HZ[bins], np.nan)


def window_features(x: np.ndarray, energy: np.ndarray, x_before: np.ndarray,
                    energy_before: np.ndarray) -> Features:
    """Analyse windows ``x`` (channels, windows, 16 = re 8 | im 8) with rectangular ``energy`` (channels,
    windows, Σx² in int16² units); ``x_before``/``energy_before`` (channels, 16)/(channels,) are the window
    just before each row's first, for the phase advance."""
    flat = x.reshape(-1, 16)
    total = np.einsum("ij,ij->i", flat, flat).reshape(energy.shape)  # Σ over all 8 bins ≥ strongest pair
    ch, win = np.nonzero((energy >= GATE_ENERGY) & (total * (_PW_TO_POWER * WINDOW_SAMPLES)
                                                    >= GATE_FRACTION * energy))
    if len(ch):
        pw = x[ch, win]
        pw = pw[:, :8] * pw[:, :8] + pw[:, 8:] * pw[:, 8:]
        keep = ((pw[:, :4].max(1) + pw[:, 4:].max(1)) * (_PW_TO_POWER * WINDOW_SAMPLES)
                >= GATE_FRACTION * energy[ch, win])
        ch, win = ch[keep], win[keep]
    if len(ch) == 0:
        empty = np.zeros(0)
        return Features(ch, win, ch, ch, empty, empty, empty, empty)
    cur = x[ch, win].astype(np.float64)
    cur_c = cur[:, :8] + 1j * cur[:, 8:]
    first = win == 0
    prev_e = np.where(first, energy_before[ch], energy[ch, win - 1])
    prev = np.where(first[:, None], x_before[ch], x[ch, win - 1]).astype(np.float64)
    prev_c = prev[:, :8] + 1j * prev[:, 8:]
    pwc = cur[:, :8] * cur[:, :8] + cur[:, 8:] * cur[:, 8:]
    il = np.argmax(pwc[:, :4], axis=1)
    ih = np.argmax(pwc[:, 4:], axis=1) + 4
    rows = np.arange(len(ch))
    amp_l, dev_l = _tone(cur_c[rows, il], prev_c[rows, il], il)
    amp_h, dev_h = _tone(cur_c[rows, ih], prev_c[rows, ih], ih)
    unmeasured = (prev_e < GATE_ENERGY) | np.isnan(dev_l) | np.isnan(dev_h)
    fraction = (amp_l * amp_l + amp_h * amp_h) * (WINDOW_SAMPLES / 2) / energy[ch, win]
    with np.errstate(invalid="ignore"):
        strict = ((fraction >= STRICT_FRACTION) & (np.abs(dev_l) <= STRICT_DEVIATION)
                  & (np.abs(dev_h) <= STRICT_DEVIATION) & ~unmeasured)
    status = np.where(strict, STRICT, np.where(unmeasured, UNMEASURED, FAILED))
    key = il * 4 + (ih - 4)
    return Features(ch, win, key, status, amp_l, amp_h, dev_l, dev_h)

"""How well a recording holds a reference signal: the normalised cross-correlation at its best alignment."""

from __future__ import annotations

import numpy as np


def best_correlation(recording: np.ndarray, reference: np.ndarray) -> float:
    """The largest normalised cross-correlation of ``reference`` against any stretch of ``recording`` (1.0: exact)."""
    rec, ref = recording.astype(np.float64), reference.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(len(rec) + len(ref))))
    corr = np.fft.irfft(np.fft.rfft(rec, n) * np.conj(np.fft.rfft(ref, n)), n)[: len(rec) - len(ref) + 1]
    energy = np.convolve(rec**2, np.ones(len(ref)), "valid")
    return float(np.max(corr / np.sqrt(energy * np.sum(ref**2) + 1e-9)))

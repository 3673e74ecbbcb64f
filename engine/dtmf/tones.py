"""DTMF tone generation (ITU-T Q.23 keypad): single tones, key sequences and presses placed in caller audio.

Levels are in dBm0 per tone (a full-scale sine is :data:`~engine.format.FULL_SCALE_SINE_DBM0`, +3.14 dBm0).
Samples come back as float64 in int16 units so callers can add noise before :func:`engine.format.to_int16`;
:func:`place_tones` returns int16 directly.

Twist convention (``twist_db``): the level difference low group − high group, in dB.

* ``twist_db >= 0`` ("normal twist"): the low tone is at ``level_dbm0``, the high tone ``twist_db`` weaker;
* ``twist_db < 0`` ("reverse twist"): the high tone is at ``level_dbm0``, the low tone ``|twist_db|`` weaker.

So ``level_dbm0`` is always the level of the stronger tone (the low one at zero twist).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from engine.core.orders import DTMF_KEYS
from engine.format import SAMPLE_RATE_HZ, dbm0_to_peak, ms_to_samples, to_int16

KEYS = DTMF_KEYS  # keypad order: row by row, so the index gives the (low, high) pair
LOW_HZ = (697, 770, 852, 941)
HIGH_HZ = (1209, 1336, 1477, 1633)


def key_frequencies(key: str) -> tuple[float, float]:
    """The (low, high) frequencies of ``key`` in Hz; ValueError naming the key if it is not one of KEYS."""
    if not isinstance(key, str) or len(key) != 1 or key not in KEYS:
        raise ValueError(f"not a DTMF key: {key!r} (keys are {KEYS})")
    index = KEYS.index(key)
    return float(LOW_HZ[index // 4]), float(HIGH_HZ[index % 4])


def dtmf_tone(key: str, duration_ms: float, level_dbm0: float = -10.0, twist_db: float = 0.0,
              freq_offset: float = 0.0, low_phase: float = 0.0, high_phase: float = 0.0,
              sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """The tone of ``key`` lasting ``duration_ms`` (rounded to whole samples), float64 in int16 units.

    ``level_dbm0``: level of the stronger tone, dBm0 (default −10); ``twist_db``: low − high level in dB,
    see the module docstring (default 0); ``freq_offset``: relative deviation applied to both tones
    (0.015 = +1.5 %, default 0); ``low_phase``/``high_phase``: start phases in radians (default 0);
    ``sample_rate_hz``: default :data:`~engine.format.SAMPLE_RATE_HZ`. No ramp: the tone starts and stops
    abruptly, as a keypad does.
    """
    low_hz, high_hz = key_frequencies(key)
    if duration_ms < 0:
        raise ValueError(f"duration_ms must be >= 0, got {duration_ms}")
    samples = int(round(duration_ms * sample_rate_hz / 1000))
    low_peak = high_peak = dbm0_to_peak(level_dbm0)
    if twist_db >= 0:
        high_peak *= 10 ** (-twist_db / 20)
    else:
        low_peak *= 10 ** (twist_db / 20)
    t = np.arange(samples) / sample_rate_hz
    scale = 2 * np.pi * (1.0 + freq_offset)
    return (low_peak * np.sin(scale * low_hz * t + low_phase)
            + high_peak * np.sin(scale * high_hz * t + high_phase))


def dtmf_sequence(keys: str, tone_ms: float = 80, gap_ms: float = 80, level_dbm0: float = -10.0,
                  twist_db: float = 0.0, freq_offset: float = 0.0,
                  sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """``keys`` as tones of ``tone_ms`` each followed by ``gap_ms`` of silence (float64, int16 units).

    Defaults: 80 ms tones, 80 ms gaps, −10 dBm0, no twist, no frequency offset. Raises ValueError naming the
    first key that is not one of :data:`KEYS`.
    """
    gap = np.zeros(int(round(gap_ms * sample_rate_hz / 1000)))
    parts: list[np.ndarray] = []
    for key in keys:
        parts.append(dtmf_tone(key, tone_ms, level_dbm0, twist_db, freq_offset,
                               sample_rate_hz=sample_rate_hz))
        parts.append(gap)
    return np.concatenate(parts) if parts else np.zeros(0)


def place_tones(length_samples: int, presses: Iterable[tuple[str, int]], tone_ms: float = 100,
                level_dbm0: float = -8.0) -> np.ndarray:
    """Caller audio of ``length_samples`` (int16, 8 kHz) with each ``(key, start_sample)`` press as a tone.

    ``tone_ms``: length of each tone (default 100 ms); ``level_dbm0``: per-tone level (default −8 dBm0).
    Tones running past the end are cut at ``length_samples``; overlapping presses are summed (and saturate).
    Raises ValueError naming a bad key, or for a negative start or length.
    """
    if length_samples < 0:
        raise ValueError(f"length_samples must be >= 0, got {length_samples}")
    out = np.zeros(length_samples)
    tone_samples = ms_to_samples(tone_ms)
    for key, start in presses:
        tone = dtmf_tone(key, tone_ms, level_dbm0)[:tone_samples]
        if start < 0:
            raise ValueError(f"press of {key!r} starts at a negative sample ({start})")
        end = min(length_samples, start + len(tone))
        if end > start:
            out[start:end] += tone[: end - start]
    return to_int16(out)

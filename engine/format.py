"""The call's audio format, declared once: 8000 Hz, mono, signed 16-bit PCM, 20 ms frames.

Time inside the engine lives in samples of this format; seconds and milliseconds are converted once, at the
boundary, with the helpers below.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np

SAMPLE_RATE_HZ = 8000
CHANNELS = 1
SAMPLE_DTYPE = np.int16
FRAME_MS = 20
SAMPLES_PER_FRAME = SAMPLE_RATE_HZ * FRAME_MS // 1000  # 160
FULL_SCALE = 32767
#: One frame of digital silence, read-only: shared by everything that plays or hears nothing.
SILENT_FRAME = np.zeros(SAMPLES_PER_FRAME, dtype=SAMPLE_DTYPE)
SILENT_FRAME.setflags(write=False)
#: dBm0 of a full-scale sine (G.711 convention); a sine of peak ``A`` is ``+3.14 + 20·log10(A/32767)`` dBm0.
FULL_SCALE_SINE_DBM0 = 3.14


def seconds_to_samples(seconds: float) -> int:
    """Seconds → samples at :data:`SAMPLE_RATE_HZ`, rounded to the nearest sample."""
    return int(round(seconds * SAMPLE_RATE_HZ))


def ms_to_samples(ms: float) -> int:
    """Milliseconds → samples at :data:`SAMPLE_RATE_HZ`, rounded to the nearest sample."""
    return int(round(ms * SAMPLE_RATE_HZ / 1000))


def samples_to_seconds(samples: int) -> float:
    """Samples at :data:`SAMPLE_RATE_HZ` → seconds."""
    return samples / SAMPLE_RATE_HZ


def samples_to_ms(samples: int) -> float:
    """Samples at :data:`SAMPLE_RATE_HZ` → milliseconds."""
    return samples * 1000 / SAMPLE_RATE_HZ


def wall_time(start: datetime, at_sample: int) -> datetime:
    """The wall-clock moment of sample ``at_sample`` of a stream that began at ``start`` (the one converter)."""
    return start + timedelta(microseconds=at_sample * 1_000_000 // SAMPLE_RATE_HZ)


def frames_for(samples: int) -> int:
    """How many full frames carry ``samples`` samples (the last one padded)."""
    return -(-samples // SAMPLES_PER_FRAME)


def silence(samples: int) -> np.ndarray:
    """``samples`` samples of digital silence in the call's format."""
    return np.zeros(samples, dtype=SAMPLE_DTYPE)


def pad_to_frame(samples: np.ndarray) -> np.ndarray:
    """Pad ``samples`` with silence to a whole number of frames (never drops a sample)."""
    short = frames_for(len(samples)) * SAMPLES_PER_FRAME - len(samples)
    if short == 0:
        return samples
    return np.concatenate([samples, silence(short)])


def iter_frames(samples: np.ndarray) -> Iterator[np.ndarray]:
    """Cut ``samples`` into full frames of :data:`SAMPLES_PER_FRAME`, the last one padded with silence."""
    padded = pad_to_frame(samples)
    for start in range(0, len(padded), SAMPLES_PER_FRAME):
        yield padded[start : start + SAMPLES_PER_FRAME]


def dbm0_to_peak(level_dbm0: float) -> float:
    """Peak amplitude (in int16 units) of a sine at ``level_dbm0``."""
    return FULL_SCALE * 10 ** ((level_dbm0 - FULL_SCALE_SINE_DBM0) / 20)


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples in int16 units → int16, rounded; values beyond the range saturate (audio, not input)."""
    return np.clip(np.rint(samples), -32768, 32767).astype(SAMPLE_DTYPE)

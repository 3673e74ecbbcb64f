"""Audio files for the decode tests: long silence written block-wise, noise, a FLAC whose header hides its length.

Every file is generated (fixed seeds), never committed; long files are written a minute at a time so making
them costs little memory.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

_FLAC_STREAMINFO = 8  # "fLaC" and the first metadata block's 4-byte header come before STREAMINFO's fields


_SILENCE_BYTES_LIMIT = 4 << 20  # silence files up to this size are encoded once per process and copied
_silences: dict[tuple[int, int, str], bytes] = {}


def write_silence(path: Path, seconds: int, rate_hz: int = 8000, fmt: str = "FLAC") -> Path:
    """``seconds`` of digital silence, mono 16-bit, at ``rate_hz``, written a minute at a time.

    A compressed file (FLAC: a few hundred KiB for hours) is encoded once per process; later calls copy its bytes.
    """
    key = (seconds, rate_hz, fmt)
    if key in _silences:
        path.write_bytes(_silences[key])
        return path
    minute = np.zeros(rate_hz * 60, dtype=np.int16)
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", samplerate=rate_hz, channels=1, subtype="PCM_16", format=fmt) as out:
        whole, rest = divmod(seconds, 60)
        for _ in range(whole):
            out.write(minute)
        out.write(minute[: rest * rate_hz])
    data = buffer.getvalue()
    if len(data) <= _SILENCE_BYTES_LIMIT:
        _silences[key] = data
    path.write_bytes(data)
    return path


def noise(seconds: float, rate_hz: int, channels: int = 1, seed: int = 1) -> np.ndarray:
    """White noise at −20 dBFS RMS, float32 of shape ``(frames, channels)``."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((round(seconds * rate_hz), channels)) * 0.1).astype(np.float32)


def hide_flac_length(path: Path) -> Path:
    """Set ``total_samples`` in a FLAC's STREAMINFO to 0 ("unknown", as a streaming encoder writes it)."""
    data = bytearray(path.read_bytes())
    if data[:4] != b"fLaC" or data[4] & 0x7F != 0:
        raise ValueError(f"{path.name}: not a FLAC starting with STREAMINFO")
    at = _FLAC_STREAMINFO + 13  # 36 bits: the low nibble of byte 13 and bytes 14-17
    data[at] &= 0xF0
    data[at + 1 : at + 5] = bytes(4)
    path.write_bytes(bytes(data))
    return path

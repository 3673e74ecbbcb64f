"""Decoding audio files, bounded, and converting any rate and channel count to the call's format (soxr).

soxr is used for every rate conversion: measured here it resamples 22050→8000 Hz with −143 dB aliasing where
scipy's ``resample_poly`` leaks −9 dB at 4.1 kHz.

Bounds: a decode is refused before it starts when the file is larger than ``max_file_bytes`` (default
:data:`DEFAULT_MAX_FILE_BYTES`, 64 MiB) or its header gives a duration over ``max_file_seconds`` (default
:data:`DEFAULT_MAX_FILE_SECONDS`, 600 s). Then it reads blocks of at most :data:`BLOCK_VALUES` values (frames ×
channels, whatever the channel count), mixes each block down, resamples it with soxr's streaming resampler
and stops as soon as the decoded audio passes ``max_file_seconds`` (a header that gives no length, such as a
FLAC streamed with ``total_samples`` 0, is decoded that way). Memory: one source block plus the output at
8 kHz int16 (16 000 bytes per second of audio), so O(``max_file_seconds``) whatever the file claims. A header
rate above :data:`MAX_RATE_HZ` is refused as not decodable (soxr's filter design for it costs seconds).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from engine.errors import AudioDecodeError
from engine.format import SAMPLE_RATE_HZ, to_int16

#: The longest file decoded, in seconds of audio (default of ``max_file_seconds``).
DEFAULT_MAX_FILE_SECONDS = 600.0
#: The largest file decoded, in bytes on disk (default of ``max_file_bytes``): 64 MiB.
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
#: Float32 values read per block (frames × channels): 1 MiB of source audio in memory at a time.
BLOCK_VALUES = 1 << 18
#: The highest sample rate decoded (Hz): above it soxr's filter design alone costs seconds of CPU.
MAX_RATE_HZ = 768_000
_UNKNOWN_FRAMES = 2**63 - 1  # libsndfile's SF_COUNT_MAX: the header does not give the length


class DecodeLimitError(AudioDecodeError):
    """A file passes a decode limit; ``limit`` names it (``max_file_seconds`` or ``max_file_bytes``)."""

    def __init__(self, limit: str, message: str) -> None:
        self.limit = limit
        super().__init__(message)


def to_call_format(samples: np.ndarray, rate_hz: int, channel: int | None = None) -> np.ndarray:
    """Convert audio to 8 kHz mono int16.

    ``samples``: shape ``(n,)`` or ``(n, channels)``; int16 or float in [-1, 1]. ``channel``: the channel to keep
    (``None``: mix all channels down by their mean).
    """
    data = np.asarray(samples)
    if data.dtype == np.int16:
        data = data.astype(np.float32) / 32768.0
    else:
        data = data.astype(np.float32, copy=False)
    if data.ndim == 2:
        if channel is None:
            data = data.mean(axis=1)
        else:
            if not 0 <= channel < data.shape[1]:
                raise ValueError(f"channel {channel} does not exist (the audio has {data.shape[1]})")
            data = data[:, channel]
    if rate_hz != SAMPLE_RATE_HZ and len(data):
        data = soxr.resample(data, rate_hz, SAMPLE_RATE_HZ, quality="HQ")
    return to_int16(data * 32768.0)


def check_decode_limits(max_file_seconds: float, max_file_bytes: int) -> None:
    """Raise ``ValueError`` naming the limit unless both are positive numbers."""
    if not (isinstance(max_file_seconds, int | float) and math.isfinite(max_file_seconds) and max_file_seconds > 0):
        raise ValueError(f"max_file_seconds: must be a positive number of seconds, got {max_file_seconds!r}")
    if not (isinstance(max_file_bytes, int) and not isinstance(max_file_bytes, bool) and max_file_bytes > 0):
        raise ValueError(f"max_file_bytes: must be a positive whole number of bytes, got {max_file_bytes!r}")


def decode_audio(source: str | Path | int, channel: int | None = None, *,
                 max_file_seconds: float = DEFAULT_MAX_FILE_SECONDS,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> np.ndarray:
    """Decode ``source`` (a path, or an open file descriptor, left open) into 8 kHz mono int16, bounded.

    ``channel``: the channel to keep (``None``: the mean of all). Raises :class:`DecodeLimitError` when a limit
    is passed and :class:`AudioDecodeError` when it is not decodable audio; messages never name the file (the
    caller knows how to name it), so they never show an absolute path.
    """
    check_decode_limits(max_file_seconds, max_file_bytes)
    try:
        size = os.fstat(source).st_size if isinstance(source, int) else os.stat(source).st_size
    except OSError as exc:
        raise AudioDecodeError(f"cannot be read ({exc.strerror})") from None
    if size > max_file_bytes:
        raise DecodeLimitError("max_file_bytes", f"holds {size} bytes: over the limit max_file_bytes = "
                                                 f"{max_file_bytes} bytes")
    try:
        sound = sf.SoundFile(source, closefd=False) if isinstance(source, int) else sf.SoundFile(str(source))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        why = getattr(exc, "error_string", None) or type(exc).__name__
        raise AudioDecodeError(f"is not decodable audio ({why})") from None
    with sound:
        return _decode_open(sound, channel, max_file_seconds)


def _decode_open(sound: sf.SoundFile, channel: int | None, max_file_seconds: float) -> np.ndarray:
    rate_hz, channels = sound.samplerate, sound.channels
    if not 0 < rate_hz <= MAX_RATE_HZ:
        raise AudioDecodeError(f"has a sample rate of {rate_hz} Hz (at most {MAX_RATE_HZ} Hz is decoded)")
    if channel is not None and not 0 <= channel < channels:
        raise AudioDecodeError(f"has no channel {channel} (it has {channels})")
    limit_frames = math.floor(max_file_seconds * rate_hz)
    header_frames = None if sound.frames == _UNKNOWN_FRAMES else sound.frames
    if header_frames is not None and header_frames > limit_frames:
        raise DecodeLimitError("max_file_seconds", f"lasts {header_frames / rate_hz:.1f} s by its header: over the "
                                                   f"limit max_file_seconds = {max_file_seconds:g} s")
    block = np.empty((max(1, BLOCK_VALUES // channels), channels), dtype=np.float32)
    stream = soxr.ResampleStream(rate_hz, SAMPLE_RATE_HZ, 1, dtype="float32", quality="HQ") \
        if rate_hz != SAMPLE_RATE_HZ else None
    chunks: list[np.ndarray] = []
    decoded = 0
    while True:
        got = _read_into(sound, block, min(len(block), limit_frames + 1 - decoded))
        if got <= 0:
            break
        decoded += got
        if decoded > limit_frames:
            claim = "no length" if header_frames is None else f"{header_frames / rate_hz:.1f} s"
            raise DecodeLimitError("max_file_seconds", f"lasts more than {max_file_seconds:g} s once decoded (its "
                                                       f"header gave {claim}): over the limit max_file_seconds")
        mono = block[:got, 0] if channels == 1 else (
            block[:got].mean(axis=1) if channel is None else block[:got, channel])
        mono = np.ascontiguousarray(mono)
        chunks.append(to_int16((stream.resample_chunk(mono) if stream is not None else mono) * 32768.0))
    if decoded == 0:
        raise AudioDecodeError("holds no audio")
    if stream is not None:
        chunks.append(to_int16(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True) * 32768.0))
    return np.concatenate(chunks)


def _read_into(sound: sf.SoundFile, block: np.ndarray, frames: int) -> int:
    """Read up to ``frames`` frames into ``block``; the count read (0 at the end).

    libsndfile's ``sf_readf_float`` directly: soundfile's ``read`` seeks after every block, which fails on a
    stream whose header gives no length (a FLAC with ``total_samples`` 0).
    """
    pointer = sf._ffi.cast("float *", block.ctypes.data)
    got = sf._snd.sf_readf_float(sound._file, pointer, frames)
    return int(got)


def load_audio(path: str | Path, channel: int | None = None, *,
               max_file_seconds: float = DEFAULT_MAX_FILE_SECONDS,
               max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> np.ndarray:
    """Decode any file libsndfile reads (WAV, FLAC, OGG, MP3, μ-law/A-law) into the call's format, bounded.

    Limits as :func:`decode_audio`. Raises :class:`AudioDecodeError` (or :class:`DecodeLimitError`) whose
    message starts with ``path`` as given.
    """
    try:
        return decode_audio(path, channel, max_file_seconds=max_file_seconds, max_file_bytes=max_file_bytes)
    except DecodeLimitError as exc:
        raise DecodeLimitError(exc.limit, f"{path}: {exc}") from None
    except AudioDecodeError as exc:
        raise AudioDecodeError(f"{path}: {exc}") from None

"""Reading recordings for ``detect``: each file's DTMF keys, or why it cannot be decoded.

Short files (up to :data:`BATCH_MAX_SECONDS`) are read whole and decoded many at once
(:func:`engine.dtmf.batch.detect_keys_many`); longer ones are streamed in chunks of :data:`CHUNK_SAMPLES` (resampled
chunk by chunk when they are not at 8 kHz). 8 kHz 16-bit PCM WAV files, the
usual recording, are parsed here directly (:func:`read_pcm_wav`); anything else goes through libsndfile. The samples
are those :func:`engine.audio.decode.load_audio` gives, to the bit.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import soundfile as sf

    from engine.dtmf.event import KeyEvent

#: Files up to this long (seconds of the call's audio) are read whole and decoded in batches.
BATCH_MAX_SECONDS = 10.0
#: Longer 8 kHz files are read and decoded this many samples at a time (bounded memory).
CHUNK_SAMPLES = 1 << 16
#: Subtypes libsndfile reads to int16 exactly as the float path would round them.
EXACT_INT16 = frozenset({"PCM_16", "PCM_S8", "PCM_U8", "ULAW", "ALAW"})
logger = logging.getLogger(__name__)
_PCM, _EXTENSIBLE = 1, 0xFFFE
_PCM_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_PCM after its first 2 bytes


@dataclass(frozen=True)
class FileKeys:
    """One file's result: its keys or why it could not be decoded (``error``, without the file's name)."""

    path: str
    events: tuple[KeyEvent, ...] = ()
    error: str = ""


def decode_task(paths: list[str], channel: int) -> list[FileKeys]:
    """The keys of ``paths`` (a worker's task): short files in batches, long ones streamed.

    Never raises for a file: an unexpected failure is logged and reported on that file's result (a batch that fails
    is decoded again file by file, so that one file cannot take the others with it).
    """
    from engine.dtmf.batch import detect_keys_many

    results: list[FileKeys | None] = [None] * len(paths)
    short: list[tuple[int, np.ndarray]] = []
    for i, path in enumerate(paths):
        try:
            samples = _read_short(path, channel)
            if samples is None:
                results[i] = FileKeys(path, tuple(_stream_keys(path, channel)))
            else:
                short.append((i, samples))
        except _UndecodableError as exc:
            results[i] = FileKeys(path, error=str(exc))
        except Exception as exc:  # a bug or a resource limit: this file's line says so, the others go on
            results[i] = _internal_error(path, exc)
    try:
        found = detect_keys_many([s for _, s in short])
    except Exception:
        logger.exception("batched decoding failed; decoding file by file")
        found = [_detect_alone(s) for _, s in short]
    for (i, _), events in zip(short, found, strict=True):
        failed = isinstance(events, FileKeys)
        results[i] = FileKeys(paths[i], error=events.error) if failed else FileKeys(paths[i], tuple(events))
    return results  # type: ignore[return-value]


def _detect_alone(samples: np.ndarray) -> list[KeyEvent] | FileKeys:
    from engine.dtmf.channel import detect_keys

    try:
        return detect_keys(samples)
    except Exception as exc:
        return _internal_error("", exc)


def _internal_error(path: str, exc: Exception) -> FileKeys:
    logger.exception("decoding %s failed", path or "a file")
    return FileKeys(path, error=f"internal error ({type(exc).__name__}: {exc})")


class _UndecodableError(Exception):
    """A file that is not decodable audio (the message names no path)."""


def _read_short(path: str, channel: int) -> np.ndarray | None:
    """The call's-format samples of a short file, or None when it is longer than :data:`BATCH_MAX_SECONDS`."""
    import soundfile as sf

    from engine.format import SAMPLE_RATE_HZ

    samples = read_pcm_wav(path, channel, int(BATCH_MAX_SECONDS * SAMPLE_RATE_HZ))
    if samples is not None:
        return samples
    try:
        with sf.SoundFile(path) as f:
            _check(f, channel)
            if f.frames > BATCH_MAX_SECONDS * f.samplerate:
                return None
            if f.samplerate == SAMPLE_RATE_HZ and f.subtype in EXACT_INT16:
                return f.read(dtype="int16", always_2d=True)[:, channel].copy()
            data = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as exc:
        raise _UndecodableError(f"not decodable audio ({exc})") from exc
    from engine.audio.decode import to_call_format

    return to_call_format(data, f.samplerate, channel)


def _check(f: sf.SoundFile, channel: int) -> None:
    if f.frames == 0:
        raise _UndecodableError("the file holds no audio")
    if not 0 <= channel < f.channels:
        raise _UndecodableError(f"channel {channel} does not exist (the audio has {f.channels})")


def _stream_keys(path: str, channel: int) -> list[KeyEvent]:
    """The keys of a long file, read and fed to one detector :data:`CHUNK_SAMPLES` frames at a time.

    Other rates and encodings are converted chunk by chunk as :func:`engine.audio.decode.to_call_format` converts a
    whole file (soxr ``HQ``, streamed: the same samples to the bit), so memory stays bounded whatever the length.
    """
    import numpy as np
    import soundfile as sf
    import soxr

    from engine.dtmf.batch import FLUSH_SAMPLES
    from engine.dtmf.channel import DtmfDetector
    from engine.dtmf.event import clamped
    from engine.format import SAMPLE_RATE_HZ, to_int16

    det, events, n = DtmfDetector(), [], 0
    try:
        with sf.SoundFile(path) as f:
            exact = f.samplerate == SAMPLE_RATE_HZ and f.subtype in EXACT_INT16
            resampler = None if f.samplerate == SAMPLE_RATE_HZ else soxr.ResampleStream(
                f.samplerate, SAMPLE_RATE_HZ, 1, dtype="float32", quality="HQ")
            for block in f.blocks(CHUNK_SAMPLES, dtype="int16" if exact else "float32", always_2d=True):
                x = np.ascontiguousarray(block[:, channel])
                if resampler is not None:
                    x = resampler.resample_chunk(x, last=False)
                samples = x if exact else to_int16(x * 32768.0)
                events += det.process(samples)
                n += len(samples)
            if resampler is not None:
                samples = to_int16(resampler.resample_chunk(np.zeros(0, np.float32), last=True) * 32768.0)
                events += det.process(samples)
                n += len(samples)
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as exc:
        raise _UndecodableError(f"not decodable audio ({exc})") from exc
    events += det.process(np.zeros(FLUSH_SAMPLES, dtype=np.int16))
    return clamped(events, n)


def read_pcm_wav(path: str, channel: int, max_frames: int) -> np.ndarray | None:
    """Channel ``channel`` of an 8 kHz 16-bit PCM WAV file of at most ``max_frames`` frames, as int16.

    None for anything else (another format, rate, size, a header this reader does not follow, a read error): the
    caller then asks libsndfile, which also words the error.
    """
    import numpy as np

    from engine.format import SAMPLE_RATE_HZ

    try:
        with open(path, "rb") as f:
            head = f.read(12 + 8 + 40 + 8)
            if len(head) < 44 or head[:4] != b"RIFF" or head[8:12] != b"WAVE" or head[12:16] != b"fmt ":
                return None
            fmt_size = struct.unpack_from("<I", head, 16)[0]
            tag, channels, rate, _, align, bits = struct.unpack_from("<HHIIHH", head, 20)
            if tag == _EXTENSIBLE and fmt_size >= 40 and head[46:60] == _PCM_GUID_TAIL and head[44:46] == b"\x01\x00":
                tag = _PCM
            if (tag != _PCM or rate != SAMPLE_RATE_HZ or bits != 16 or align != 2 * channels or fmt_size > 40
                    or fmt_size % 2 or not 0 <= channel < channels):
                return None
            data_at = 20 + fmt_size
            if head[data_at:data_at + 4] != b"data" or len(head) < data_at + 8:
                return None
            size = struct.unpack_from("<I", head, data_at + 4)[0]
            if size == 0 or size % align or size // align > max_frames:
                return None
            f.seek(data_at + 8)
            data = f.read(size)
    except OSError:
        return None
    if len(data) != size:
        return None
    return np.frombuffer(data, dtype="<i2").reshape(-1, channels)[:, channel].astype(np.int16)

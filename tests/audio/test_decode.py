"""Bounded decodes: limits checked on the header before decoding, then against what is decoded, in O(limit) memory."""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.audio.decode import (
    BLOCK_VALUES,
    AudioDecodeError,
    DecodeLimitError,
    decode_audio,
    load_audio,
    to_call_format,
)
from engine.testing.media_files import hide_flac_length, noise, write_silence

MIB = 1024 * 1024


def peak_bytes(work: Callable[[], object]) -> tuple[object, int]:
    """Run ``work``; its result (or the exception it raised) and the peak of Python-tracked memory (numpy too)."""
    tracemalloc.start()
    try:
        try:
            result: object = work()
        except Exception as exc:  # noqa: BLE001 - the caller inspects it
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_flac_of_three_hours_of_silence_is_refused_cheaply(tmp_path: Path) -> None:
    path = write_silence(tmp_path / "silence.flac", 3 * 3600)
    assert path.stat().st_size < 2 * MIB and sf.info(str(path)).frames == 3 * 3600 * 8000
    caught, peak = peak_bytes(lambda: load_audio(path))
    assert isinstance(caught, DecodeLimitError) and caught.limit == "max_file_seconds"
    assert "10800.0 s by its header" in str(caught) and "max_file_seconds = 600 s" in str(caught)
    assert peak < BLOCK_VALUES * 4  # refused before the first block was even allocated: nothing decoded


def test_a_header_without_length_is_decoded_up_to_the_limit_and_no_further(tmp_path: Path) -> None:
    path = tmp_path / "streamed.flac"
    sf.write(str(path), noise(120, 16000), 16000, subtype="PCM_16")
    hide_flac_length(path)
    assert sf.info(str(path)).frames == 2**63 - 1  # libsndfile: length unknown
    caught, peak = peak_bytes(lambda: load_audio(path, max_file_seconds=5))
    assert isinstance(caught, DecodeLimitError) and caught.limit == "max_file_seconds"
    assert "more than 5 s once decoded" in str(caught) and "header gave no length" in str(caught)
    source_bytes = 120 * 16000 * 4
    assert peak < 3 * MIB < source_bytes / 2  # one block and 5 s of output, never the 120 s


def test_a_header_without_length_under_the_limit_decodes_exactly(tmp_path: Path) -> None:
    audio = noise(3, 16000)
    known, hidden = tmp_path / "known.flac", tmp_path / "hidden.flac"
    for path in (known, hidden):
        sf.write(str(path), audio, 16000, subtype="PCM_16")
    hide_flac_length(hidden)
    samples = load_audio(hidden, max_file_seconds=5)
    assert len(samples) == 3 * 8000
    assert np.array_equal(samples, load_audio(known))


def test_decode_memory_is_bounded_by_the_output_not_the_source(tmp_path: Path) -> None:
    audio = noise(60, 48000, channels=2)
    path = tmp_path / "long.wav"
    sf.write(str(path), audio, 48000, subtype="FLOAT")
    samples, peak = peak_bytes(lambda: load_audio(path))
    assert isinstance(samples, np.ndarray) and len(samples) == 60 * 8000
    output_bytes = samples.nbytes
    assert peak < 2 * output_bytes + 2 * BLOCK_VALUES * 4 + MIB < audio.nbytes / 4
    assert np.array_equal(samples, to_call_format(audio, 48000))  # block-wise = whole-file conversion


def test_a_file_over_max_file_bytes_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_bytes(b"not audio at all" * 100)
    with pytest.raises(DecodeLimitError, match="holds 1600 bytes: over the limit max_file_bytes = 1000") as caught:
        decode_audio(path, max_file_bytes=1000)
    assert caught.value.limit == "max_file_bytes"
    with pytest.raises(AudioDecodeError, match="not decodable audio"):
        decode_audio(path, max_file_bytes=1600)


@pytest.mark.parametrize(("rate_hz", "seconds", "expected"), [(8000, 1.5, 12000), (22050, 2, 16000),
                                                              (44100, 600, 600 * 8000)])
def test_durations_are_exact_to_the_sample_up_to_the_limit(tmp_path: Path, rate_hz: int, seconds: float,
                                                           expected: int) -> None:
    path = tmp_path / "tone.flac"
    sf.write(str(path), np.zeros(round(seconds * rate_hz), dtype=np.int16), rate_hz)
    assert len(decode_audio(path)) == expected  # 600 s: exactly the default limit is allowed


def test_one_sample_over_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "over.wav"
    sf.write(str(path), np.zeros(8000 * 2 + 1, dtype=np.int16), 8000)
    with pytest.raises(DecodeLimitError, match="2.0 s by its header"):
        decode_audio(path, max_file_seconds=2)
    assert len(decode_audio(path, max_file_seconds=2.001)) == 16001


def test_channels_mixed_or_chosen_and_a_missing_channel_is_refused(tmp_path: Path) -> None:
    left, right = np.full(800, 0.5, np.float32), np.full(800, -0.25, np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    assert set(decode_audio(path).tolist()) == {round(0.125 * 32768)}
    assert set(decode_audio(path, channel=1).tolist()) == {-8192}
    with pytest.raises(AudioDecodeError, match="has no channel 2"):
        decode_audio(path, channel=2)


def test_bad_files_name_what_is_wrong_without_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, dtype=np.int16), 8000)
    for path, why in ((empty, "holds no audio"), (tmp_path / "missing.wav", "cannot be read")):
        with pytest.raises(AudioDecodeError, match=why) as caught:
            decode_audio(path)
        assert str(tmp_path) not in str(caught.value)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AudioDecodeError, match=r"^empty.wav: holds no audio$"):
        load_audio("empty.wav")  # load_audio names the file as it was given


def test_an_absurd_sample_rate_in_the_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fast.wav"
    sf.write(str(path), np.zeros(800, dtype=np.int16), 8000)
    data = bytearray(path.read_bytes())
    data[24:32] = struct.pack("<II", 2_000_000_000, 4_000_000_000)  # WAV fmt: rate, bytes per second
    path.write_bytes(bytes(data))
    assert sf.info(str(path)).samplerate == 2_000_000_000
    with pytest.raises(AudioDecodeError, match="sample rate of 2000000000 Hz"):
        decode_audio(path)


@pytest.mark.parametrize(("limit", "value"), [("max_file_seconds", 0), ("max_file_seconds", float("inf")),
                                              ("max_file_bytes", -1), ("max_file_bytes", 1.5)])
def test_limits_must_be_positive(tmp_path: Path, limit: str, value: float) -> None:
    with pytest.raises(ValueError, match=limit):
        decode_audio(tmp_path, **{limit: value})

"""G.711 tables against the stdlib's ``audioop`` on every input (skipped once ``audioop`` is gone)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from engine.net import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop")

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)


@pytest.mark.parametrize(("payload_type", "lin2law"), [(g711.PCMU, "lin2ulaw"), (g711.PCMA, "lin2alaw")])
def test_encoding_is_bit_exact_on_all_65536_inputs(payload_type: int, lin2law: str) -> None:
    expected = np.frombuffer(getattr(audioop, lin2law)(ALL_SAMPLES.tobytes(), 2), dtype=np.uint8)
    got = g711.encode(ALL_SAMPLES, payload_type)
    assert got.dtype == np.uint8
    mismatched = np.flatnonzero(got != expected)
    assert len(mismatched) == 0, ALL_SAMPLES[mismatched[:10]]


@pytest.mark.parametrize(("payload_type", "law2lin"), [(g711.PCMU, "ulaw2lin"), (g711.PCMA, "alaw2lin")])
def test_decoding_is_bit_exact_on_all_256_codes(payload_type: int, law2lin: str) -> None:
    expected = np.frombuffer(getattr(audioop, law2lin)(ALL_CODES.tobytes(), 2), dtype=np.int16)
    np.testing.assert_array_equal(g711.decode(ALL_CODES.tobytes(), payload_type), expected)
    np.testing.assert_array_equal(g711.decode(ALL_CODES, payload_type), expected)


@pytest.mark.parametrize("payload_type", [g711.PCMU, g711.PCMA])
def test_a_round_trip_keeps_a_sine_within_the_law_quantisation(payload_type: int) -> None:
    sine = (10000 * np.sin(2 * np.pi * 1000 * np.arange(800) / 8000)).astype(np.int16)
    back = g711.decode(g711.encode(sine, payload_type), payload_type).astype(np.int32)
    error = np.abs(back - sine)
    assert error.max() <= 10000 // 16 + 16  # one step of the top segment at most
    snr_db = 10 * np.log10(np.sum(sine.astype(float) ** 2) / np.sum(error.astype(float) ** 2))
    assert snr_db > 30


def test_encoding_a_batch_keeps_its_shape() -> None:
    frames = np.zeros((3, 160), dtype=np.int16)
    codes = g711.encode(frames, g711.PCMU)
    assert codes.shape == (3, 160) and np.all(codes == g711.SILENCE_CODE[g711.PCMU])


@pytest.mark.parametrize("payload_type", [g711.PCMU, g711.PCMA])
def test_decoding_rows_by_pairs_of_codes_gives_what_decoding_each_code_gives(payload_type: int) -> None:
    every_pair = np.arange(65536, dtype="<u2").view(np.uint8).reshape(-1, 16)  # every two codes, both orders
    np.testing.assert_array_equal(g711.decode_pairs(every_pair, payload_type), g711.decode(every_pair, payload_type))
    packets = np.random.default_rng(7).integers(0, 256, (5, 200), dtype=np.uint8)[:, 12:172]  # strided rows
    got = g711.decode_pairs(packets, payload_type)
    assert got.shape == (5, 160) and got.dtype == np.int16
    np.testing.assert_array_equal(got, g711.decode(packets, payload_type))
    odd = packets[:, :159]
    np.testing.assert_array_equal(g711.decode_pairs(odd, payload_type), g711.decode(odd, payload_type))

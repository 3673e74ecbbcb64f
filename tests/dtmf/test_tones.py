"""DTMF generation: frequencies, levels, twist convention, sequences and placed presses."""

from __future__ import annotations

import numpy as np
import pytest

from engine.dtmf.tones import HIGH_HZ, KEYS, LOW_HZ, dtmf_sequence, dtmf_tone, key_frequencies, place_tones
from engine.format import SAMPLE_DTYPE, SAMPLE_RATE_HZ, dbm0_to_peak


def _peak_hz(x: np.ndarray, lo_hz: float, hi_hz: float) -> tuple[float, float]:
    """Frequency (Hz, zero-padded FFT) and peak amplitude of the strongest component in [lo_hz, hi_hz]."""
    n = 1 << 20
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE_HZ)
    band = (freqs >= lo_hz) & (freqs <= hi_hz)
    i = np.argmax(np.where(band, spec, 0))
    return float(freqs[i]), float(spec[i] / np.hanning(len(x)).sum() * 2)


def test_keypad_layout() -> None:
    assert key_frequencies("1") == (697, 1209)
    assert key_frequencies("5") == (770, 1336)
    assert key_frequencies("#") == (941, 1477)
    assert key_frequencies("D") == (941, 1633)
    assert {key_frequencies(k) for k in KEYS} == {(lo, hi) for lo in LOW_HZ for hi in HIGH_HZ}


@pytest.mark.parametrize("bad", ["Z", "", "11", "a", "e"])
def test_bad_key_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match=repr(bad)):
        dtmf_tone(bad, 50)
    with pytest.raises(ValueError, match=repr(bad)):
        key_frequencies(bad)


def test_tone_frequencies_levels_and_length() -> None:
    x = dtmf_tone("9", 200, level_dbm0=-10)
    assert x.dtype == np.float64 and len(x) == 1600
    f_lo, a_lo = _peak_hz(x, 600, 1000)
    f_hi, a_hi = _peak_hz(x, 1100, 1700)
    assert abs(f_lo - 852) < 1 and abs(f_hi - 1477) < 1
    assert a_lo == pytest.approx(dbm0_to_peak(-10), rel=0.02)
    assert a_hi == pytest.approx(dbm0_to_peak(-10), rel=0.02)


@pytest.mark.parametrize(("twist_db", "low_dbm0", "high_dbm0"), [(6.0, -10, -16), (-4.0, -14, -10)])
def test_twist_convention(twist_db: float, low_dbm0: float, high_dbm0: float) -> None:
    x = dtmf_tone("1", 200, level_dbm0=-10, twist_db=twist_db)
    assert _peak_hz(x, 600, 1000)[1] == pytest.approx(dbm0_to_peak(low_dbm0), rel=0.02)
    assert _peak_hz(x, 1100, 1700)[1] == pytest.approx(dbm0_to_peak(high_dbm0), rel=0.02)


def test_frequency_offset_and_phase() -> None:
    x = dtmf_tone("0", 250, freq_offset=0.015, low_phase=np.pi / 2)
    assert _peak_hz(x, 600, 1100)[0] == pytest.approx(941 * 1.015, abs=1)
    assert _peak_hz(x, 1100, 1700)[0] == pytest.approx(1336 * 1.015, abs=1)
    assert x[0] == pytest.approx(dbm0_to_peak(-10))  # sin(π/2) of the low tone, high tone at phase 0


def test_sequence_layout() -> None:
    x = dtmf_sequence("12", tone_ms=50, gap_ms=30)
    assert len(x) == 2 * (400 + 240)
    assert np.all(x[400:640] == 0) and np.any(x[640:1040] != 0)
    assert len(dtmf_sequence("")) == 0
    with pytest.raises(ValueError, match="'X'"):
        dtmf_sequence("1X")


def test_place_tones_cuts_and_sums() -> None:
    out = place_tones(1000, [("1", 100), ("1", 100), ("5", 950)], tone_ms=50, level_dbm0=-20)
    assert out.dtype == SAMPLE_DTYPE and len(out) == 1000
    single = dtmf_tone("1", 50, -20)
    assert np.all(out[:100] == 0) and np.all(out[500:950] == 0)
    assert np.array_equal(out[100:500], np.rint(2 * single).astype(SAMPLE_DTYPE))
    assert np.array_equal(out[950:], np.rint(dtmf_tone("5", 50, -20)[:50]).astype(SAMPLE_DTYPE))
    with pytest.raises(ValueError, match="'Q'"):
        place_tones(100, [("Q", 0)])

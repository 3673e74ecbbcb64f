"""DTMF detection, the ITU-T Q.24 acceptance rules (as Asterisk/spandsp implement them).

Every rule is checked on many random cases (see :mod:`engine.testing.dtmf_cases`): 32 per key for all 16 keys, random
start phases and an onset anywhere relative to the detector's 5 ms block grid (fixed seeds), decoded in one batch.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.dtmf.detector import BatchDtmfDetector
from engine.dtmf.tones import KEYS, key_frequencies
from engine.format import SAMPLE_RATE_HZ, dbm0_to_peak, to_int16
from engine.testing.dtmf_cases import (
    CASES,
    decoded,
    g711_round_trip,
    key_cases,
    make_case,
    random_tone,
    rule_failures,
    run_rule,
)

LEVELS = (-26.0, -3.0)  # dBm0, of the stronger tone
CODECS = ("pcm16", "ulaw", "alaw")


@pytest.mark.parametrize("offset", [0.015, -0.015, 0.0])
def test_accepts_frequency_deviation_up_to_1_5_percent(offset: float) -> None:
    assert run_rule(1, True, tone_ms=50, freq_offset=offset) == []


def test_accepts_opposite_deviations_of_the_two_tones() -> None:
    rng = np.random.default_rng(2)
    for sign in (1, -1):
        for key in KEYS:
            low, high = key_frequencies(key)
            t = np.arange(400) / SAMPLE_RATE_HZ
            peak = dbm0_to_peak(-10)
            tone = (peak * np.sin(2 * np.pi * low * (1 + sign * 0.015) * t + rng.uniform(0, 6.3))
                    + peak * np.sin(2 * np.pi * high * (1 - sign * 0.015) * t + rng.uniform(0, 6.3)))
            assert decoded(make_case(rng, tone)[0]) == key


@pytest.mark.parametrize("offset", [0.035, -0.035, 0.05, -0.05])  # 8 % would land near a neighbour key
def test_rejects_frequency_deviation_of_3_5_percent_and_more(offset: float) -> None:
    assert run_rule(3, False, tone_ms=100, freq_offset=offset) == []


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("twist_db", [8.0, -4.0, 4.0, -2.0])
def test_accepts_normal_twist_8_db_and_reverse_twist_4_db(twist_db: float, codec: str) -> None:
    """At every level from −26 to −3 dBm0 (of the stronger tone), 40 ms tones, through μ-law and A-law."""
    assert rule_failures(4, True, codec, tone_ms=40, levels_dbm0=LEVELS, twist_db=twist_db) == []


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("twist_db", [10.0, -6.0, 12.0, -8.0, 16.0])
def test_rejects_normal_twist_of_10_db_and_reverse_twist_of_6_db(twist_db: float, codec: str) -> None:
    """At every level from −26 to −3 dBm0, 200 ms tones (every window a chance), through μ-law and A-law."""
    assert rule_failures(5, False, codec, tone_ms=200, levels_dbm0=LEVELS, twist_db=twist_db) == []


@pytest.mark.parametrize("codec", CODECS)
def test_each_key_reports_its_level_and_twist(codec: str) -> None:
    """The level of the stronger tone and the twist come back within 0.5 dB, whatever the phases and onset."""
    for twist_db in (-4.0, 0.0, 3.0, 8.0):
        rows, keys = key_cases(22, 60, LEVELS, twist_db=twist_db)
        levels = np.linspace(*LEVELS, CASES)
        det = BatchDtmfDetector(len(rows))
        events = det.process(g711_round_trip(rows, codec)) + det.process(np.zeros((len(rows), 120), np.int16))
        assert [(row, e.key) for row, e in events] == list(enumerate(keys))
        assert all(abs(e.twist_db - twist_db) <= 0.5 for _, e in events), twist_db
        assert all(min(abs(e.level_dbm0 - levels)) <= 0.5 for _, e in events), twist_db
        got = np.array([e.level_dbm0 for _, e in events])
        assert got.min() == pytest.approx(LEVELS[0], abs=0.5) and got.max() == pytest.approx(LEVELS[1], abs=0.5)


@pytest.mark.parametrize("tone_ms", [40, 41, 45])
def test_accepts_tones_of_40_ms(tone_ms: float) -> None:
    assert run_rule(6, True, tone_ms=tone_ms) == []


@pytest.mark.parametrize("tone_ms", [10, 20, 23])
def test_rejects_tones_of_23_ms_and_less(tone_ms: float) -> None:
    for level in (0.0, -10.0, -26.0):
        assert run_rule(7, False, tone_ms=tone_ms, level_dbm0=level) == []


@pytest.mark.parametrize("level_dbm0", [0.0, -10.0, -20.0, -26.0])
def test_accepts_levels_0_to_minus_26_dbm0(level_dbm0: float) -> None:
    assert run_rule(8, True, tone_ms=50, level_dbm0=level_dbm0) == []


@pytest.mark.parametrize("level_dbm0", [-33.0, -36.0, -45.0])
def test_rejects_levels_of_minus_33_dbm0_and_below(level_dbm0: float) -> None:
    assert run_rule(9, False, tone_ms=200, level_dbm0=level_dbm0) == []


def test_pauses_of_40_ms_separate_equal_keys() -> None:
    rng = np.random.default_rng(10)
    for _ in range(CASES):
        keys = "".join(rng.choice(list(KEYS), 6))
        key = keys[0]
        keys = key + key + keys  # always at least one repeated pair
        gap = np.zeros(320)
        x = np.concatenate([np.concatenate([random_tone(rng, k, 40), gap]) for k in keys])
        assert decoded(make_case(rng, x)[0]) == keys


def test_bridges_drop_outs_of_10_ms_and_less() -> None:
    rng = np.random.default_rng(11)
    for i in range(CASES):
        key = KEYS[i % 16]
        tone = random_tone(rng, key, 150)
        gap = int(rng.integers(8, 81))  # 1–10 ms
        at = int(rng.integers(400, 1200 - gap - 1))
        tone[at:at + gap] = 0.0
        snr = None if i % 2 else 20.0
        assert decoded(make_case(rng, tone, snr)[0]) == key, (i, gap, at)


@pytest.mark.parametrize("tone_ms", [40, 60, 100])
def test_works_at_15_db_snr(tone_ms: float) -> None:
    for level in (-10.0, -20.0):
        assert run_rule(12, True, snr_db=15.0, tone_ms=tone_ms, level_dbm0=level) == []


def test_noise_alone_gives_no_key() -> None:
    rng = np.random.default_rng(13)
    assert decoded(to_int16(rng.normal(0, dbm0_to_peak(-10), 30 * SAMPLE_RATE_HZ))) == ""


@pytest.mark.parametrize("codec", ["ulaw", "alaw"])
def test_survives_g711_round_trip(codec: str) -> None:
    rng = np.random.default_rng(14)
    keys = "".join(rng.choice(list(KEYS), 48))
    for level in (-3.0, -26.0):
        parts = [np.concatenate([random_tone(rng, k, 50, level_dbm0=level), np.zeros(int(rng.integers(320, 500)))])
                 for k in keys]
        x, _ = make_case(rng, np.concatenate(parts))
        y = g711_round_trip(x, codec)
        assert y.dtype == np.int16 and y.shape == x.shape and not np.array_equal(x, y)  # really companded
        assert decoded(y) == keys

"""The one converter between seconds, milliseconds, samples and wall time."""

from __future__ import annotations

from datetime import datetime

import pytest

from engine.format import (
    SAMPLES_PER_FRAME,
    SILENT_FRAME,
    ms_to_samples,
    samples_to_ms,
    samples_to_seconds,
    seconds_to_samples,
    wall_time,
)


def test_wall_time_is_exact_to_the_sample():
    start = datetime(2026, 1, 1, 12, 0, 0)
    assert wall_time(start, 0) == start
    assert wall_time(start, 1) == datetime(2026, 1, 1, 12, 0, 0, 125)
    assert wall_time(start, 8000 * 3600 + 4) == datetime(2026, 1, 1, 13, 0, 0, 500)


def test_conversions_round_trip():
    assert seconds_to_samples(1.5) == 12000 and samples_to_seconds(12000) == 1.5
    assert ms_to_samples(20) == SAMPLES_PER_FRAME and samples_to_ms(SAMPLES_PER_FRAME) == 20


def test_the_silent_frame_is_shared_and_read_only():
    assert len(SILENT_FRAME) == SAMPLES_PER_FRAME and not SILENT_FRAME.any()
    with pytest.raises(ValueError):
        SILENT_FRAME[0] = 1

"""SilenceWatch: quiet means below the threshold's sine power; the span is counted in samples, exactly."""

from __future__ import annotations

import numpy as np
import pytest

from engine.audio.silence import SilenceWatch
from engine.format import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, dbm0_to_peak, to_int16

FRAME = SAMPLES_PER_FRAME


def _sine(level_dbm0: float, frames: int = 1) -> np.ndarray:
    t = np.arange(frames * FRAME) / SAMPLE_RATE_HZ
    return to_int16(dbm0_to_peak(level_dbm0) * np.sin(2 * np.pi * 1000 * t))


@pytest.mark.parametrize(("level_dbm0", "quiet"), [(-40.0, False), (-44.0, False), (-46.0, True), (-60.0, True)])
def test_a_frame_is_quiet_below_minus_45_dbm0(level_dbm0: float, quiet: bool) -> None:
    watch = SilenceWatch(FRAME)
    assert watch.feed(_sine(level_dbm0)) is quiet


def test_the_span_counts_quiet_samples_in_a_row() -> None:
    watch = SilenceWatch(3 * FRAME)
    silent, loud = np.zeros(FRAME, np.int16), _sine(-20.0)
    assert [watch.feed(f) for f in (silent, silent, loud, silent, silent)] == [False] * 5
    assert watch.feed(silent) and watch.quiet_samples == 3 * FRAME
    watch.reset()
    assert watch.quiet_samples == 0 and not watch.feed(silent)
    with pytest.raises(ValueError, match="span_samples"):
        SilenceWatch(0)

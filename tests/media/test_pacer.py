"""The pacer: absolute deadlines, lateness, missed frames, catching up without skipping, re-anchoring."""

from __future__ import annotations

import time

import pytest

from engine.media.pacer import FRAME_SECONDS, ManualClock, MonotonicClock, Pacer, ScaledClock


def test_ticks_at_absolute_deadlines_on_a_manual_clock() -> None:
    clock = ManualClock(100.0)
    starts: list[float] = []
    pacer = Pacer(clock, lambda: starts.append(clock.now()))
    pacer.run(max_ticks=500)
    assert starts == pytest.approx([100.0 + k * FRAME_SECONDS for k in range(500)])
    stats = pacer.stats()
    assert (stats.ticks, stats.missed, stats.resyncs) == (500, 0, 0)
    assert stats.max_lateness_s == pytest.approx(0.0, abs=1e-9)


def test_a_slow_tick_is_caught_up_without_skipping_frames() -> None:
    clock = ManualClock()
    starts: list[float] = []

    def tick() -> None:
        starts.append(clock.now())
        if len(starts) == 10:
            clock.advance(0.070)  # this tick took 70 ms: the next 3 deadlines pass

    pacer = Pacer(clock, tick)
    pacer.run(max_ticks=20)
    late = [round((s - k * FRAME_SECONDS) * 1000, 6) for k, s in enumerate(starts)]
    assert late[:10] == [0] * 10
    assert late[10:14] == pytest.approx([50, 30, 10, 0], abs=1e-6)  # back to back until caught up
    assert all(v == pytest.approx(0, abs=1e-6) for v in late[14:])
    stats = pacer.stats()
    assert stats.ticks == 20 and stats.missed == 2  # the ticks 50 and 30 ms late: more than a frame late
    assert stats.max_lateness_s == pytest.approx(0.050)


def test_falling_far_behind_reanchors_the_deadlines() -> None:
    clock = ManualClock()
    count = 0

    def tick() -> None:
        nonlocal count
        count += 1
        if count == 5:
            clock.advance(3.0)  # a stopped process

    pacer = Pacer(clock, tick, max_behind_s=1.0)
    pacer.run(max_ticks=10)
    stats = pacer.stats()
    assert stats.resyncs == 1 and stats.ticks == 10 and stats.missed == 1
    assert clock.now() == pytest.approx(0.08 + 3.0 + 4 * FRAME_SECONDS)


def test_stop_ends_run_after_the_current_tick() -> None:
    clock = ManualClock()
    pacer = Pacer(clock, lambda: pacer.stop() if pacer.ticks == 7 else None)
    pacer.run()
    assert pacer.ticks == 7 and pacer.stopping


def test_monotonic_clock_paces_in_real_time() -> None:
    pacer = Pacer(MonotonicClock(), lambda: None)
    start = time.monotonic()
    pacer.run(max_ticks=11)
    assert 0.19 <= time.monotonic() - start < 0.5
    assert pacer.stats().p50_lateness_s < 0.005


def test_scaled_clock_runs_faster_than_real_time() -> None:
    clock = ScaledClock(50)
    pacer = Pacer(clock, lambda: None)
    start = time.monotonic()
    pacer.run(max_ticks=101)  # 2 s of frames
    assert time.monotonic() - start < 0.5
    assert clock.now() >= 2.0
    with pytest.raises(ValueError):
        ScaledClock(0)

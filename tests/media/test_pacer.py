"""The pacer on injected clocks: absolute deadlines, missed frames told the truth, lateness over a window."""

from __future__ import annotations

import numpy as np
import pytest

from engine.media.clock import ManualClock, MonotonicClock, ScaledClock
from engine.media.pacer import FRAME_SECONDS, Pacer, late_frames

P = FRAME_SECONDS


def stall_at(clock: ManualClock, tick_index: int, seconds: float):
    """A tick function: tick number ``tick_index`` (0-based) takes ``seconds``; the starts are recorded."""
    starts: list[float] = []

    def tick() -> None:
        starts.append(clock.now())
        if len(starts) == tick_index + 1:
            clock.advance(seconds)

    return tick, starts


def test_ticks_at_absolute_deadlines_on_a_manual_clock() -> None:
    clock = ManualClock(100.0)
    starts: list[float] = []
    pacer = Pacer(clock, lambda: starts.append(clock.now()))
    pacer.run(max_ticks=500)
    assert starts == pytest.approx([100.0 + k * P for k in range(500)])
    stats = pacer.stats()
    assert (stats.ticks, stats.missed, stats.resyncs, stats.window_ticks) == (500, 0, 0, 500)
    assert stats.max_lateness_s == pytest.approx(0.0, abs=1e-9)


def test_a_slow_tick_is_caught_up_without_skipping_frames() -> None:
    clock = ManualClock()
    tick, starts = stall_at(clock, 9, 0.070)  # the tenth tick takes 70 ms: the next 3 deadlines pass
    pacer = Pacer(clock, tick)
    pacer.run(max_ticks=20)
    late_ms = [round((s - k * P) * 1000, 6) for k, s in enumerate(starts)]
    assert late_ms[:10] == [0] * 10
    assert late_ms[10:14] == pytest.approx([50, 30, 10, 0], abs=1e-6)  # back to back until caught up
    assert all(v == pytest.approx(0, abs=1e-6) for v in late_ms[14:])
    stats = pacer.stats()
    assert stats.ticks == 20 and stats.missed == 2  # the ticks 50 and 30 ms late: more than a frame late
    assert stats.max_lateness_s == pytest.approx(0.050)


def test_resync_of_n_frames_counts_n_missed() -> None:
    n = 550  # 11 s of frames: the defect counted this resync as one missed frame
    clock = ManualClock()
    tick, starts = stall_at(clock, 4, (n + 1.5) * P)  # the next tick starts (n + 0.5) frames late
    pacer = Pacer(clock, tick, max_behind_s=1.0)
    pacer.run(max_ticks=10)
    stats = pacer.stats()
    assert (stats.resyncs, stats.ticks, stats.missed) == (1, 10, n)
    assert stats.max_lateness_s == pytest.approx((n + 0.5) * P)
    assert np.diff(starts[5:]) == pytest.approx([P] * 4)  # re-anchored: on time again after the resync


def test_a_resync_counts_what_catching_up_would_have_counted() -> None:
    for stall_frames in (2.5, 3.0, 51.2, 60.0, 149.9, 551.5):
        counts = []
        for max_behind_s in (0.5, 1000.0):  # re-anchoring, catching up
            clock = ManualClock()
            tick, _ = stall_at(clock, 0, stall_frames * P)
            pacer = Pacer(clock, tick, max_behind_s=max_behind_s)
            pacer.run(max_ticks=int(stall_frames) + 5)
            counts.append(pacer.missed)
        assert counts[0] == counts[1] == late_frames((stall_frames - 1) * P, P), stall_frames


def test_late_frames_counts_ticks_more_than_a_period_late() -> None:
    assert [late_frames(ms / 1000, P) for ms in (0, 10, 20, 20.5, 40, 50, 11000)] == [0, 0, 0, 1, 1, 2, 549]


def test_lateness_percentiles_and_max_over_the_window() -> None:
    clock = ManualClock()
    count = 0
    expected: list[float] = []  # the lateness each tick will start with

    def tick() -> None:
        nonlocal count
        count += 1
        if count % 2:  # every other tick overruns by e, so the next starts e late (and on time after)
            extra = (0.015 if count < 100 else (count % 10) * 0.0005)
            clock.advance(P + extra)
            expected.extend([extra, 0.0])

    window = 100
    pacer = Pacer(clock, tick, window=window)
    pacer.run(max_ticks=300)
    recent = np.array([0.0] + expected[:-1])[-window:]  # tick 0 starts on time
    assert pacer.lateness() == pytest.approx(recent, abs=1e-9)
    stats = pacer.stats()
    assert stats.window_ticks == window and stats.missed == 0
    assert stats.p50_lateness_s == pytest.approx(np.percentile(recent, 50), abs=1e-9)
    assert stats.p99_lateness_s == pytest.approx(np.percentile(recent, 99), abs=1e-9)
    assert stats.window_max_lateness_s == pytest.approx(0.0045, abs=1e-9)  # the 15 ms ticks left the window
    assert stats.max_lateness_s == pytest.approx(0.015, abs=1e-9)


def test_stats_before_any_tick_are_zero() -> None:
    stats = Pacer(ManualClock(), lambda: None).stats()
    assert (stats.ticks, stats.window_ticks, stats.p99_lateness_s, stats.window_max_lateness_s) == (0, 0, 0.0, 0.0)


def test_stop_ends_run_after_the_current_tick() -> None:
    clock = ManualClock()
    pacer = Pacer(clock, lambda: pacer.stop() if pacer.ticks == 7 else None)
    pacer.run()
    assert pacer.ticks == 7 and pacer.stopping


def test_an_exception_in_tick_propagates() -> None:
    def tick() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        Pacer(ManualClock(), tick).run(max_ticks=3)


@pytest.mark.parametrize("bad", [{"period_s": 0}, {"max_behind_s": -1}, {"window": 0}])
def test_bad_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Pacer(ManualClock(), lambda: None, **bad)


def test_monotonic_clock_never_wakes_before_the_moment() -> None:
    clock = MonotonicClock()
    for _ in range(3):
        target = clock.now() + 0.005
        clock.sleep_until(target)
        assert clock.now() >= target
    clock.sleep_until(clock.now() - 1.0)  # a moment passed: returns at once


def test_scaled_clock_runs_speed_times_its_base() -> None:
    base = ManualClock(10.0)
    clock = ScaledClock(50, base=base)
    assert clock.now() == 0.0
    base.advance(0.04)
    assert clock.now() == pytest.approx(2.0)
    clock.sleep_until(3.0)
    assert base.now() == pytest.approx(10.06) and clock.now() == pytest.approx(3.0)
    pacer = Pacer(clock, lambda: None)
    pacer.run(max_ticks=101)  # 2 s of frames in 40 ms of the base clock
    assert base.now() == pytest.approx(10.06 + 100 * P / 50)
    for speed in (0, -1, float("nan")):
        with pytest.raises(ValueError):
            ScaledClock(speed)

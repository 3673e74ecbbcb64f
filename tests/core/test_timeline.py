"""The timeline is lazy: repeats and loops are counters, so 2³¹−1 of them cost what one costs."""

from __future__ import annotations

import tracemalloc

import numpy as np

from engine.core.orders import KeyCollection, MultOrders, Order, PlayKind
from engine.core.player import RequestPlayer
from engine.core.reports import RequestReport, Result
from engine.core.timeline import Program, order_segments, order_start_without_keys
from engine.format import SAMPLES_PER_FRAME

MOST = 2**31 - 1


def _prompt(samples: int) -> np.ndarray:
    return (np.arange(samples) % 1000 + 1).astype(np.int16)


def _peak_bytes_of_frames(program: Program, frames: int) -> tuple[int, RequestPlayer]:
    """Peak traced memory (bytes) while a player plays ``frames`` frames of ``program``."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        player = RequestPlayer(program)
        for _ in range(frames):
            player.next_frame()
        return tracemalloc.get_traced_memory()[1] - base, player
    finally:
        tracemalloc.stop()


def test_playtime_2147483647_costs_one_play():
    prompt = _prompt(1234)
    huge = Program(MultOrders("a", "c", (Order(PlayKind.FILE, "x", MOST, 37),)), (prompt,))
    one = Program(MultOrders("a", "c", (Order(PlayKind.FILE, "x", 1, 37),)), (prompt,))
    assert huge.samples_without_keys == MOST * 1234 + (MOST - 1) * 37  # computed, not counted
    huge_peak, player = _peak_bytes_of_frames(huge, 3000)
    one_peak, _ = _peak_bytes_of_frames(one, 3000)
    assert huge_peak < 64 * 1024 and huge_peak < 4 * one_peak + 16 * 1024
    assert player.position_samples == 3000 * SAMPLES_PER_FRAME and not player.done
    assert player.status().repetition == 3000 * SAMPLES_PER_FRAME // (1234 + 37)


def test_playtime_loops_2147483647_costs_one_loop():
    order = Order(PlayKind.FILE, "x", 3, 100, KeyCollection(1, "#", 0, 0), "d")
    huge = Program(MultOrders("a", "c", (order,), MOST), (_prompt(500),))
    peak, player = _peak_bytes_of_frames(huge, 3000)
    assert peak < 64 * 1024 and player.status().loop == 3000 * SAMPLES_PER_FRAME // (3 * 600)
    assert order_start_without_keys(huge, MOST - 1, 0) == (MOST - 1) * 1800


def test_loops_of_nothing_end_at_once_with_one_report():
    order = Order(PlayKind.SPEECH, "", MOST, 0, KeyCollection(1, None, 0, 0), "d")
    player = RequestPlayer(Program(MultOrders("a", "c", (order,), MOST), (_prompt(0),)))
    assert player.done and player.events[-1] == RequestReport(Result.COMPLETE, None, 0)
    assert len(player.events) == 2  # ivrreportdtmf of the last loop, then multrpt


def test_segments_are_made_as_reached_and_match_the_plays_and_gaps():
    order = Order(PlayKind.FILE, "x", 3, 5, KeyCollection(), "")
    segments = order_segments(order, _prompt(7), 0)
    assert [(s.repetition, s.length_samples, s.is_gap) for s in segments] == [
        (0, 7, False), (0, 5, True), (1, 7, False), (1, 5, True), (2, 7, False), (2, 5, True)]
    plain = order_segments(Order(PlayKind.FILE, "x", 3, 5), _prompt(7), 0)
    assert [s.is_gap for s in plain] == [False, True, False, True, False]
    assert [s.is_gap for s in order_segments(Order(PlayKind.FILE, "x", 3, 5), _prompt(0), 0)] == [True, True]
    assert order_segments(Order(PlayKind.FILE, "x", MOST, 0), _prompt(0), 0) == []

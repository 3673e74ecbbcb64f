"""The timeline and key collection, driven frame by frame (engine.testing.harness) with keys offered directly.

Prompts are generated ramps, so every played sample can be traced back to its prompt and offset. Time is the
sample position_samples: a 30 s timeout runs in a few milliseconds.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.collector import EndReason
from engine.core.orders import KeyCollection, MultOrders, Order, PlayKind
from engine.core.player import RequestPlayer
from engine.core.reports import KeysReport, RequestReport, Result
from engine.core.timeline import Program, order_start_without_keys, request_samples_without_keys
from engine.format import SAMPLES_PER_FRAME, seconds_to_samples
from engine.testing.harness import Offers, play_program, run_call

HALF_SECOND = 4000


def prompt(samples: int, base: int = 1) -> np.ndarray:
    """A recognisable prompt: base, base+1, ... (never 0, so silence is distinguishable)."""
    return (np.arange(samples) % 20000 + base).astype(np.int16)


def program(orders: list[tuple[Order, np.ndarray]], loops: int = 1) -> Program:
    request = MultOrders("app", "call", tuple(o for o, _ in orders), loops)
    return Program(request, tuple(p for _, p in orders))


def getkey(plays: int = 3, gap_s: int = 2, total_s: int = 0, max_keys: int = 0, end_key: str | None = None,
           data: str = "d") -> Order:
    gap = seconds_to_samples(gap_s)
    rule = KeyCollection(max_keys, end_key, gap, seconds_to_samples(total_s))
    return Order(PlayKind.SPEECH, "menu", plays, gap, rule, data)


def play(prog: Program, keys: Offers | None = None) -> tuple[np.ndarray, RequestPlayer]:
    """Run the player; ``keys[tick]``: (key, onset sample) offered after frame ``tick``. Returns output, player."""
    played, player = play_program(prog, keys)
    return played.samples, player


def report(player: RequestPlayer) -> RequestReport:
    last = player.events[-1]
    assert isinstance(last, RequestReport)
    return last


def test_plays_and_gaps_are_exact_to_the_sample():
    order = Order(PlayKind.FILE, "x.wav", plays=3, gap_samples=seconds_to_samples(2))
    prog = program([(order, prompt(HALF_SECOND))])
    audio, player = play(prog)
    assert report(player).at_sample == 44000 == request_samples_without_keys(prog)
    assert len(audio) == 44000  # 275 full frames
    p = prompt(HALF_SECOND)
    assert np.array_equal(audio[:4000], p) and not audio[4000:20000].any()
    assert np.array_equal(audio[20000:24000], p) and np.array_equal(audio[40000:44000], p)
    assert player.events == [RequestReport(Result.COMPLETE, None, 44000)]


def test_last_frame_is_padded_never_dropped():
    prog = program([(Order(PlayKind.FILE, "x", plays=1), prompt(1001))])
    audio, player = play(prog)
    assert len(audio) == 7 * SAMPLES_PER_FRAME and report(player).at_sample == 1001
    assert np.array_equal(audio[:1001], prompt(1001)) and not audio[1001:].any()


@pytest.mark.parametrize(("total_s", "expected_s"), [(0, 7.5), (30, 30.0), (4, 4.0)])
def test_getkey_without_keys_lasts_its_natural_or_total_time(total_s, expected_s):
    prog = program([(getkey(plays=3, gap_s=2, total_s=total_s), prompt(HALF_SECOND))])
    audio, player = play(prog)
    expected = seconds_to_samples(expected_s)
    assert report(player).at_sample == expected
    reason = EndReason.TOTAL_TIMEOUT
    assert player.events[0] == KeysReport("", reason, "d", expected)
    if total_s == 4:  # the third play is cut at 4.0 s: plays at 0, 2.5 s (4000 + 16000 gap each)
        assert np.array_equal(audio[20000:24000], prompt(HALF_SECOND)) and not audio[24000:expected].any()


def test_sequence_and_loops_with_offsets_across_frame_boundaries():
    intro = Order(PlayKind.SPEECH, "intro", plays=2, gap_samples=37)
    menu = getkey(plays=1, gap_s=1)
    prog = program([(intro, prompt(333, 5)), (menu, prompt(HALF_SECOND, 9))], loops=2)
    audio, player = play(prog)
    one_loop = 333 * 2 + 37 + HALF_SECOND + 8000
    assert report(player).at_sample == 2 * one_loop
    starts = [[order_start_without_keys(prog, loop, order) for order in range(2)] for loop in range(2)]
    assert starts == [[0, 703], [one_loop, one_loop + 703]]
    assert np.array_equal(audio[one_loop + 370 : one_loop + 703], prompt(333, 5))
    assert np.array_equal(audio[one_loop + 703 : one_loop + 703 + 4000], prompt(HALF_SECOND, 9))
    # ivrreportdtmf once per request: after the last loop, empty
    keys_reports = [e for e in player.events if isinstance(e, KeysReport)]
    assert keys_reports == [KeysReport("", EndReason.TOTAL_TIMEOUT, "d", 2 * one_loop)]


def test_barge_in_cuts_the_prompt_and_max_keys_ends_at_once():
    prog = program([(getkey(plays=3, gap_s=2, max_keys=1), prompt(HALF_SECOND))], loops=3)
    tick = 10  # the key is decided at the end of frame 10
    audio, player = play(prog, {tick: [("5", 1000)]})
    at = (tick + 1) * SAMPLES_PER_FRAME
    assert np.array_equal(audio[:at], prompt(HALF_SECOND)[:at])
    assert player.events == [KeysReport("5", EndReason.MAX_KEYS, "d", at), RequestReport(Result.COMPLETE, "5", at)]
    assert len(audio) == at  # the remaining plays and loops are skipped


def test_end_key_is_not_a_digit_and_silence_follows_barge_in():
    prog = program([(getkey(plays=2, gap_s=1, end_key="#"), prompt(HALF_SECOND))])
    audio, player = play(prog, {5: [("1", 400)], 30: [("2", 4000)], 60: [("#", 9000)]})
    end = 61 * SAMPLES_PER_FRAME
    assert player.events[0] == KeysReport("12", EndReason.END_KEY, "d", end)
    assert report(player) == RequestReport(Result.COMPLETE, "12", end)
    assert not audio[6 * SAMPLES_PER_FRAME :].any()  # barge-in: silence after the first key


def test_inter_key_timeout_counts_from_the_last_key():
    prog = program([(getkey(plays=3, gap_s=2, total_s=30), prompt(HALF_SECOND))])
    audio, player = play(prog, {9: [("7", 800)], 99: [("8", 15000)]})
    end = 100 * SAMPLES_PER_FRAME + seconds_to_samples(2)
    assert player.events[0] == KeysReport("78", EndReason.INTER_KEY_TIMEOUT, "d", end)
    assert len(audio) == -(-end // SAMPLES_PER_FRAME) * SAMPLES_PER_FRAME


def test_total_time_beats_inter_key_time_when_earlier():
    prog = program([(getkey(plays=1, gap_s=5, total_s=3), prompt(HALF_SECOND))])
    _, player = play(prog, {50: [("3", 7000)]})
    assert player.events[0] == KeysReport("3", EndReason.TOTAL_TIMEOUT, "d", 24000)


def test_keys_before_the_getkey_order_are_not_collected():
    intro = Order(PlayKind.SPEECH, "intro", plays=1)
    prog = program([(intro, prompt(HALF_SECOND)), (getkey(plays=1, gap_s=1, max_keys=1), prompt(800))])
    # a tone that began during the intro but was decided after the menu started is not collected
    audio, player = play(prog, {10: [("1", 1000)], 25: [("2", 3990)], 40: [("3", 6000)]})
    assert player.events[0] == KeysReport("3", EndReason.MAX_KEYS, "d", 41 * SAMPLES_PER_FRAME)


def test_answer_in_first_loop_skips_the_remaining_loops():
    prog = program([(getkey(plays=1, gap_s=2, end_key="0"), prompt(HALF_SECOND))], loops=5)
    _, player = play(prog, {3: [("0", 100)]})
    assert player.events == [KeysReport("", EndReason.END_KEY, "d", 640),
                             RequestReport(Result.COMPLETE, None, 640)]


def test_no_answer_in_first_loop_plays_the_next_loop():
    prog = program([(getkey(plays=1, gap_s=1, max_keys=2), prompt(HALF_SECOND))], loops=2)
    loop_end = HALF_SECOND + 8000
    _, player = play(prog, {80: [("4", loop_end + 100)], 90: [("2", loop_end + 1500)]})
    assert player.events[0] == KeysReport("42", EndReason.MAX_KEYS, "d", 91 * SAMPLES_PER_FRAME)


def test_hang_up_and_stop():
    prog = program([(getkey(plays=2, gap_s=1), prompt(HALF_SECOND))])
    player = RequestPlayer(prog)
    for _ in range(20):
        player.next_frame()
    player.on_key("9", 10)
    player.hang_up()
    assert player.events == [KeysReport("9", EndReason.HANGUP, "d", 3200), RequestReport(Result.HANGUP, "9", 3200)]
    assert not player.next_frame().any()
    stopped = RequestPlayer(prog)
    stopped.next_frame()
    stopped.stop()
    assert stopped.events == [RequestReport(Result.STOPPED, None, SAMPLES_PER_FRAME)]


def test_status_reports_order_repetition_and_timer():
    intro = Order(PlayKind.SPEECH, "intro", plays=2, gap_samples=800)
    prog = program([(intro, prompt(HALF_SECOND)), (getkey(plays=1, gap_s=1, total_s=10), prompt(800))])
    player = RequestPlayer(prog)
    for _ in range(28):  # 4480 samples: into the gap after the first play
        player.next_frame()
    status = player.status()
    assert (status.order_index, status.repetition, status.in_gap, status.collecting) == (0, 0, True, False)
    for _ in range(37):  # 10400: the menu started at 8800
        player.next_frame()
    status = player.status()
    assert status.order_index == 1 and status.collecting and status.samples_to_deadline == 8800 + 80000 - 10400


def test_keys_through_the_media_loop_are_decoded_from_real_tones():
    prog = program([(getkey(plays=3, gap_s=2, max_keys=2), prompt(HALF_SECOND))])
    run = run_call(prog, keys="4@0.3,2@1.0")
    (keys,) = run.keys_reports
    (done,) = run.request_reports
    assert keys.digits == "42" and keys.reason is EndReason.MAX_KEYS and done.digits == "42"
    assert run.events[0][0] == keys.at_sample  # one request from the call's start: the same samples
    assert seconds_to_samples(1.0) + 320 <= keys.at_sample <= seconds_to_samples(1.0) + 640  # decided 40-80 ms in
    assert keys.at_sample % SAMPLES_PER_FRAME == 0  # a key is decided at the end of a frame
    assert len(run.samples) == keys.at_sample  # max keys ends the request at once


def test_the_loop_plays_what_the_player_plays_and_requests_follow_each_other():
    first = program([(Order(PlayKind.FILE, "x", plays=2, gap_samples=77), prompt(1001))])
    second = program([(getkey(plays=1, gap_s=1), prompt(333, 7))])
    alone_first, _ = play_program(first)
    alone_second, _ = play_program(second)
    run = run_call([first, second], extra_frames=3)
    assert np.array_equal(run.samples[: len(alone_first.samples)], alone_first.samples)
    second_start = len(alone_first.samples)  # the next request starts on the next frame boundary
    assert np.array_equal(run.samples[second_start : second_start + len(alone_second.samples)],
                          alone_second.samples)
    assert [at for at, _ in run.events] == [2079, second_start + 8333, second_start + 8333]
    assert not run.samples[second_start + len(alone_second.samples) :].any()  # idle: silence, 3 frames
    assert len(run.samples) == second_start + len(alone_second.samples) + 3 * SAMPLES_PER_FRAME

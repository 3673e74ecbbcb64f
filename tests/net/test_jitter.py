"""The jitter bank's rules, stream by stream in one batch: placement, depth, talkspurts; RTCP reports."""

from __future__ import annotations

import numpy as np

from engine.format import SAMPLES_PER_FRAME
from engine.net.jitter import QUIET_PEAK, SHRINK_AFTER_FRAMES, JitterBank
from engine.net.rtcp import ReportBlock, build_report, parse_reports

F = SAMPLES_PER_FRAME


def _frame(value: int) -> np.ndarray:
    return np.full((1, F), value, dtype=np.int16)


def test_two_streams_in_one_batch_keep_their_own_grids_and_depths() -> None:
    bank = JitterBank(4, min_depth=2, max_depth=6)
    a, b = bank.add(), bank.add()
    out = np.zeros((4, F), dtype=np.int16)
    bank.put(np.array([a, b]), np.array([1000, 77]), np.stack([_frame(1)[0], _frame(2)[0]]))
    stamps, heard = [], []
    for k in range(1, 6):
        payloads = np.stack([_frame(10 + k)[0], _frame(20 + k)[0]])
        bank.put(np.array([a, b]), np.array([1000 + k * F, 77 + k * F]), payloads)
        stamps.append(bank.read(out).tolist()[:2])
        heard.append((int(out[a, 0]), int(out[b, 0])))
    assert stamps[0] == [1000 - 2 * F, 77 - 2 * F]  # each stream plays two frames behind its first packet
    assert heard == [(0, 0), (0, 0), (1, 2), (11, 21), (12, 22)]


def test_late_packets_deepen_and_a_long_deep_spell_shrinks_back() -> None:
    bank = JitterBank(1, min_depth=2, max_depth=4)
    row = bank.add()
    out = np.zeros((1, F), dtype=np.int16)
    ts = 0
    for _ in range(4):
        bank.put(np.array([row]), np.array([ts]), _frame(5))
        bank.read(out)
        ts += F
    bank.put(np.array([row]), np.array([-5 * F]), _frame(5))  # far behind the playout point
    assert bank.stats(row)["late"] == 1 and bank.stats(row)["depth"] == 3
    for _ in range(5):  # a burst: more than depth + 2 frames buffered
        bank.put(np.array([row]), np.array([ts]), _frame(5))
        ts += F
    for _ in range(SHRINK_AFTER_FRAMES + 1):
        bank.put(np.array([row]), np.array([ts]), _frame(5))
        ts += F
        bank.read(out)
    assert bank.stats(row)["shrunk"] >= 1 and bank.stats(row)["depth"] == 2


def test_a_new_talkspurt_after_silence_reanchors_and_30_ms_packets_are_placed() -> None:
    bank = JitterBank(1)
    row = bank.add()
    out = np.zeros((1, F), dtype=np.int16)
    bank.put(np.array([row]), np.array([0]), _frame(1))
    for _ in range(4):
        bank.read(out)  # plays it, then underruns
    assert bank.stats(row)["underruns"] >= 1
    bank.put_samples(row, 100 * F, np.full(240, 9, np.int16))  # 30 ms, after a long pause
    assert bank.stats(row)["resyncs"] == 1
    got = []
    for _ in range(4):
        bank.read(out)
        got.append(out[0].copy())
    audio = np.concatenate(got)
    assert np.count_nonzero(audio == 9) == 240


def test_removing_a_stream_moves_the_last_into_its_row() -> None:
    bank = JitterBank(3)
    rows = [bank.add() for _ in range(3)]
    bank.put(np.array(rows), np.array([0, 0, 0]), np.stack([_frame(i)[0] for i in (1, 2, 3)]))
    assert bank.remove(0) == 2 and bank.size == 2
    out = np.zeros((3, F), dtype=np.int16)
    for _ in range(3):
        bank.read(out)
    assert out[0, 0] == 3 and out[1, 0] == 2 and bank.stats(0)["placed"] == 1  # row 0 is the former row 2


def test_rtcp_reports_round_trip() -> None:
    block = ReportBlock(0xABCDEF01, 0.25, -3, 70000, 42)
    sender, blocks = parse_reports(build_report(7, "me@127.0.0.1", block, (160, 10, 1600)))
    assert sender == 7 and blocks == [ReportBlock(0xABCDEF01, 0.25, -3, 70000, 42)]
    sender, blocks = parse_reports(build_report(8, "me", None, None))
    assert sender == 8 and blocks == []


def test_a_backlog_past_the_depth_keeps_every_loud_frame_and_skips_quiet_ones() -> None:
    """A burst of 20 frames (a stall upstream): the tone in it plays whole; the silence after it is skipped."""
    bank = JitterBank(2, min_depth=2, max_depth=4)
    tone_row, quiet_row = bank.add(), bank.add()
    out = np.zeros((2, F), dtype=np.int16)
    loud = [_frame(QUIET_PEAK + 1)[0] * (1 if k % 2 else -1) for k in range(12)]  # a key's level, then quiet
    frames = {tone_row: loud + [_frame(3)[0]] * 8, quiet_row: [_frame(QUIET_PEAK)[0]] * 20}
    for k in range(20):  # the whole burst at once, for both streams
        bank.put(np.array([tone_row, quiet_row]), np.array([k * F, k * F]), np.stack([frames[tone_row][k],
                                                                                  frames[quiet_row][k]]))
    played: dict[int, list[int]] = {tone_row: [], quiet_row: []}
    for _ in range(20):
        stamps = bank.read(out)
        for row in (tone_row, quiet_row):
            if stamps[row] >= 0:
                played[row].append(int(stamps[row]) // F)
    assert played[tone_row][:12] == list(range(12))  # every loud frame, none skipped: then the quiet ones are
    assert bank.stats(tone_row)["skipped"] >= 2 and 12 < len(played[tone_row]) < 20
    assert bank.stats(quiet_row)["skipped"] >= 6 and played[quiet_row][:3] == [1, 3, 5]  # every other one, at once

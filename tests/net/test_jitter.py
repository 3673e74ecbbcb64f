"""The jitter bank's rules, stream by stream in one batch: placement, depth, talkspurts; RTCP reports."""

from __future__ import annotations

import numpy as np

from engine.format import SAMPLES_PER_FRAME
from engine.net.jitter import SHRINK_AFTER_FRAMES, JitterBank
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

"""Receive statistics and jitter buffers: the fast path for batches without a stream twice equals the general one."""

from __future__ import annotations

import numpy as np
import pytest

from engine.format import SAMPLES_PER_FRAME
from engine.net.jitter import COUNTERS, JitterBank
from engine.net.rtp_stats import StreamStats

F = SAMPLES_PER_FRAME
STREAMS = 12


def _batches(seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per tick (slots, sequence numbers, timestamps): each stream at most once, some lost, late or wrapping."""
    rng = np.random.default_rng(seed)
    seq = rng.integers(0, 65536, STREAMS)
    ts = rng.integers(0, 1 << 32, STREAMS) - rng.integers(0, 50, STREAMS) * F  # some wrap soon
    batches = []
    for _ in range(120):
        here = rng.permutation(STREAMS)[: rng.integers(0, STREAMS + 1)]
        jump = rng.choice([-2, -1, 0, 0, 0, 0, 3], len(here))  # reordered, repeated, lost
        batches.append((here.astype(np.int64), (seq[here] + jump) & 0xFFFF, (ts[here] + jump * F) & 0xFFFFFFFF))
        seq, ts = (seq + 1) & 0xFFFF, (ts + F) & 0xFFFFFFFF
    return batches


@pytest.mark.parametrize("seed", range(20))
def test_statistics_of_batches_without_a_stream_twice_equal_the_general_path(seed: int) -> None:
    fast, general = StreamStats(STREAMS), StreamStats(STREAMS)
    for tick, (slots, seq, ts) in enumerate(_batches(seed)):
        assert np.array_equal(fast.update(slots, seq, ts, tick, distinct=True), general.update(slots, seq, ts, tick))
    for mine, theirs in zip(fast.columns, general.columns, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert fast.lost(STREAMS) == general.lost(STREAMS) > 0


@pytest.mark.parametrize("seed", range(20))
def test_a_jitter_bank_told_the_batch_is_distinct_plays_what_it_finds_out_itself(seed: int) -> None:
    told, found = JitterBank(STREAMS), JitterBank(STREAMS)
    for bank in (told, found):
        for _ in range(STREAMS):
            bank.add()
    stats = StreamStats(STREAMS)
    rng = np.random.default_rng(seed)
    out_told, out_found = np.zeros((STREAMS, F), np.int16), np.zeros((STREAMS, F), np.int16)
    for tick, (slots, seq, ts) in enumerate(_batches(seed)):
        ext = stats.update(slots, seq, ts, tick)
        payloads = rng.integers(-9000, 9000, (len(slots), F)).astype(np.int16)
        told.put(slots, ext, payloads, distinct=True)
        found.put(slots, ext, payloads)
        assert np.array_equal(told.read(out_told), found.read(out_found))
        assert np.array_equal(out_told, out_found)
    for name in COUNTERS:
        np.testing.assert_array_equal(told.counters[name], found.counters[name])
    assert found.counters["placed"].sum() > 0 and found.counters["late"].sum() > 0

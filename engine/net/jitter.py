"""The receive jitter buffers of every RTP stream of a hub, as rows of numpy arrays, worked per tick.

Each stream (a row) keeps a ring of :data:`RING_BLOCKS` frame-sized blocks indexed by RTP timestamp: block
``b`` holds timestamps ``offset + 160·b …``, ``offset`` being the stream's first timestamp modulo 160 (so a
20 ms packet is one block, copied whole). Per tick, :meth:`JitterBank.put` places a batch of packets (every
stream's, at once) and :meth:`JitterBank.read` plays one frame of every stream.

Rules: reordered packets land in their block; a packet for a block already filled is a *duplicate*, one
behind the playout point *late*: both dropped and counted. A missing frame is concealed (the last frame once at
half level, then silence). When nothing is buffered (an *underrun*) the playout point waits. The depth (blocks
between the newest packet and the playout point) starts at ``min_depth`` and adapts within
``[min_depth, max_depth]``: each late packet deepens it by a frame; a buffer kept deeper than needed for
:data:`SHRINK_AFTER_FRAMES` frames, or more than ``max_depth + 1`` frames deep, gives a frame back — one quiet
enough that no key can be in it (every sample within :data:`QUIET_PEAK`; a key's frames are never skipped: a
backlog left by a stall of the engine or of the sender keeps its keys, and shrinks at the next quiet frames).
A new talkspurt after an underrun, or a jump beyond the ring, re-anchors the stream. Packets of other lengths
(30 ms, or misaligned) go through :meth:`JitterBank.put_samples`, one at a time. Timestamps are extended
(unwrapped) by the caller.
"""

from __future__ import annotations

import numpy as np

from engine.dtmf.thresholds import GATE_LEVEL_DBM0
from engine.format import SAMPLE_DTYPE, SAMPLES_PER_FRAME, dbm0_to_peak

RING_BLOCKS = 32  # 640 ms of audio per stream
DEFAULT_MIN_DEPTH = 2  # frames
DEFAULT_MAX_DEPTH = 10  # frames
SHRINK_AFTER_FRAMES = 250
#: The largest |sample| (int16 units) of a frame that may be skipped to shrink a buffer: a sine's peak at the DTMF
#: detector's gate (quieter frames hold no key).
QUIET_PEAK = int(dbm0_to_peak(GATE_LEVEL_DBM0))
COUNTERS = ("placed", "late", "duplicate", "concealed", "underruns", "resyncs", "grown", "shrunk", "skipped")
_F = SAMPLES_PER_FRAME


class JitterBank:
    """Jitter buffers of up to ``capacity`` streams (rows ``0..size-1``); depths in frames."""

    def __init__(self, capacity: int, min_depth: int = DEFAULT_MIN_DEPTH, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        if not 0 < min_depth <= max_depth < RING_BLOCKS // 2:
            raise ValueError(f"need 0 < min_depth <= max_depth < {RING_BLOCKS // 2}, got {min_depth}, {max_depth}")
        self.capacity = capacity
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.size = 0
        self.ring = np.zeros((capacity, RING_BLOCKS, _F), dtype=SAMPLE_DTYPE)
        self.filled = np.zeros((capacity, RING_BLOCKS), dtype=bool)
        self._blocks = self.ring.reshape(-1, _F)  # the same memory: block ``row * RING_BLOCKS + slot``
        self._filled = self.filled.reshape(-1)
        self._row_base = np.arange(capacity, dtype=np.int64) * RING_BLOCKS
        self.last = np.zeros((capacity, _F), dtype=SAMPLE_DTYPE)
        self.offset = np.zeros(capacity, dtype=np.int64)
        self.play = np.zeros(capacity, dtype=np.int64)  # block of the next frame (once started)
        self.started = np.zeros(capacity, dtype=bool)  # a packet was placed
        self.newest = np.zeros(capacity, dtype=np.int64)  # one past the newest block placed
        self.depth = np.full(capacity, min_depth, dtype=np.int64)
        self.deep = np.zeros(capacity, dtype=np.int64)
        self.concealing = np.zeros(capacity, dtype=np.int64)
        self.counters = {name: np.zeros(capacity, dtype=np.int64) for name in COUNTERS}

    # -- rows ---------------------------------------------------------------------------------------------

    def _arrays(self) -> list[np.ndarray]:
        return [self.ring, self.filled, self.last, self.offset, self.play, self.started, self.newest, self.depth,
                self.deep, self.concealing, *self.counters.values()]

    def add(self) -> int:
        """A new stream's row (reset)."""
        if self.size == self.capacity:
            raise OverflowError(f"the jitter bank holds {self.capacity} streams")
        row = self.size
        self.size += 1
        self.reset(row)
        return row

    def reset(self, row: int) -> None:
        """Forget everything of ``row`` (a new source)."""
        for array in self._arrays():
            array[row] = 0
        self.depth[row] = self.min_depth

    def remove(self, row: int) -> int:
        """Free ``row``: the last row moves into it; returns the index that moved (``row`` when it was last)."""
        last = self.size - 1
        if row != last:
            for array in self._arrays():
                array[row] = array[last]
        self.size -= 1
        return last

    def stats(self, row: int) -> dict[str, int]:
        """The counters of ``row`` and its current depth (frames)."""
        return {**{name: int(values[row]) for name, values in self.counters.items()}, "depth": int(self.depth[row])}

    # -- packets ------------------------------------------------------------------------------------------

    def _anchor(self, rows: np.ndarray, blocks: np.ndarray) -> None:
        self.filled[rows] = False
        self.play[rows] = blocks - self.depth[rows]
        self.newest[rows] = blocks
        self.started[rows] = True

    def put(self, rows: np.ndarray, timestamps: np.ndarray, payloads: np.ndarray, distinct: bool | None = None) -> None:
        """Place one 20 ms packet per entry: ``rows`` (int64), extended ``timestamps``, ``payloads`` (M, 160).

        ``distinct``: True when no row is in ``rows`` twice (None: found out here).
        """
        if not len(rows):
            return
        new = ~self.started[rows]
        if new.any():  # the first packet of a stream sets its frame grid
            first_rows, first = np.unique(rows[new], return_index=True)
            self.offset[first_rows] = timestamps[new][first] % _F
            self._anchor(first_rows, (timestamps[new][first] - self.offset[first_rows]) // _F)
        rel = timestamps - self.offset[rows]
        misaligned = rel % _F != 0
        if misaligned.any():
            for i in np.flatnonzero(misaligned):
                self.put_samples(int(rows[i]), int(timestamps[i]), payloads[i])
            keep = ~misaligned
            rows, rel, payloads = rows[keep], rel[keep], payloads[keep]
        blocks = rel // _F
        play, newest = self.play[rows], self.newest[rows]
        jump = ((newest <= play) & (blocks > play + self.depth[rows])) | (blocks - play >= RING_BLOCKS)
        if jump.any():
            jump_rows, first = np.unique(rows[jump], return_index=True)
            self.counters["resyncs"][jump_rows] += 1
            self._anchor(jump_rows, blocks[jump][first])
            play = self.play[rows]
        late = (blocks < play) | (blocks - play >= RING_BLOCKS)
        if late.any():
            late_rows = rows[late]
            np.add.at(self.counters["late"], late_rows, 1)
            grow = np.unique(late_rows)
            grow = grow[self.depth[grow] < self.max_depth]
            self.depth[grow] += 1
            self.counters["grown"][grow] += 1
            keep = ~late
            rows, blocks, payloads = rows[keep], blocks[keep], payloads[keep]
        slots = blocks % RING_BLOCKS
        if distinct is None:
            distinct = len(rows) < 2 or int(np.bincount(rows).max()) == 1  # the usual: one packet per stream
        one_each = distinct
        flat = rows * RING_BLOCKS + slots
        fresh = ~self._filled[flat]
        if not one_each:  # a stream's packets in one batch: only the first of a (row, slot) pair counts
            first = np.unique(rows * RING_BLOCKS + slots, return_index=True)[1]
            once = np.zeros(len(rows), dtype=bool)
            once[first] = True
            fresh &= once
        if not fresh.all():
            np.add.at(self.counters["duplicate"], rows[~fresh], 1)
            rows, blocks, flat, payloads = rows[fresh], blocks[fresh], flat[fresh], payloads[fresh]
        self._blocks[flat] = payloads
        self._filled[flat] = True
        if one_each:  # no row twice: plain fancy indexing does what the .at forms do
            self.counters["placed"][rows] += 1
            self.newest[rows] = np.maximum(self.newest[rows], blocks + 1)
        else:
            np.add.at(self.counters["placed"], rows, 1)
            np.maximum.at(self.newest, rows, blocks + 1)

    def put_samples(self, row: int, timestamp: int, samples: np.ndarray) -> None:
        """Place a packet of any length (or off the frame grid) of stream ``row``, sample by sample."""
        if not self.started[row]:
            self.offset[row] = timestamp % _F
            self._anchor(np.array([row]), np.array([(timestamp - self.offset[row]) // _F]))
        rel = timestamp - int(self.offset[row])
        first, end = rel // _F, -(-(rel + len(samples)) // _F)
        play = int(self.play[row])
        if (self.newest[row] <= play and first > play + self.depth[row]) or end - play > RING_BLOCKS:
            self.counters["resyncs"][row] += 1
            self._anchor(np.array([row]), np.array([first]))
            play = int(self.play[row])
        if first < play:
            self.counters["late"][row] += 1
            return
        flat = self.ring[row].reshape(-1)
        for block in range(first, end):
            slot = block % RING_BLOCKS
            if not self.filled[row, slot]:
                self.ring[row, slot] = 0
                self.filled[row, slot] = True
        positions = (np.arange(rel, rel + len(samples)) % (RING_BLOCKS * _F))
        flat[positions] = samples
        self.counters["placed"][row] += 1
        self.newest[row] = max(int(self.newest[row]), end)

    # -- playout ------------------------------------------------------------------------------------------

    def _quiet(self, rows: np.ndarray, play: np.ndarray) -> np.ndarray:
        """Those of ``rows`` whose frame at the playout point may be skipped: missing, or within :data:`QUIET_PEAK`."""
        at = self._row_base[rows] + play[rows] % RING_BLOCKS
        frames = self._blocks[at]
        loud = self._filled[at] & ((frames.max(axis=1) > QUIET_PEAK) | (frames.min(axis=1) < -QUIET_PEAK))
        return rows[~loud]

    def read(self, out: np.ndarray) -> np.ndarray:
        """Play one frame of every stream into ``out[:size]``; returns each frame's extended timestamp (-1: none)."""
        n = self.size
        play, newest = self.play[:n], self.newest[:n]
        started = self.started[:n]
        underrun = started & (newest <= play)
        self.counters["underruns"][:n] += underrun
        buffered = newest - play
        deep = started & ~underrun & (buffered > self.depth[:n] + 2)
        self.deep[:n] = np.where(deep, self.deep[:n] + 1, 0)
        drop = started & ((self.deep[:n] >= SHRINK_AFTER_FRAMES) | (buffered > self.max_depth + 1))
        if drop.any():
            drop_rows = self._quiet(np.flatnonzero(drop), play)
            self.counters["skipped"][drop_rows] += 1
            self.filled[drop_rows, play[drop_rows] % RING_BLOCKS] = False
            play[drop_rows] += 1
            self.deep[drop_rows] = 0
            shrink = drop_rows[self.depth[drop_rows] > self.min_depth]
            self.depth[shrink] -= 1
            self.counters["shrunk"][shrink] += 1
        flat = self._row_base[:n] + np.where(started, play, 0) % RING_BLOCKS
        have = started & ~underrun & self._filled[flat]
        np.take(self._blocks, flat, axis=0, out=out[:n])
        if have.all():  # the usual: every stream has its frame
            self.concealing[:n] = 0
            self.last[:n] = out[:n]
        else:
            miss = np.flatnonzero(~have)
            first_miss = miss[(self.concealing[miss] == 0) & started[miss]]
            out[miss] = 0
            out[first_miss] = self.last[first_miss] >> 1
            self.concealing[miss] += 1
            self.counters["concealed"][miss[started[miss]]] += 1
            kept = np.flatnonzero(have)
            self.concealing[kept] = 0
            self.last[kept] = out[kept]
        advance = started & ~underrun
        self._filled[flat[advance]] = False
        stamps = np.where(advance, play * _F + self.offset[:n], -1)
        play[advance] += 1
        return stamps

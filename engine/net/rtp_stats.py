"""Receive statistics of every RTP stream of a hub, as rows of numpy arrays (RFC 3550 appendix A.1, A.3, A.8).

Per stream: timestamps unwrapped to extended ones, the extended highest sequence number, packets expected,
received and lost, interarrival jitter (timestamp units), and the tick of the last packet (for the RTP
inactivity timeout). A batch of packets is taken at once; several packets of one stream in a batch are
counted in arrival order for the base, and arrive "together" for the jitter (arrival times are the tick's:
the jitter is at the resolution of a tick).
"""

from __future__ import annotations

import numpy as np

from engine.format import SAMPLES_PER_FRAME
from engine.net.rtcp import ReportBlock


def _wrap32(delta: np.ndarray) -> np.ndarray:
    return ((delta + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


class StreamStats:
    """Statistics of up to ``capacity`` streams; rows follow the hub's slots."""

    def __init__(self, capacity: int) -> None:
        z = np.zeros
        self.last_ts, self.last_ext = z(capacity, np.int64), z(capacity, np.int64)
        self.max_seq, self.max_ext, self.base_ext = z(capacity, np.int64), z(capacity, np.int64), z(capacity, np.int64)
        self.received, self.transit, self.jitter = z(capacity, np.int64), z(capacity, np.int64), z(capacity)
        self.last_rx_tick = z(capacity, np.int64)

    @property
    def columns(self) -> list[np.ndarray]:
        """Every per-stream array (the hub moves rows with them)."""
        return [self.last_ts, self.last_ext, self.max_seq, self.max_ext, self.base_ext, self.received, self.transit,
                self.jitter, self.last_rx_tick]

    def update(self, slots: np.ndarray, seq: np.ndarray, raw_ts: np.ndarray, tick: int,
               distinct: bool = False) -> np.ndarray:
        """Take a batch (``slots``, sequence numbers, RTP timestamps) received at ``tick``; the extended timestamps.

        ``distinct``: no slot is in the batch twice (the usual: one packet per stream per tick), so plain fancy
        indexing does what the ``ufunc.at`` forms and the arrival ordering do.
        """
        fresh = self.received[slots] == 0
        ext = self._unwrap(slots, raw_ts, fresh, distinct)
        if fresh.any():  # a stream's first packet (the earliest of its batch) sets its base
            fresh_slots, fresh_seq = slots[fresh], seq[fresh]
            order = np.argsort(fresh_slots, kind="stable")
            firsts, index = np.unique(fresh_slots[order], return_index=True)
            first_seq = fresh_seq[order][index]
            self.max_seq[firsts] = self.max_ext[firsts] = self.base_ext[firsts] = first_seq
        delta = ((seq - self.max_seq[slots] + 32768) & 0xFFFF) - 32768
        ahead = delta > 0
        if distinct:
            self.max_ext[slots] += np.where(ahead, delta, 0)
            self.received[slots] += 1
        else:
            np.maximum.at(self.max_ext, slots[ahead], (self.max_ext[slots] + delta)[ahead])
            np.add.at(self.received, slots, 1)
        self.max_seq[slots[ahead]] = seq[ahead]
        transit = tick * SAMPLES_PER_FRAME - raw_ts
        d = np.abs(_wrap32(transit - self.transit[slots]))
        jitter = self.jitter[slots]
        self.jitter[slots] = np.where(fresh, jitter, jitter + (d - jitter) / 16)
        self.transit[slots] = transit
        self.last_rx_tick[slots] = tick
        return ext

    def _unwrap(self, slots: np.ndarray, raw_ts: np.ndarray, fresh: np.ndarray, distinct: bool) -> np.ndarray:
        base = np.where(fresh, raw_ts, self.last_ts[slots])
        base_ext = np.where(fresh, raw_ts, self.last_ext[slots])
        ext = base_ext + _wrap32(raw_ts - base)
        if distinct:
            self.last_ts[slots] = raw_ts
            self.last_ext[slots] = ext
            return ext
        order = np.argsort(ext, kind="stable")  # a stream's packets: the latest timestamp is the last
        self.last_ts[slots[order]] = raw_ts[order]
        self.last_ext[slots[order]] = ext[order]
        return ext

    def report_block(self, slot: int, remote_ssrc: int) -> ReportBlock | None:
        """What was received of stream ``slot`` (from ``remote_ssrc``): loss and jitter (None: nothing yet)."""
        if self.received[slot] == 0:
            return None
        expected = int(self.max_ext[slot] - self.base_ext[slot] + 1)
        lost = expected - int(self.received[slot])
        return ReportBlock(remote_ssrc & 0xFFFFFFFF, max(lost, 0) / max(expected, 1), lost, int(self.max_ext[slot]),
                           int(self.jitter[slot]))

    def lost(self, count: int) -> int:
        """Packets lost (never negative per stream) over the first ``count`` streams."""
        expected = self.max_ext[:count] - self.base_ext[:count] + 1
        return int((expected - self.received[:count]).clip(min=0).sum())

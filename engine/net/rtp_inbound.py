"""The RTP hub's incoming side: a drained batch of datagrams placed with numpy, each packet to its call.

:class:`Inbound` owns the index of the calls by the remote's address (sorted keys ``ip << 16 | port``, one
vectorised look-up per batch). :meth:`Inbound.place` checks every header at once and decodes the usual
packets (version 2, no CSRC or extension, one 20 ms G.711 frame of the call's payload type) in one table
look-up into the hub's :class:`~engine.net.jitter.JitterBank`; Python runs per packet only for the unusual
ones (an unknown source, RFC 4733 events, other lengths). Latching (symmetric RTP): a packet from an unknown
address goes to the one call that expects that IP and has heard nothing yet, unless its port is 0 (some
tools send so: attributable, never a place to send to); otherwise it is dropped and counted. Dropped and
counted too: malformed packets, a payload type the call did not negotiate, an SSRC other than the one the
call latched. RTCP from the remote updates the call's ``remote_report``.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import numpy as np

from engine.net import g711
from engine.net.mmsg import address_key, key_of
from engine.net.rtcp import parse_reports
from engine.net.rtp import HEADER_BYTES, RtpError, parse_rtp
from engine.net.rtp_outbound import PACKET_BYTES
from engine.net.telephone_event import parse_event

if TYPE_CHECKING:
    from engine.net.rtp_hub import RtpHub

RTCP_PER_TICK = 64  # RTCP datagrams read per tick at most
MAX_PAYLOAD_FRAMES = 8  # the longest audio payload accepted, in 20 ms frames


class Inbound:
    """Places what ``hub``'s sockets received; counts what it drops in ``hub.counters``."""

    def __init__(self, hub: RtpHub) -> None:
        self.hub = hub
        self._keys = np.zeros(0, dtype=np.int64)
        self._key_slots = np.zeros(0, dtype=np.int64)

    def reindex(self) -> None:
        """The calls or their remote addresses changed: rebuild the address index."""
        n = len(self.hub.sessions)
        keys = self.hub.remote_key[:n]
        order = np.argsort(keys, kind="stable")
        self._keys, self._key_slots = keys[order], order

    def slots_of(self, keys: np.ndarray) -> np.ndarray:
        """The slot of each address key (-1: no call there)."""
        if not len(self._keys):
            return np.full(len(keys), -1, dtype=np.int64)
        index = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return np.where(self._keys[index] == keys, self._key_slots[index], -1)

    def drain_shared(self, budget: int) -> None:
        """Drain the shared socket (at most ``budget`` datagrams) and place every packet."""
        io = self.hub.io
        while budget > 0:
            count, lengths = io.receive(budget)
            if not count:
                return
            self.hub.counters["received"] += count
            self.place(count, lengths)
            budget -= count
            if count < len(io.recv_data):
                return

    def drain_per_call(self, budget: int) -> None:
        """Drain the ready per-call sockets (at most ``budget`` datagrams in all) and place every packet."""
        hub = self.hub
        assert hub.pool is not None
        io = hub.io
        for _ in range(max(1, budget // len(io.recv_data))):
            count, lengths, sessions, rtcp = hub.pool.drain(io.recv_data, io.recv_names)
            for packet, session in rtcp:
                self.report_from(packet, session.slot)
            if not count:
                return
            hub.counters["received"] += count
            slots = np.array([session.slot for session in sessions], dtype=np.int64)
            keys = address_key(io.recv_names[:count])
            for i in np.flatnonzero((slots >= 0) & (keys != hub.remote_key[np.maximum(slots, 0)])):
                port = int(keys[i] & 0xFFFF)
                if port and hub.received[slots[i]] == 0 or port and hub.remote_key[slots[i]] < 0:
                    session = hub.sessions[int(slots[i])]  # symmetric RTP: send where it sends from
                    session.latch((socket.inet_ntoa(int(keys[i] >> 16).to_bytes(4, "big")), port))
                    hub.configure(int(slots[i]), session)
            self.place(count, lengths, slots)
            if count < len(io.recv_data):
                return

    def place(self, count: int, lengths: np.ndarray, given: np.ndarray | None = None) -> None:
        """Place the ``count`` datagrams in the receive buffer (``given``: their slots, else by address)."""
        hub, counters = self.hub, self.hub.counters
        data = hub.io.recv_data[:count]
        names = hub.io.recv_names[:count]
        slots = self.slots_of(address_key(names)) if given is None else given
        unknown = slots < 0
        if unknown.any() and given is None:
            for i in np.flatnonzero(unknown):
                slots[i] = self._latch(names[i], data[i, 0], int(lengths[i]))
        broken = (slots >= 0) & (((data[:, 0] >> 6) != 2) | (lengths < HEADER_BYTES))
        if broken.any():
            counters["malformed"] += int(broken.sum())
            slots[broken] = -1
        pt = data[:, 1].astype(np.int64) & 0x7F
        ssrc = data[:, 8:12].copy().view(">u4")[:, 0].astype(np.int64)
        wrong_ssrc = self._check_ssrc(slots, ssrc)
        safe = np.maximum(slots, 0)
        audio = (slots >= 0) & ~wrong_ssrc & (pt == hub.pt_in[safe])
        events = (slots >= 0) & ~wrong_ssrc & (pt == hub.event_pt[safe])
        counters["wrong_payload_type"] += int(((slots >= 0) & ~wrong_ssrc & ~audio & ~events).sum())
        good = audio | events
        if not good.any():
            return
        good_rows = np.flatnonzero(good)
        pick = slice(None) if len(good_rows) == count else good  # the usual: every packet (views, no copies)
        seq = data[pick, 2].astype(np.int64) << 8 | data[pick, 3]
        raw_ts = data[pick, 4:8].copy().view(">u4")[:, 0].astype(np.int64)
        good_slots = slots[pick]
        distinct = len(good_slots) < 2 or int(np.bincount(good_slots).max()) == 1  # the usual: a packet per call
        ext = hub.stats.update(good_slots, seq, raw_ts, hub.ticks, distinct)
        quick = (audio & (data[:, 0] == 0x80) & (lengths == PACKET_BYTES))[pick]
        if quick.any():
            rows = good_rows[quick]
            for law in (g711.PCMU, g711.PCMA):
                of_law = pt[rows] == law
                if of_law.any():
                    chosen = rows[of_law]
                    every = len(chosen) == count  # the usual: the whole batch (no copy of its rows first)
                    samples = g711.decode_pairs(data[:, HEADER_BYTES:PACKET_BYTES] if every else
                                                data[chosen, HEADER_BYTES:PACKET_BYTES], law)
                    hub.bank.put(slots[chosen], ext[quick][of_law], samples, distinct)
        for j in np.flatnonzero(~quick):
            i = int(good_rows[j])
            self._place_one(int(slots[i]), bytes(data[i, : lengths[i]]), int(ext[j]), int(raw_ts[j]))

    def _check_ssrc(self, slots: np.ndarray, ssrc: np.ndarray) -> np.ndarray:
        """Latch each call's first SSRC; the packets with another one (counted)."""
        hub = self.hub
        safe = np.maximum(slots, 0)
        expected = hub.remote_ssrc[safe]
        new = (slots >= 0) & (expected < 0)
        if new.any():
            latch_slots, first = np.unique(slots[new], return_index=True)
            hub.remote_ssrc[latch_slots] = ssrc[new][first]
            expected = hub.remote_ssrc[safe]
        wrong = (slots >= 0) & (ssrc != expected)
        hub.counters["wrong_ssrc"] += int(wrong.sum())
        return wrong

    def _place_one(self, slot: int, packet: bytes, ext: int, raw_ts: int) -> None:
        hub = self.hub
        try:
            rtp = parse_rtp(packet)
        except RtpError:
            hub.counters["malformed"] += 1
            return
        session = hub.sessions[slot]
        if rtp.payload_type == hub.event_pt[slot]:
            try:
                session.events.add(raw_ts, parse_event(rtp.payload))
            except ValueError:
                hub.counters["malformed"] += 1
                return
            session.quiet_ticks = 0
            hub.hear_events(session)
        elif 0 < len(rtp.payload) <= MAX_PAYLOAD_FRAMES * (PACKET_BYTES - HEADER_BYTES):
            hub.bank.put_samples(slot, ext, g711.decode(bytes(rtp.payload), rtp.payload_type))
        else:
            hub.counters["malformed"] += 1

    def _latch(self, name: np.ndarray, first_byte: int, length: int) -> int:
        hub = self.hub
        port = int(name[2]) << 8 | int(name[3])
        host = socket.inet_ntoa(bytes(name[4:8]))
        if first_byte >> 6 != 2 or length < HEADER_BYTES:
            hub.counters["malformed"] += 1
            return -1
        candidates = [s for s in hub.sessions if s.remote is not None and s.remote[0] == host
                      and hub.received[s.slot] == 0]
        if len(candidates) == 1:
            session = candidates[0]
            if port == 0:  # attributable, but never a place to send to
                return session.slot
            session.latch((host, port))
            hub.configure(session.slot, session)
            self.reindex()
            return session.slot
        hub.counters["unknown_source"] += 1
        return -1

    def receive_rtcp(self, sock: socket.socket) -> None:
        """Read what waits on the shared RTCP socket (at most :data:`RTCP_PER_TICK` datagrams)."""
        for _ in range(RTCP_PER_TICK):
            try:
                data, (host, port) = sock.recvfrom(2048)[:2]
            except OSError:  # nothing waiting (BlockingIOError), or the socket is gone
                return
            slots = self.slots_of(np.array([key_of(host, port - 1)], dtype=np.int64))
            self.report_from(data, int(slots[0]))

    def report_from(self, data: bytes, slot: int) -> None:
        """An RTCP datagram for the call in ``slot`` (-1: none): its report block about us, kept."""
        hub = self.hub
        hub.counters["rtcp_received"] += 1
        if slot < 0:
            return
        try:
            _sender, blocks = parse_reports(data)
        except ValueError:
            hub.counters["malformed"] += 1
            return
        mine = [b for b in blocks if b.ssrc == hub.ssrc[slot]]
        if mine:
            hub.sessions[slot].remote_report = mine[0]

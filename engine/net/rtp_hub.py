"""The RTP hub: one shared UDP socket (and its RTCP socket) for every call, worked once per media tick.

Per tick: :meth:`RtpHub.receive` drains the socket with ``recvmmsg`` (at most ``drain_budget`` datagrams),
parses every header at once with numpy, hands each packet to its call by the sender's address (vectorised
look-up), places the audio in the :class:`~engine.net.jitter.JitterBank` and plays one frame of every call
into :attr:`RtpHub.heard` (RFC 4733 events rendered over it); then the media loop ticks (each
:class:`~engine.net.rtp_session.RtpSession` reads its caller frame from ``heard`` and writes the frame played to
``played``); then :meth:`RtpHub.send` encodes every frame to G.711 in one table look-up, writes every header in
one pass and sends the lot with ``sendmmsg``. Work per tick, not per packet: Python runs per packet only for
the unusual ones (unknown source, RFC 4733 events, other lengths, RTCP).

Calls are told apart by the remote's address (symmetric RTP: we send to where the remote sends from, first
its SDP address). A packet from an unknown address is latched to the one call that expects that IP and has
heard nothing yet, unless its port is 0 (some tools send so); otherwise dropped and counted. Dropped and
counted too: malformed packets, a payload type the call did not negotiate, an SSRC other than the one the
call latched. Sessions are attached and detached from any thread (posted; applied at the next receive).
"""

from __future__ import annotations

import logging
import random
import socket
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from engine.format import SAMPLE_DTYPE, SAMPLES_PER_FRAME
from engine.net import g711
from engine.net.jitter import JitterBank
from engine.net.mmsg import BatchSocket, address_key, key_of, sockaddr
from engine.net.rtcp import ReportBlock, build_report, parse_reports
from engine.net.rtp import HEADER_BYTES, RtpError, parse_rtp, write_headers
from engine.net.rtp_ports import PortPool
from engine.net.rtp_stats import StreamStats
from engine.net.telephone_event import parse_event

if TYPE_CHECKING:
    from engine.net.rtp_session import RtpSession

log = logging.getLogger(__name__)
_F = SAMPLES_PER_FRAME
PACKET_BYTES = HEADER_BYTES + _F
RTCP_INTERVAL_TICKS = 250  # 5 s
INFO_GAP_SAMPLES = 480  # silence between keys signalled in a row by SIP INFO (60 ms)
HUB_COUNTERS = ("received", "sent", "unknown_source", "malformed", "wrong_payload_type", "wrong_ssrc",
                "send_errors", "rtcp_received")


def _bind_pair(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """RTP on an even ``port`` (0: any) and RTCP on the next one."""
    for _ in range(64):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtp.bind((host, port or random.randrange(20000, 60000, 2)))
            rtcp.bind((host, rtp.getsockname()[1] + 1))
            return rtp, rtcp
        except OSError:
            rtp.close()
            rtcp.close()
            if port:
                raise
    raise OSError("no free RTP/RTCP port pair")


class RtpHub:
    """Every call's RTP on one socket pair at ``host:port`` (``port`` 0: a free even port); ``capacity`` calls."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, capacity: int = 4096,
                 drain_budget: int = 0, per_call_ports: tuple[int, int] | None = None) -> None:
        rtp, self.rtcp_sock = _bind_pair(host, port)
        for sock in (rtp, self.rtcp_sock):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        self.rtcp_sock.setblocking(False)
        self.host = host
        self.port = rtp.getsockname()[1]
        self.capacity = capacity
        self.drain_budget = drain_budget or 4 * capacity + 1024
        self.io = BatchSocket(rtp, capacity, PACKET_BYTES)
        for row in range(capacity):
            self.io.set_send_length(row, PACKET_BYTES)
        self.bank = JitterBank(capacity)
        self.sessions: list[RtpSession] = []
        self.heard = np.zeros((capacity, _F), dtype=SAMPLE_DTYPE)
        self.played = np.zeros((capacity, _F), dtype=SAMPLE_DTYPE)
        self.ticks = 0
        self._prepared = 0  # rows built by prepare() and not yet flushed
        self.counters = dict.fromkeys(HUB_COUNTERS, 0)
        z = np.zeros
        self.seq, self.ts, self.ssrc = z(capacity, np.int64), z(capacity, np.int64), z(capacity, np.int64)
        self.pt_out, self.marker = z(capacity, np.int64), z(capacity, bool)
        self.sending = z(capacity, bool)
        self.pt_in, self.event_pt = z(capacity, np.int64), np.full(capacity, -1, np.int64)
        self.remote_key, self.remote_ssrc = np.full(capacity, -1, np.int64), np.full(capacity, -1, np.int64)
        self.stats = StreamStats(capacity)
        self.received, self.last_rx_tick = self.stats.received, self.stats.last_rx_tick
        self.octets, self.packets_sent = z(capacity, np.int64), z(capacity, np.int64)
        self._columns = [self.seq, self.ts, self.ssrc, self.pt_out, self.marker, self.sending, self.pt_in,
                         self.event_pt, self.remote_key, self.remote_ssrc, *self.stats.columns, self.octets,
                         self.packets_sent, self.played, self.heard, self.io.send_names]
        self._posted: deque[tuple[str, RtpSession]] = deque()
        self._keys_posted: deque[tuple[RtpSession, str, int]] = deque()
        self._keys = np.zeros(0, dtype=np.int64)
        self._key_slots = np.zeros(0, dtype=np.int64)
        self._with_events: set[RtpSession] = set()
        #: Per-call ports (a socket pair per call from this range; (0, 0): any) instead of the shared socket.
        self.pool = PortPool(host, *per_call_ports) if per_call_ports is not None else None

    def open_ports(self) -> tuple[socket.socket, socket.socket] | None:
        """A session's own (RTP, RTCP) sockets in per-call mode; None when calls share the hub's socket."""
        return self.pool.open() if self.pool is not None else None

    # -- sessions (posted from any thread) -----------------------------------------------------------------

    def attach(self, session: RtpSession) -> None:
        """Start carrying ``session`` from the next tick."""
        self._posted.append(("attach", session))

    def detach(self, session: RtpSession) -> None:
        """Stop carrying ``session`` at the next tick."""
        self._posted.append(("detach", session))

    def retarget(self, session: RtpSession) -> None:
        """``session``'s remote address or payload types changed (re-INVITE): applied at the next tick."""
        self._posted.append(("retarget", session))

    def post_key(self, session: RtpSession, key: str, duration_samples: int) -> None:
        """A key signalled out of band (SIP INFO): rendered as its tone from the next frame played."""
        self._keys_posted.append((session, key, duration_samples))

    def _apply_keys(self) -> None:
        while self._keys_posted:
            session, key, duration = self._keys_posted.popleft()
            slot = session.slot
            if slot < 0:
                continue
            play = int(self.bank.play[slot]) * _F + int(self.bank.offset[slot])
            start = max(play, session.info_free_ts)  # keys in a row never overlap: each its own tone
            session.info_free_ts = start + duration + INFO_GAP_SAMPLES
            session.events.add_key(key, start & 0xFFFFFFFF, duration)
            session.quiet_ticks = 0
            self._with_events.add(session)

    def _apply_posted(self) -> None:
        changed = False
        while self._posted:
            kind, session = self._posted.popleft()
            try:
                if kind == "attach" and session.slot < 0:
                    self._add(session)
                elif kind == "detach" and session.slot >= 0:
                    self._remove(session)
                elif kind == "retarget" and session.slot >= 0:
                    self._configure(session.slot, session)
                changed = True
            except Exception:
                log.exception("RTP hub: %s failed", kind)
        if changed:
            self._index()

    def _add(self, session: RtpSession) -> None:
        slot = self.bank.add()
        for column in self._columns:
            column[slot] = 0
        self.remote_ssrc[slot] = self.remote_key[slot] = self.event_pt[slot] = -1
        self.seq[slot] = random.getrandbits(16)
        self.ts[slot] = random.getrandbits(32)
        self.ssrc[slot] = session.ssrc
        self.marker[slot] = True
        self.last_rx_tick[slot] = self.ticks
        session.slot = slot
        self.sessions.append(session)
        self._configure(slot, session)
        if self.pool is not None and session.sockets is not None:
            self.pool.register(session)

    def _configure(self, slot: int, session: RtpSession) -> None:
        remote = session.remote
        self.pt_out[slot] = self.pt_in[slot] = session.payload_type
        self.event_pt[slot] = -1 if session.event_payload_type is None else session.event_payload_type
        if remote is None:
            self.sending[slot] = False
            self.remote_key[slot] = -1
            return
        self.io.send_names[slot] = np.frombuffer(sockaddr(*remote), dtype=np.uint8)
        self.remote_key[slot] = key_of(*remote)
        self.sending[slot] = session.sends

    def _remove(self, session: RtpSession) -> None:
        if self.pool is not None and session.sockets is not None:
            self.pool.unregister(session)
        slot = session.slot
        last = self.bank.remove(slot)
        if slot != last:
            for column in self._columns:
                column[slot] = column[last]
            moved = self.sessions[last]
            moved.slot = slot
            self.sessions[slot] = moved
        self.sessions.pop()
        session.slot = -1
        self._with_events.discard(session)

    def _index(self) -> None:
        n = len(self.sessions)
        keys = self.remote_key[:n]
        order = np.argsort(keys, kind="stable")
        self._keys, self._key_slots = keys[order], order

    # -- receive ----------------------------------------------------------------------------------------------

    def receive(self) -> None:
        """Drain the sockets, place every packet, and play one frame of every call into :attr:`heard`."""
        if self._posted:
            self._apply_posted()
        if self._keys_posted:
            self._apply_keys()
        self.ticks += 1
        if self.pool is not None:
            self._receive_per_call()
        budget = self.drain_budget if self.pool is None else 0
        while budget > 0:
            count, lengths = self.io.receive()
            if not count:
                break
            self.counters["received"] += count
            self._place(count, lengths)
            budget -= count
            if count < len(self.io.recv_data):
                break
        self._receive_rtcp()
        n = len(self.sessions)
        if n:
            stamps = self.bank.read(self.heard)
            for session in list(self._with_events):
                slot = session.slot
                if stamps[slot] >= 0 and not session.events.render(self.heard[slot], int(stamps[slot])):
                    session.quiet_ticks += 1
                    if session.quiet_ticks > 500:
                        self._with_events.discard(session)

    def _receive_per_call(self) -> None:
        assert self.pool is not None
        for _ in range(max(1, self.drain_budget // len(self.io.recv_data))):
            count, lengths, sessions, rtcp = self.pool.drain(self.io.recv_data, self.io.recv_names)
            for packet, session in rtcp:
                self._report_from(packet, session.slot)
            if not count:
                return
            self.counters["received"] += count
            slots = np.array([session.slot for session in sessions], dtype=np.int64)
            keys = address_key(self.io.recv_names[:count])
            for i in np.flatnonzero((slots >= 0) & (keys != self.remote_key[np.maximum(slots, 0)])):
                port = int(keys[i] & 0xFFFF)
                if port and self.received[slots[i]] == 0 or port and self.remote_key[slots[i]] < 0:
                    session = self.sessions[int(slots[i])]  # symmetric RTP: send where it sends from
                    session.latch((socket.inet_ntoa(int(keys[i] >> 16).to_bytes(4, "big")), port))
                    self._configure(int(slots[i]), session)
            self._place(count, lengths, slots)
            if count < len(self.io.recv_data):
                return

    def _slots_of(self, keys: np.ndarray) -> np.ndarray:
        if not len(self._keys):
            return np.full(len(keys), -1, dtype=np.int64)
        index = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return np.where(self._keys[index] == keys, self._key_slots[index], -1)

    def _place(self, count: int, lengths: np.ndarray, given: np.ndarray | None = None) -> None:
        data = self.io.recv_data[:count]
        names = self.io.recv_names[:count]
        slots = self._slots_of(address_key(names)) if given is None else given
        unknown = slots < 0
        if unknown.any() and given is None:
            for i in np.flatnonzero(unknown):
                slots[i] = self._latch(names[i], data[i, 0], int(lengths[i]))
        broken = (slots >= 0) & (((data[:, 0] >> 6) != 2) | (lengths < HEADER_BYTES))
        if broken.any():
            self.counters["malformed"] += int(broken.sum())
            slots[broken] = -1
        fast = (slots >= 0) & (data[:, 0] == 0x80) & (lengths == PACKET_BYTES)
        pt = data[:, 1].astype(np.int64) & 0x7F
        ssrc = data[:, 8:12].copy().view(">u4")[:, 0].astype(np.int64)
        safe = np.maximum(slots, 0)
        expected_ssrc = self.remote_ssrc[safe]
        new_ssrc = (slots >= 0) & (expected_ssrc < 0)
        if new_ssrc.any():
            latch_slots, first = np.unique(slots[new_ssrc], return_index=True)
            self.remote_ssrc[latch_slots] = ssrc[new_ssrc][first]
            expected_ssrc = self.remote_ssrc[safe]
        wrong_ssrc = (slots >= 0) & (ssrc != expected_ssrc)
        self.counters["wrong_ssrc"] += int(wrong_ssrc.sum())
        audio = (slots >= 0) & ~wrong_ssrc & (pt == self.pt_in[safe])
        events = (slots >= 0) & ~wrong_ssrc & (pt == self.event_pt[safe])
        self.counters["wrong_payload_type"] += int(((slots >= 0) & ~wrong_ssrc & ~audio & ~events).sum())
        good = audio | events
        if not good.any():
            return
        good_slots = slots[good]
        seq = data[good, 2].astype(np.int64) << 8 | data[good, 3]
        raw_ts = data[good, 4:8].copy().view(">u4")[:, 0].astype(np.int64)
        ext = self.stats.update(good_slots, seq, raw_ts, self.ticks)
        quick = (fast & audio)[good]
        if quick.any():
            rows = np.flatnonzero(good)[quick]
            for law in (g711.PCMU, g711.PCMA):
                of_law = pt[rows] == law
                if of_law.any():
                    chosen = rows[of_law]
                    samples = g711.DECODERS[law][data[chosen, HEADER_BYTES:PACKET_BYTES]]
                    self.bank.put(slots[chosen], ext[quick][of_law], samples)
        for j in np.flatnonzero(~quick):
            i = int(np.flatnonzero(good)[j])
            self._place_one(int(slots[i]), bytes(data[i, : lengths[i]]), int(ext[j]), int(raw_ts[j]))

    def _place_one(self, slot: int, packet: bytes, ext: int, raw_ts: int) -> None:
        try:
            rtp = parse_rtp(packet)
        except RtpError:
            self.counters["malformed"] += 1
            return
        session = self.sessions[slot]
        if rtp.payload_type == self.event_pt[slot]:
            try:
                session.events.add(raw_ts, parse_event(rtp.payload))
            except ValueError:
                self.counters["malformed"] += 1
                return
            session.quiet_ticks = 0
            self._with_events.add(session)
        elif 0 < len(rtp.payload) <= 8 * _F:
            self.bank.put_samples(slot, ext, g711.DECODERS[rtp.payload_type][np.frombuffer(rtp.payload, np.uint8)])
        else:
            self.counters["malformed"] += 1

    def _latch(self, name: np.ndarray, first_byte: int, length: int) -> int:
        port = int(name[2]) << 8 | int(name[3])
        host = socket.inet_ntoa(bytes(name[4:8]))
        if first_byte >> 6 != 2 or length < HEADER_BYTES:
            self.counters["malformed"] += 1
            return -1
        candidates = [s for s in self.sessions if s.remote is not None and s.remote[0] == host
                      and self.received[s.slot] == 0]
        if len(candidates) == 1:
            session = candidates[0]
            if port == 0:  # attributable, but never a place to send to
                return session.slot
            session.latch((host, port))
            self._configure(session.slot, session)
            self._index()
            return session.slot
        self.counters["unknown_source"] += 1
        return -1

    def _receive_rtcp(self) -> None:
        for _ in range(64):
            try:
                data, (host, port) = self.rtcp_sock.recvfrom(2048)[:2]
            except OSError:  # nothing waiting (BlockingIOError), or the socket is gone
                return
            slots = self._slots_of(np.array([key_of(host, port - 1)], dtype=np.int64))
            self._report_from(data, int(slots[0]))

    def _report_from(self, data: bytes, slot: int) -> None:
        self.counters["rtcp_received"] += 1
        if slot < 0:
            return
        try:
            _sender, blocks = parse_reports(data)
        except ValueError:
            self.counters["malformed"] += 1
            return
        mine = [b for b in blocks if b.ssrc == self.ssrc[slot]]
        if mine:
            self.sessions[slot].remote_report = mine[0]

    # -- send ---------------------------------------------------------------------------------------------------

    def send(self) -> None:
        """Encode every call's played frame and send one packet per sending call (:meth:`prepare`, :meth:`flush`)."""
        self.prepare()
        self.flush()

    def prepare(self) -> None:
        """Encode every call's played frame and write its header: the packets :meth:`flush` sends."""
        n = len(self.sessions)
        self._prepared = n
        if not n:
            return
        out = self.io.send_data
        played = self.played[:n]
        pt = self.pt_out[:n]
        ulaw = pt == g711.PCMU
        if ulaw.all():
            out[:n, HEADER_BYTES:] = g711.ULAW_ENCODE[played.view(np.uint16)]
        else:
            for law in (g711.PCMU, g711.PCMA):
                rows = np.flatnonzero(pt == law)
                out[rows, HEADER_BYTES:] = g711.ENCODERS[law][played[rows].view(np.uint16)]
        write_headers(out[:n], pt, self.marker[:n], self.seq[:n], self.ts[:n], self.ssrc[:n])

    def flush(self) -> None:
        """Send the packets :meth:`prepare` built (nothing when none were built since the last flush)."""
        n = self._prepared
        self._prepared = 0
        if not n:
            return
        sending = self.sending[:n]
        if self.pool is not None:
            sent = self._send_per_call(np.flatnonzero(sending))
        elif sending.all():
            sent = self.io.send_rows(0, n)
        else:
            sent = 0
            rows = np.flatnonzero(sending)
            if len(rows):
                breaks = np.flatnonzero(np.diff(rows) > 1)
                starts = np.concatenate([[rows[0]], rows[breaks + 1]])
                ends = np.concatenate([rows[breaks], [rows[-1]]]) + 1
                for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
                    sent += self.io.send_rows(start, end - start)
        self.seq[:n] += sending
        self.packets_sent[:n] += sending
        self.octets[:n] += sending * _F
        self.ts[:n] += _F
        self.marker[:n] &= ~sending
        self.counters["sent"] += sent
        self.counters["send_errors"] = self.io.send_errors
        self._send_rtcp(n)

    def _send_per_call(self, rows: np.ndarray) -> int:
        sent = 0
        data = self.io.send_data
        for slot in rows.tolist():
            session = self.sessions[slot]
            try:
                session.sockets[0].sendto(data[slot], session.remote)  # type: ignore[index]
                sent += 1
            except OSError:
                self.io.send_errors += 1
        return sent

    def _send_rtcp(self, n: int) -> None:
        """Each call's report every :data:`RTCP_INTERVAL_TICKS`, the calls spread over the ticks."""
        for slot in range(-self.ticks % RTCP_INTERVAL_TICKS, n, RTCP_INTERVAL_TICKS):
            session = self.sessions[slot]
            if session.remote is None:
                continue
            sent = (int(self.ts[slot]), int(self.packets_sent[slot]), int(self.octets[slot]))
            report = build_report(int(self.ssrc[slot]), session.cname, self.report_block(slot), sent)
            sock = session.sockets[1] if session.sockets is not None else self.rtcp_sock
            try:
                sock.sendto(report, (session.remote[0], session.remote[1] + 1))
            except OSError:
                self.counters["send_errors"] += 1

    def report_block(self, slot: int) -> ReportBlock | None:
        """What this end saw of the call in ``slot``: loss and jitter of what it received (None: nothing yet)."""
        return self.stats.report_block(slot, int(self.remote_ssrc[slot]))

    def close(self) -> None:
        """Close the sockets."""
        self.io.sock.close()
        self.rtcp_sock.close()
        if self.pool is not None:
            for session in self.sessions:
                self.pool.unregister(session)
            self.pool.close()

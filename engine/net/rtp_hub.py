"""The RTP hub: one shared UDP socket (and its RTCP socket) for every call, worked once per media tick.

Per tick: :meth:`RtpHub.receive` drains the socket with ``recvmmsg`` (at most ``drain_budget`` datagrams) and
places every packet (:mod:`engine.net.rtp_inbound`) in the :class:`~engine.net.jitter.JitterBank`, then plays
one frame of every call into :attr:`RtpHub.heard` (RFC 4733 events rendered over it); then the media loop
ticks (each :class:`~engine.net.rtp_session.RtpSession` reads its caller frame from ``heard`` and writes the
frame played to ``played``); then :meth:`RtpHub.prepare` encodes every frame and writes every header in one
pass (:mod:`engine.net.rtp_outbound`) and the packets go out with ``sendmmsg``: at once (:meth:`RtpHub.flush`,
:meth:`RtpHub.send`), or group by group at their deadlines from a sender thread
(:class:`~engine.net.rtp_sender.RtpSender`). Work per tick, not per packet.

Every call is a *slot*: one row of each per-call column (sequence, timestamp, SSRC, payload types, the
remote's address, statistics, the frames heard and played). Sessions are attached and detached from any
thread (posted; applied at the next receive); a call that leaves gives its slot to the last one (rows moved).
"""

from __future__ import annotations

import logging
import random
import socket
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from engine.format import SAMPLE_DTYPE, SAMPLES_PER_FRAME
from engine.net.jitter import JitterBank
from engine.net.mmsg import MAX_BATCH, BatchSocket, key_of, sockaddr
from engine.net.rtcp import ReportBlock, build_report
from engine.net.rtp_inbound import Inbound
from engine.net.rtp_outbound import PACKET_BYTES, Outbound, PacketFrame
from engine.net.rtp_ports import PortPool, bind_pair, set_buffers
from engine.net.rtp_rows import HubRows
from engine.net.rtp_stats import StreamStats

if TYPE_CHECKING:
    from engine.net.rtp_session import RtpSession

log = logging.getLogger(__name__)
_F = SAMPLES_PER_FRAME
RTCP_INTERVAL_TICKS = 250  # 5 s
INFO_GAP_SAMPLES = 480  # silence between keys signalled in a row by SIP INFO (60 ms)
QUIET_EVENT_TICKS = 500  # a call's RFC 4733 events are no longer rendered after this many ticks without one
RTP_BUFFER_BYTES = 16 << 20  # the shared sockets' receive and send buffers (bytes)
HUB_COUNTERS = ("received", "sent", "unknown_source", "malformed", "wrong_payload_type", "wrong_ssrc",
                "send_errors", "rtcp_received")


class RtpHub:
    """Every call's RTP on one socket pair at ``host:port`` (``port`` 0: a free even port); ``capacity`` calls.

    ``drain_budget``: datagrams read per tick at most (0: four per call and 1,024 more). ``per_call_ports``: a
    port range ``(first, last)`` (``(0, 0)``: any) giving each call its own socket pair instead of the shared
    one. ``send_groups``: the phases of the period the calls' packets are spread over (default 1: all at the
    tick's deadline); used by :class:`~engine.net.rtp_sender.RtpSender`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, capacity: int = 4096,
                 drain_budget: int = 0, per_call_ports: tuple[int, int] | None = None, send_groups: int = 1) -> None:
        rtp, self.rtcp_sock = bind_pair(host, port)
        for sock in (rtp, self.rtcp_sock):
            set_buffers(sock, RTP_BUFFER_BYTES)
        self.rtcp_sock.setblocking(False)
        self.host = host
        self.port = rtp.getsockname()[1]
        self.capacity = capacity
        self.drain_budget = drain_budget or 4 * capacity + 1024
        # receives (a packet per call and a batch more at once); the packets sent live in self.outbound's frames
        self.io = BatchSocket(rtp, 1, PACKET_BYTES, recv_rows=capacity + MAX_BATCH)
        self.bank = JitterBank(capacity)
        self.sessions: list[RtpSession] = []
        self.heard = np.zeros((capacity, _F), dtype=SAMPLE_DTYPE)
        #: Per slot, this tick: True when the jitter buffer gave no audio (it ran dry and its playout waits).
        self.waiting = np.zeros(0, dtype=bool)
        self.played = np.zeros((capacity, _F), dtype=SAMPLE_DTYPE)
        self.ticks = 0
        self.counters = dict.fromkeys(HUB_COUNTERS, 0)
        z = np.zeros
        self.seq, self.ts, self.ssrc = z(capacity, np.int64), z(capacity, np.int64), z(capacity, np.int64)
        self.pt_out, self.marker = z(capacity, np.int64), z(capacity, bool)
        self.sending, self.group = z(capacity, bool), z(capacity, np.int64)
        self.pt_in, self.event_pt = z(capacity, np.int64), np.full(capacity, -1, np.int64)
        self.remote_key, self.remote_ssrc = np.full(capacity, -1, np.int64), np.full(capacity, -1, np.int64)
        self.remote_name = z((capacity, 16), np.uint8)  # where each call's packets go (sockaddr_in)
        self.stats = StreamStats(capacity)
        self.received, self.last_rx_tick = self.stats.received, self.stats.last_rx_tick
        self.octets, self.packets_sent = z(capacity, np.int64), z(capacity, np.int64)
        #: The media loop's row port: the loop rows that hear and play each slot (engine.media.rows).
        self.rows = HubRows(self, capacity)
        self._columns = [*self.rows.columns, self.seq, self.ts, self.ssrc, self.pt_out, self.marker, self.sending,
                         self.group, self.pt_in, self.event_pt, self.remote_key, self.remote_ssrc, self.remote_name,
                         *self.stats.columns, self.octets, self.packets_sent, self.played, self.heard]
        self._posted: deque[tuple[str, RtpSession]] = deque()
        self._keys_posted: deque[tuple[RtpSession, str, int]] = deque()
        self._with_events: set[RtpSession] = set()
        #: Per-call ports (a socket pair per call from this range; (0, 0): any) instead of the shared socket.
        self.pool = PortPool(host, *per_call_ports) if per_call_ports is not None else None
        self.inbound = Inbound(self)
        self.outbound = Outbound(capacity, send_groups)
        self._prepared: PacketFrame | None = None  # built by prepare(), not yet flushed

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

    def hear_events(self, session: RtpSession) -> None:
        """Render ``session``'s RFC 4733 events over its caller's audio from now on (media thread)."""
        self._with_events.add(session)

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
                    self.configure(session.slot, session)
                changed = True
            except Exception:
                log.exception("RTP hub: %s failed", kind)
        if changed:
            self.inbound.reindex()

    def _add(self, session: RtpSession) -> None:
        slot = self.bank.add()
        for column in self._columns:
            column[slot] = 0
        self.remote_ssrc[slot] = self.remote_key[slot] = self.event_pt[slot] = -1
        self.seq[slot] = random.getrandbits(16)
        self.ts[slot] = random.getrandbits(32)
        self.ssrc[slot] = session.ssrc
        self.marker[slot] = True
        self.group[slot] = self.outbound.assign()
        self.last_rx_tick[slot] = self.ticks
        session.slot = slot
        self.sessions.append(session)
        self.rows.attached(slot, session)
        self.configure(slot, session)
        if self.pool is not None and session.sockets is not None:
            self.pool.register(session)

    def configure(self, slot: int, session: RtpSession) -> None:
        """Take ``session``'s remote address, payload types and direction into its slot's columns."""
        remote = session.remote
        self.outbound.reorder()
        self.pt_out[slot] = self.pt_in[slot] = session.payload_type
        self.event_pt[slot] = -1 if session.event_payload_type is None else session.event_payload_type
        if remote is None:
            self.sending[slot] = False
            self.remote_key[slot] = -1
            return
        self.remote_name[slot] = np.frombuffer(sockaddr(*remote), dtype=np.uint8)
        self.remote_key[slot] = key_of(*remote)
        self.sending[slot] = session.sends

    def _remove(self, session: RtpSession) -> None:
        if self.pool is not None and session.sockets is not None:
            self.pool.unregister(session)
        slot = session.slot
        self.rows.detached(slot)
        self.outbound.release(int(self.group[slot]))
        self.outbound.reorder()
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

    # -- per tick ---------------------------------------------------------------------------------------------

    def receive(self) -> None:
        """Drain the sockets, place every packet, and play one frame of every call into :attr:`heard`."""
        if self._posted:
            self._apply_posted()
        if self._keys_posted:
            self._apply_keys()
        self.ticks += 1
        if self.pool is not None:
            self.inbound.drain_per_call(self.drain_budget)
        else:
            self.inbound.drain_shared(self.drain_budget)
        self.inbound.receive_rtcp(self.rtcp_sock)
        if self.sessions:
            stamps = self.bank.read(self.heard)
            self.waiting = stamps < 0
            for session in list(self._with_events):
                slot = session.slot
                if stamps[slot] >= 0 and not session.events.render(self.heard[slot], int(stamps[slot])):
                    session.quiet_ticks += 1
                    if session.quiet_ticks > QUIET_EVENT_TICKS:
                        self._with_events.discard(session)

    def send(self) -> None:
        """Encode every call's played frame and send one packet per sending call now (:meth:`prepare` + flush)."""
        self.prepare()
        self.flush()

    def prepare(self) -> PacketFrame:
        """Build this tick's packets from :attr:`played` (and send the RTCP reports due); returns the frame."""
        if self._prepared is not None:  # built and never sent: dropped
            self._prepared.free.set()
        frame = self.outbound.build(self)
        self._prepared = frame
        self._send_rtcp(len(self.sessions))
        return frame

    def flush(self) -> None:
        """Send every group of the frame :meth:`prepare` built, now (nothing when none is waiting)."""
        frame, self._prepared = self._prepared, None
        if frame is not None:
            for g in range(self.outbound.groups):
                self.send_group(frame, g)
            frame.free.set()

    def take_prepared(self) -> PacketFrame | None:
        """The frame :meth:`prepare` built, for a sender to send (it is no longer flushed here)."""
        frame, self._prepared = self._prepared, None
        return frame

    def send_group(self, frame: PacketFrame, g: int) -> int:
        """Send group ``g`` of ``frame`` (any one thread); returns the packets the kernel took (failures counted)."""
        sent, failed = self.outbound.send_group(frame, g, self.io.fd)
        self.counters["sent"] += sent
        self.counters["send_errors"] += failed
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

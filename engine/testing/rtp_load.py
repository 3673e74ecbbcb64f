"""A cheap RTP load peer for benchmarks: N streams sent by one raw socket, every engine packet counted.

N calls need N source addresses (the engine tells calls apart by who sends), but N sockets would cost the
peer a system call per stream per tick. Instead (as root, loopback only) one raw socket (``IP_HDRINCL``)
sends every stream's packet of a tick with one ``sendmmsg``; stream ``i`` sends from its own loopback address
(:func:`stream_address`: ``127.1.x.y``, one port for all) and the engine sends it back there (symmetric RTP).
One UDP socket bound to that port on every address of the loopback device (``SO_BINDTODEVICE lo``: nothing
from elsewhere) receives every engine packet, and ``IP_PKTINFO`` tells it the address each was sent to: the
stream it belongs to. Every packet is counted (sequence gaps: lost; out of order; duplicates).

Why one receiving socket: on loopback the kernel delivers each packet inside the sender's system call, so
whatever the peer's receiving side costs per packet is charged to the engine's core. One socket queueing
each packet costs the engine a socket look-up and an enqueue (the peer frees the packet when it reads it);
the earlier tap (a raw socket cloning every UDP datagram, beside a never-read socket per stream dropping it)
cost a look-up, a clone, an enqueue and a drop.

The caller's audio is one μ-law frame sequence per stream: silence with an in-band key (100 ms of DTMF at
-8 dBm0) every ``press_every_s`` seconds, staggered by stream.
"""

from __future__ import annotations

import ctypes
import socket
import time

import numpy as np

from engine.dtmf.tones import place_tones
from engine.format import SAMPLES_PER_FRAME, seconds_to_samples
from engine.net import g711
from engine.net.mmsg import LIBC, MAX_BATCH, MSG_DONTWAIT, message_array, received_lengths, reset_control, sockaddr

SO_RCVBUFFORCE = 33  # Linux; not exported by the socket module
SO_BINDTODEVICE = 25
IP_PKTINFO = 8
IP_HEADER = 20
UDP_HEADER = 8
RTP_BYTES = 12 + SAMPLES_PER_FRAME
PACKET = IP_HEADER + UDP_HEADER + RTP_BYTES
MSG_TRUNC = 0x20  # recvmmsg: each message's length is the datagram's, however much of it fit
CONTROL_BYTES = 32  # CMSG_SPACE(sizeof(struct in_pktinfo))
_PKTINFO_ADDR = 24  # the destination address in that buffer: cmsghdr (16 bytes), ifindex, spec_dst, addr
FIRST_STREAM_IP = int.from_bytes(socket.inet_aton("127.1.0.1"), "big")
MAX_STREAMS = 65000


def stream_address(i: int, port: int) -> tuple[str, int]:
    """Where stream ``i`` of a peer on ``port`` sends from (and the engine sends to): ``127.1.x.y:port``."""
    if not 0 <= i < MAX_STREAMS:
        raise ValueError(f"stream index must be 0-{MAX_STREAMS - 1}, got {i}")
    return socket.inet_ntoa((FIRST_STREAM_IP + i).to_bytes(4, "big")), port


class RawLoadPeer:
    """``streams`` RTP streams from :func:`stream_address` ``(i, port)`` to ``targets[i]`` (engine addresses)."""

    def __init__(self, streams: int, port: int, targets: list[tuple[str, int]], press_every_s: float = 2.0):
        self.n = streams
        self.port = port
        self.send_sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.send_sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        self.send_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 << 20)
        self.recv_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.recv_sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, b"lo")  # the loopback device only
        self.recv_sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)  # root: past rmem_max
        self.recv_sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        self.recv_sock.bind(("0.0.0.0", port))  # every 127.x address of lo (SO_BINDTODEVICE above)
        self.recv_sock.setblocking(False)
        self.data = np.zeros((streams, PACKET), dtype=np.uint8)
        names = np.zeros((streams, 16), dtype=np.uint8)
        for i, (host, target_port) in enumerate(targets):
            names[i] = np.frombuffer(sockaddr(host, target_port), dtype=np.uint8)
        self.names = names
        self._send = message_array(streams, self.data, self.names)
        self.recv_data = np.zeros((MAX_BATCH, 64), dtype=np.uint8)  # headers are enough
        self.recv_names = np.zeros((MAX_BATCH, 16), dtype=np.uint8)
        self.recv_control = np.zeros((MAX_BATCH, CONTROL_BYTES), dtype=np.uint8)
        self._recv = message_array(MAX_BATCH, self.recv_data, self.recv_names, self.recv_control)
        self.target_ports = np.array([p for _, p in targets], dtype=np.int64)
        d = self.data
        d[:, 0], d[:, 8], d[:, 9] = 0x45, 64, 17
        d[:, 2:4] = np.array([PACKET >> 8, PACKET & 0xFF], np.uint8)
        d[:, 12:16] = (FIRST_STREAM_IP + np.arange(streams)).astype(">u4").view(np.uint8).reshape(-1, 4)
        d[:, 16:20] = np.array([socket.inet_aton(h) for h, _ in targets], dtype="S4").view(np.uint8).reshape(-1, 4)
        d[:, 20:22] = np.array([port >> 8, port & 0xFF], np.uint8)
        d[:, 22:24] = np.array([p for _, p in targets], dtype=">u2").view(np.uint8).reshape(-1, 2)
        d[:, 24:26] = np.array([0, UDP_HEADER + RTP_BYTES], np.uint8)
        d[:, 28] = 0x80
        d[:, 36:40] = (0x10000000 + np.arange(streams)).astype(">u4").view(np.uint8).reshape(-1, 4)
        self.seq = np.zeros(streams, dtype=np.int64)
        self.ts = np.arange(streams, dtype=np.int64) * 997
        period = seconds_to_samples(press_every_s)
        audio = place_tones(period, [("5", period // 2)], tone_ms=100, level_dbm0=-8)
        self.frames = g711.encode(audio, g711.PCMU).reshape(-1, SAMPLES_PER_FRAME)
        self.phase = np.arange(streams) * 7 % len(self.frames)
        self.sent = 0
        # per stream: packets received from the engine, the highest sequence seen, gaps
        self.received = np.zeros(streams, dtype=np.int64)
        self.first_seq = np.full(streams, -1, dtype=np.int64)
        self.last_seq = np.zeros(streams, dtype=np.int64)
        self.out_of_order = 0
        self.duplicates = 0

    def send_tick(self) -> None:
        """One packet per stream."""
        d = self.data
        d[:, 30:32] = (self.seq & 0xFFFF).astype(">u2").view(np.uint8).reshape(-1, 2)
        d[:, 32:36] = (self.ts & 0xFFFFFFFF).astype(">u4").view(np.uint8).reshape(-1, 4)
        d[:, 40:] = self.frames[self.phase]
        self.phase = (self.phase + 1) % len(self.frames)
        self.seq += 1
        self.ts += SAMPLES_PER_FRAME
        msgs = self._send[1]
        size = ctypes.sizeof(msgs) // self.n
        for start in range(0, self.n, MAX_BATCH):
            count = min(MAX_BATCH, self.n - start)
            done = LIBC.sendmmsg(self.send_sock.fileno(), ctypes.c_void_p(ctypes.addressof(msgs) + start * size),
                                  count, 0)
            self.sent += max(done, 0)

    def drain(self) -> int:
        """Count what the engine sent to the streams; returns datagrams read."""
        total = 0
        raw = self._recv[2]
        while True:
            reset_control(raw, CONTROL_BYTES)
            n = LIBC.recvmmsg(self.recv_sock.fileno(), self._recv[1], MAX_BATCH, MSG_DONTWAIT | MSG_TRUNC, None)
            if n <= 0:
                return total
            total += n
            d = self.recv_data[:n]
            to = self.recv_control[:n, _PKTINFO_ADDR : _PKTINFO_ADDR + 4].copy().view(">u4")[:, 0].astype(np.int64)
            dst = to - FIRST_STREAM_IP
            known = (dst >= 0) & (dst < self.n)
            src_port = self.recv_names[:n, 2].astype(np.int64) << 8 | self.recv_names[:n, 3]
            from_target = src_port == self.target_ports[np.where(known, dst, 0)]
            # RTP of payload type 0 (PCMU), marker or not, a whole packet, from the stream's engine address
            mine = known & from_target & (d[:, 0] == 0x80) & (d[:, 1] & 0x7F == 0) & (received_lengths(raw, n)
                                                                                   == RTP_BYTES)
            idx = dst[mine]
            seq = d[mine, 2].astype(np.int64) << 8 | d[mine, 3]
            self._count(idx, seq)

    def _count(self, idx: np.ndarray, seq: np.ndarray) -> None:
        """Count one batch; a stream may have several packets in it (kept in arrival order)."""
        order = np.argsort(idx, kind="stable")
        idx, seq = idx[order], seq[order]
        first = np.r_[True, idx[1:] != idx[:-1]] if len(idx) else np.zeros(0, bool)
        last = np.r_[idx[1:] != idx[:-1], True] if len(idx) else np.zeros(0, bool)
        prev = np.where(first, self.last_seq[idx], np.r_[0, seq[:-1]])
        fresh = first & (self.first_seq[idx] < 0)
        duplicate = (seq == prev) & ~fresh
        self.duplicates += int(duplicate.sum())
        self.out_of_order += int(((seq != (prev + 1) & 0xFFFF) & ~fresh & ~duplicate).sum())
        self.first_seq[idx[fresh]] = seq[fresh]
        self.last_seq[idx[last]] = seq[last]
        np.add.at(self.received, idx[~duplicate], 1)

    def close(self) -> None:
        """Close the sockets."""
        self.send_sock.close()
        self.recv_sock.close()

    def lost(self) -> int:
        """Packets the engine sent (by sequence number span) that never arrived."""
        started = self.first_seq >= 0
        span = ((self.last_seq - self.first_seq) & 0xFFFF) + 1
        return int((span[started] - self.received[started]).sum())


def run_peer(streams: int, port: int, targets: list[tuple[str, int]], seconds: float) -> dict[str, float]:
    """Send for ``seconds`` at 20 ms absolute deadlines, drain every tick; the counts."""
    peer = RawLoadPeer(streams, port, targets)
    start = time.monotonic()
    late = 0
    for k in range(int(seconds * 50)):
        delay = start + k * 0.02 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.02:
            late += 1
        peer.send_tick()
        peer.drain()
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        peer.drain()
        time.sleep(0.02)
    peer.close()
    return {"sent": peer.sent, "received": int(peer.received.sum()), "lost": peer.lost(),
            "out_of_order": peer.out_of_order, "duplicates": peer.duplicates, "peer_late_ticks": late,
            "silent_streams": int((peer.received == 0).sum())}

"""A cheap RTP load peer for benchmarks: N streams sent by one raw socket, every engine packet counted.

N calls need N source addresses (the engine tells calls apart by who sends), but N sockets would cost the
peer a system call per stream per tick. Instead (as root, loopback only) one raw socket (``IP_HDRINCL``)
sends every stream's packet of a tick with one ``sendmmsg``, each with its own UDP source port, and one raw
UDP socket receives a copy of every UDP datagram on the machine, kept when it comes from the engine's ports
to the peer's. The streams' ports are bound by sockets that are never read, with the smallest buffer: the
kernel drops the engine's packets there after the raw copy.

The caller's audio is one μ-law frame sequence per stream: silence with an in-band key (100 ms of DTMF at
-8 dBm0) every ``press_every_s`` seconds, staggered by stream.
"""

from __future__ import annotations

import ctypes
import resource
import socket
import time

import numpy as np

from engine.dtmf.tones import place_tones
from engine.format import SAMPLES_PER_FRAME, seconds_to_samples
from engine.net import g711
from engine.net.mmsg import LIBC, MAX_BATCH, MSG_DONTWAIT, message_array, sockaddr

SO_RCVBUFFORCE = 33  # Linux; not exported by the socket module
IP_HEADER = 20
UDP_HEADER = 8
RTP_BYTES = 12 + SAMPLES_PER_FRAME
PACKET = IP_HEADER + UDP_HEADER + RTP_BYTES


class RawLoadPeer:
    """``streams`` RTP streams from ``127.0.0.1:first_port + i`` to ``targets[i]`` (engine addresses)."""

    def __init__(self, streams: int, first_port: int, targets: list[tuple[str, int]], press_every_s: float = 2.0):
        self.n = streams
        self.first_port = first_port
        self.send_sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.send_sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        self.send_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 << 20)
        self.recv_sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
        self.recv_sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)  # root: past rmem_max
        self.recv_sock.setblocking(False)
        self._sinks = self._bind_sinks(streams, first_port)
        self.data = np.zeros((streams, PACKET), dtype=np.uint8)
        names = np.zeros((streams, 16), dtype=np.uint8)
        for i, (host, port) in enumerate(targets):
            names[i] = np.frombuffer(sockaddr(host, port), dtype=np.uint8)
        self.names = names
        self._send = message_array(streams, self.data, self.names)
        self.recv_data = np.zeros((MAX_BATCH, 64), dtype=np.uint8)  # headers are enough
        self.recv_names = np.zeros((MAX_BATCH, 16), dtype=np.uint8)
        self._recv = message_array(MAX_BATCH, self.recv_data, self.recv_names)
        d = self.data
        d[:, 0], d[:, 8], d[:, 9] = 0x45, 64, 17
        d[:, 2:4] = np.array([PACKET >> 8, PACKET & 0xFF], np.uint8)
        d[:, 12:16] = np.frombuffer(socket.inet_aton("127.0.0.1"), np.uint8)
        d[:, 16:20] = np.array([socket.inet_aton(h) for h, _ in targets], dtype="S4").view(np.uint8).reshape(-1, 4)
        ports = first_port + np.arange(streams)
        d[:, 20:22] = ports.astype(">u2").view(np.uint8).reshape(-1, 2)
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

    @staticmethod
    def _bind_sinks(streams: int, first_port: int) -> list[socket.socket]:
        """A bound socket on every stream's port with the smallest buffer, never read.

        Without it every engine packet to an unbound port would make the kernel answer ICMP port unreachable
        (not rate-limited on loopback), doubling the kernel's work on the engine's core; full, the buffer drops
        packets at no cost (the raw socket has counted them).
        """
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < streams + 256:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(hard, streams + 256), hard), hard))
        sinks = []
        for i in range(streams):
            sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
            sink.bind(("127.0.0.1", first_port + i))
            sinks.append(sink)
        return sinks

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
        while True:
            n = LIBC.recvmmsg(self.recv_sock.fileno(), self._recv[1], MAX_BATCH, MSG_DONTWAIT, None)
            if n <= 0:
                return total
            total += n
            d = self.recv_data[:n]
            dst = (d[:, 22].astype(np.int64) << 8 | d[:, 23]) - self.first_port
            # RTP of payload type 0 (PCMU), marker or not; not the engine's RTCP (PT 200/201) sent to a port + 1
            mine = (d[:, 9] == 17) & (dst >= 0) & (dst < self.n) & (d[:, 28] == 0x80) & (d[:, 29] & 0x7F == 0)
            idx = dst[mine]
            seq = d[mine, 30].astype(np.int64) << 8 | d[mine, 31]
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

    def lost(self) -> int:
        """Packets the engine sent (by sequence number span) that never arrived."""
        started = self.first_seq >= 0
        span = ((self.last_seq - self.first_seq) & 0xFFFF) + 1
        return int((span[started] - self.received[started]).sum())


def run_peer(streams: int, first_port: int, targets: list[tuple[str, int]], seconds: float) -> dict[str, float]:
    """Send for ``seconds`` at 20 ms absolute deadlines, drain every tick; the counts."""
    peer = RawLoadPeer(streams, first_port, targets)
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
    return {"sent": peer.sent, "received": int(peer.received.sum()), "lost": peer.lost(),
            "out_of_order": peer.out_of_order, "duplicates": peer.duplicates, "peer_late_ticks": late,
            "silent_streams": int((peer.received == 0).sum())}

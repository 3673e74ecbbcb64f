"""A scripted RTP peer for tests and benchmarks: a plain UDP socket that sends G.711/RFC 4733 and collects.

It is the far end of a call carried by an :class:`~engine.net.rtp_hub.RtpHub`: ``send_audio`` sends one packet
of 20 ms (or any length), ``send_event`` one RFC 4733 packet, ``collect`` reads whatever arrived (headers
parsed, payloads decoded).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import numpy as np

from engine.net import g711
from engine.net.rtp import RtpError, build_rtp, parse_rtp
from engine.net.telephone_event import build_event


@dataclass
class Received:
    """What the peer got: per packet (sequence, timestamp, marker, ssrc, payload type) and the audio."""

    headers: list[tuple[int, int, bool, int, int]] = field(default_factory=list)
    audio: list[np.ndarray] = field(default_factory=list)

    def samples(self) -> np.ndarray:
        """All audio received, decoded, in arrival order."""
        return np.concatenate(self.audio) if self.audio else np.zeros(0, np.int16)


class RtpPeer:
    """A far end on ``host`` (a free port), sending to ``target`` with ``ssrc`` in ``payload_type``."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1", ssrc: int = 0x1234ABCD,
                 payload_type: int = g711.PCMU, event_payload_type: int = 101) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()
        self.target = target
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.event_payload_type = event_payload_type
        self.sequence, self.timestamp = 1000, 160_000  # the next packet's
        self.received = Received()

    def send_audio(self, samples: np.ndarray, sequence: int | None = None, timestamp: int | None = None,
                   advance: bool = True, **overrides: int) -> bytes:
        """Send ``samples`` (int16) as one packet; by default at the next sequence number and timestamp."""
        payload = g711.encode(samples, self.payload_type).tobytes()
        packet = build_rtp(overrides.get("payload_type", self.payload_type),
                           self.sequence if sequence is None else sequence,
                           self.timestamp if timestamp is None else timestamp,
                           overrides.get("ssrc", self.ssrc), payload)
        self.sock.sendto(packet, self.target)
        if advance:
            self.sequence += 1
            self.timestamp += len(samples)
        return packet

    def send_event(self, key: str, start_timestamp: int, duration: int, end: bool = False, volume: int = 10) -> None:
        """One RFC 4733 packet of an event that started at ``start_timestamp`` (next sequence number)."""
        packet = build_rtp(self.event_payload_type, self.sequence, start_timestamp, self.ssrc,
                           build_event(key, end, volume, duration))
        self.sock.sendto(packet, self.target)
        self.sequence += 1

    def collect(self) -> Received:
        """Read every datagram waiting (non-blocking) into :attr:`received`."""
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.received
            try:
                rtp = parse_rtp(data)
            except RtpError:
                continue
            self.received.headers.append((rtp.sequence, rtp.timestamp, rtp.marker, rtp.ssrc, rtp.payload_type))
            if rtp.payload_type in g711.DECODERS:
                self.received.audio.append(g711.decode(bytes(rtp.payload), rtp.payload_type))

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

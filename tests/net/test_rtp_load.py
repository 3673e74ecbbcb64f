"""The benchmark's load peer against a real hub: every engine packet counted once, by the stream it was sent to."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest

from engine.net import g711
from engine.net.rtp import build_rtp
from engine.net.rtp_hub import RtpHub
from engine.net.rtp_session import RtpSession
from engine.net.sdp import Negotiated
from engine.testing.rtp_load import RawLoadPeer, stream_address

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="raw sockets and SO_BINDTODEVICE need root")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_peer_counts_each_streams_packets_and_only_the_engines() -> None:
    port = _free_port()
    hub = RtpHub(capacity=8)
    sessions = [RtpSession(hub, Negotiated(*stream_address(i, port), g711.PCMU, None)) for i in range(3)]
    peer = RawLoadPeer(3, port, [("127.0.0.1", hub.port)] * 3)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(10):
            peer.send_tick()
            hub.receive()
            hub.send()
            peer.drain()
        assert [s.stats()["received"] for s in sessions] == [10] * 3  # each stream heard from its own address
        assert hub.counters["unknown_source"] == 0
        # not the engine's: another source, a packet too short
        stranger.sendto(build_rtp(0, 1, 1, 1, bytes(160)), stream_address(0, port))
        hub.io.sock.sendto(build_rtp(0, 1, 1, 1, bytes(10)), stream_address(1, port))
        hub.send()  # one more packet of each stream
        peer.drain()
        assert peer.received.tolist() == [11] * 3 and peer.lost() == 0
        assert peer.out_of_order == peer.duplicates == 0
        assert [int(s) for s in hub.packets_sent[:3]] == [11] * 3
        assert np.array_equal(peer.first_seq >= 0, [True] * 3)
    finally:
        stranger.close()
        hub.close()
        peer.close()

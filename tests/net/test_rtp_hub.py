"""The RTP hub on loopback with a scripted peer: both directions, the jitter buffer, RFC 4733, bad packets."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import numpy as np
import pytest

from engine.dtmf.channel import DtmfDetector
from engine.dtmf.tones import dtmf_tone
from engine.format import SAMPLES_PER_FRAME, to_int16
from engine.net import g711
from engine.net.rtp_hub import RtpHub
from engine.net.rtp_session import RtpSession
from engine.net.sdp import Negotiated
from engine.testing.rtp_peer import RtpPeer

F = SAMPLES_PER_FRAME


@pytest.fixture
def hub() -> Iterator[RtpHub]:
    hub = RtpHub(capacity=64)
    yield hub
    hub.close()


def _call(hub: RtpHub, payload_type: int = g711.PCMU) -> tuple[RtpSession, RtpPeer]:
    peer = RtpPeer(("127.0.0.1", hub.port), payload_type=payload_type)
    session = RtpSession(hub, Negotiated(*peer.address, payload_type, 101))
    return session, peer


def _sine(frames: int, hz: float = 1000.0, peak: float = 8000.0) -> np.ndarray:
    return to_int16(peak * np.sin(2 * np.pi * hz * np.arange(frames * F) / 8000))


def _tick(hub: RtpHub, sessions: list[RtpSession], played: np.ndarray | None = None) -> list[np.ndarray]:
    hub.receive()
    heard = [s.read(F).copy() for s in sessions]
    for s in sessions:
        s.write(played if played is not None else np.zeros(F, np.int16), heard[0])
    hub.send()
    return heard


@pytest.mark.parametrize("payload_type", [g711.PCMU, g711.PCMA])
def test_audio_both_ways_with_correct_headers(hub: RtpHub, payload_type: int) -> None:
    session, peer = _call(hub, payload_type)
    tone = _sine(30)
    heard = []
    for k in range(30):
        peer.send_audio(tone[k * F : (k + 1) * F])
        frame = np.full(F, k * 100, dtype=np.int16)
        heard.append(_tick(hub, [session], frame)[0])
    got = np.concatenate(heard)
    expected = g711.decode(g711.encode(tone, payload_type), payload_type)
    depth = hub.bank.min_depth * F  # the jitter buffer's start-up delay
    np.testing.assert_array_equal(got[depth:], expected[: len(got) - depth])
    received = peer.collect()
    sequences = [h[0] for h in received.headers]
    stamps = [h[1] for h in received.headers]
    assert len(sequences) == 30
    assert np.all(np.diff(sequences) % 65536 == 1) and np.all(np.diff(stamps) % 2**32 == F)
    assert [h[2] for h in received.headers] == [True] + [False] * 29
    assert {h[3] for h in received.headers} == {session.ssrc} and {h[4] for h in received.headers} == {payload_type}
    for k, frame in enumerate(received.audio):
        np.testing.assert_array_equal(frame, g711.decode(g711.encode(np.full(F, k * 100, np.int16), payload_type),
                                                         payload_type))
    assert session.stats()["received"] == 30 and session.stats()["lost"] == 0


def test_reordered_duplicated_late_and_lost_packets(hub: RtpHub) -> None:
    session, peer = _call(hub)
    tone = _sine(40, peak=4000)
    frames = [tone[k * F : (k + 1) * F] for k in range(40)]
    base_seq, base_ts = peer.sequence, peer.timestamp

    def send(k: int) -> None:
        peer.send_audio(frames[k], sequence=base_seq + k, timestamp=base_ts + k * F, advance=False)

    heard = []
    send(0)
    heard += _tick(hub, [session])
    send(2)  # 1 and 2 swapped
    send(1)
    send(1)  # a duplicate
    heard += _tick(hub, [session])
    for k in range(3, 40):
        if k != 10:  # 10 is lost
            send(k)
        heard += _tick(hub, [session])
    send(10)  # far too late now
    heard += _tick(hub, [session])
    buffer = session.stats()["buffer"]
    assert buffer["duplicate"] == 1 and buffer["late"] == 1
    assert buffer["depth"] == hub.bank.min_depth + 1  # the late packet deepened it by a frame
    got = np.concatenate(heard)
    expected = g711.decode(g711.encode(tone, g711.PCMU), g711.PCMU)
    depth = hub.bank.min_depth * F
    np.testing.assert_array_equal(got[depth + F : depth + 3 * F], expected[F : 3 * F])  # reordered, in place
    lost = got[depth + 10 * F : depth + 11 * F]  # concealed: the previous frame at half level
    np.testing.assert_array_equal(lost, expected[9 * F : 10 * F] >> 1)
    assert session.stats()["lost"] == 0  # the late packet did arrive (RFC 3550 counts it received)


def _keys(frames: list[np.ndarray]) -> str:
    return "".join(event.key for event in DtmfDetector().process(np.concatenate(frames)))


def test_one_key_per_rfc4733_event_however_many_end_packets(hub: RtpHub) -> None:
    session, peer = _call(hub)
    heard = []
    start = peer.timestamp
    silence = np.zeros(F, np.int16)
    for k in range(40):
        if k < 5 or k >= 12:
            peer.send_audio(silence)
        else:  # the event replaces audio for 7 frames (140 ms), its updates every frame
            peer.timestamp += F
            peer.send_event("7", start + 5 * F, (k - 4) * F)
        if k == 12:
            for _ in range(3):  # three end packets, as RFC 4733 senders send
                peer.send_event("7", start + 5 * F, 7 * F, end=True)
        heard += _tick(hub, [session])
    assert _keys(heard) == "7"
    assert session.stats()["events"] == 1


def test_a_key_sent_in_band_and_by_rfc4733_counts_once(hub: RtpHub) -> None:
    session, peer = _call(hub)
    tone = to_int16(dtmf_tone("5", 140, level_dbm0=-10))
    audio = np.concatenate([np.zeros(5 * F, np.int16), tone, np.zeros(40 * F - 5 * F - len(tone), np.int16)])
    start = peer.timestamp + 5 * F
    heard = []
    for k in range(40):
        peer.send_audio(audio[k * F : (k + 1) * F])
        if 5 <= k < 12:
            peer.send_event("5", start, (k - 4) * F, end=k == 11)
        heard += _tick(hub, [session])
    assert _keys(heard) == "5"


def test_bad_packets_are_dropped_and_counted_and_the_other_call_is_untouched(hub: RtpHub) -> None:
    session, peer = _call(hub)
    other, other_peer = _call(hub)
    tone = _sine(20, hz=600)
    stranger = RtpPeer(("127.0.0.1", hub.port))
    heard = []
    for k in range(20):
        frame = tone[k * F : (k + 1) * F]
        other_peer.send_audio(frame)
        peer.send_audio(frame)
        peer.send_audio(frame, payload_type=18, advance=False)  # a payload type not negotiated
        peer.send_audio(frame, ssrc=0xDEAD, advance=False)  # another source
        peer.sock.sendto(b"\x00" * 7, ("127.0.0.1", hub.port))  # not RTP
        stranger.send_audio(frame)  # an address no call expects (both calls already heard theirs)
        heard.append(_tick(hub, [session, other])[1])
    counters = hub.counters
    assert counters["wrong_payload_type"] == 20 and counters["wrong_ssrc"] == 20
    assert counters["unknown_source"] + counters["malformed"] == 40
    expected = g711.decode(g711.encode(tone, g711.PCMU), g711.PCMU)
    depth = hub.bank.min_depth * F
    np.testing.assert_array_equal(np.concatenate(heard)[depth:], expected[: 20 * F - depth])
    assert other.stats()["buffer"]["concealed"] == hub.bank.min_depth  # only the start-up frames


def test_symmetric_rtp_latches_to_where_the_remote_really_sends_from(hub: RtpHub) -> None:
    session, peer = _call(hub)
    moved = RtpPeer(("127.0.0.1", hub.port))  # the remote sends from another port than its SDP said
    try:
        moved.send_audio(np.zeros(F, np.int16))
        _tick(hub, [session])
        assert session.remote == moved.address
        _tick(hub, [session])
        assert len(moved.collect().headers) == 2  # our packets now go there
    finally:
        moved.close()
        peer.close()


def test_rtp_inactivity_ends_the_session_but_not_while_on_hold(hub: RtpHub) -> None:
    peer = RtpPeer(("127.0.0.1", hub.port))
    session = RtpSession(hub, Negotiated(*peer.address, g711.PCMU, None), inactivity_ticks=10)
    peer.send_audio(np.zeros(F, np.int16))
    _tick(hub, [session])  # the last packet
    for _ in range(10):
        _tick(hub, [session])
    assert not session.ended()  # 10 ticks of silence: not yet
    _tick(hub, [session])
    assert session.ended()
    session.update(Negotiated(*peer.address, g711.PCMU, None, direction="sendonly"))
    _tick(hub, [session])
    assert not session.ended() and not hub.sending[session.slot]


def test_per_call_ports_a_flood_at_one_calls_port_costs_no_other_call_a_frame() -> None:
    from engine.net.rtp_ports import PER_SOCKET

    hub = RtpHub(capacity=8, per_call_ports=(0, 0))
    try:
        flooder = RtpPeer(("127.0.0.1", 0))
        victim_peer = RtpPeer(("127.0.0.1", 0))
        flooded = RtpSession(hub, Negotiated(*flooder.address, g711.PCMU, None))
        victim = RtpSession(hub, Negotiated(*victim_peer.address, g711.PCMU, None))
        flooder.target = ("127.0.0.1", flooded.local_port)
        victim_peer.target = ("127.0.0.1", victim.local_port)
        assert flooded.local_port != victim.local_port and flooded.local_port % 2 == 0
        tone = _sine(30, hz=900)
        heard = []
        for k in range(30):
            for _ in range(200):  # a flood: 200 packets a tick at one call's port
                flooder.send_audio(np.zeros(F, np.int16))
            victim_peer.send_audio(tone[k * F : (k + 1) * F])
            heard.append(_tick(hub, [flooded, victim])[1])
        expected = g711.decode(g711.encode(tone, g711.PCMU), g711.PCMU)
        depth = hub.bank.min_depth * F
        np.testing.assert_array_equal(np.concatenate(heard)[depth:], expected[: 30 * F - depth])
        assert victim.stats()["buffer"]["concealed"] == hub.bank.min_depth
        assert int(hub.received[flooded.slot]) <= 30 * PER_SOCKET  # the flood's cost is bounded per tick
        received = victim_peer.collect()
        assert len(received.headers) == 30  # and the victim got every packet of ours, one per tick
    finally:
        hub.close()


def test_several_packets_of_a_new_stream_in_one_drain_count_from_the_first(hub: RtpHub) -> None:
    session, peer = _call(hub)
    for _ in range(3):  # three packets before the first tick: one recvmmsg batch
        peer.send_audio(np.zeros(F, np.int16))
    _tick(hub, [session])
    assert session.stats()["received"] == 3 and session.stats()["lost"] == 0


def test_the_shared_sockets_get_their_buffers_past_the_system_cap_when_allowed(hub: RtpHub) -> None:
    from pathlib import Path

    from engine.net.rtp_hub import RTP_BUFFER_BYTES

    cap = int(Path("/proc/sys/net/core/rmem_max").read_text())
    got = hub.io.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)  # the kernel reports twice what was set
    assert got >= 2 * (RTP_BUFFER_BYTES if os.geteuid() == 0 else min(cap, RTP_BUFFER_BYTES))


@pytest.mark.skipif(os.geteuid() != 0, reason="a raw socket sees the IP headers (root)")
def test_packets_leave_with_dont_fragment_and_no_ip_identification(hub: RtpHub) -> None:
    import struct

    # the peer on a loopback address of its own: the tap, bound to it, sees only the UDP sent there (a raw socket
    # sees every datagram of the machine otherwise, and other tests' RTP would overflow its buffer)
    peer = RtpPeer(("127.0.0.1", hub.port), host="127.0.0.57")
    session = RtpSession(hub, Negotiated(*peer.address, g711.PCMU, 101))
    tap = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    tap.bind(("127.0.0.57", 0))
    tap.settimeout(5)
    try:
        for _ in range(3):
            _tick(hub, [session])
        headers = []
        while len(headers) < 3:  # the hub's packets to the peer, among whatever UDP the machine carries
            packet = tap.recv(2048)
            if packet[20:24] == struct.pack("!HH", hub.port, peer.address[1]):
                headers.append(struct.unpack("!HH", packet[4:8]))  # identification, flags and fragment offset
    finally:
        tap.close()
    assert headers == [(0, 0x4000)] * 3  # DF set, never a fragment, identification 0

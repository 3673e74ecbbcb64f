"""The RTP sender thread and the send groups: packets at their deadlines, every stream whole and in order."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from engine.format import SAMPLES_PER_FRAME
from engine.media.clock import ManualClock
from engine.media.pacer import Pacer
from engine.net import g711
from engine.net.mmsg import key_of
from engine.net.rtp_hub import RtpHub
from engine.net.rtp_sender import RtpSender, carry
from engine.net.rtp_session import RtpSession
from engine.net.sdp import Negotiated
from engine.testing.harness import wait_for
from engine.testing.rtp_peer import RtpPeer

F = SAMPLES_PER_FRAME
GROUPS = 4


@pytest.fixture
def hub() -> Iterator[RtpHub]:
    hub = RtpHub(capacity=32, send_groups=GROUPS)
    yield hub
    hub.close()


def _calls(hub: RtpHub, count: int) -> tuple[list[RtpSession], list[RtpPeer]]:
    peers = [RtpPeer(("127.0.0.1", hub.port), ssrc=0x100 + i) for i in range(count)]
    sessions = [RtpSession(hub, Negotiated(*peer.address, g711.PCMU, 101)) for peer in peers]
    return sessions, peers


def _frame(call: int, tick: int) -> np.ndarray:
    return np.full(F, (call * 37 + tick * 11) % 256 * 64 - 8192, dtype=np.int16)


def test_the_calls_are_spread_over_the_groups_and_keep_theirs(hub: RtpHub) -> None:
    sessions, peers = _calls(hub, 10)
    hub.receive()
    assert np.bincount(hub.group[:10], minlength=GROUPS).tolist() == [3, 3, 2, 2]
    group_of = {s.ssrc: int(hub.group[s.slot]) for s in sessions}
    sessions[0].close()  # its slot goes to the last call: the groups go with the calls
    hub.receive()
    assert all(int(hub.group[s.slot]) == group_of[s.ssrc] for s in sessions[1:])
    late = RtpSession(hub, Negotiated(*peers[0].address, g711.PCMU, 101))
    hub.receive()
    assert int(hub.group[late.slot]) == group_of[sessions[0].ssrc]  # the least loaded group: the one it left
    for peer in peers:
        peer.close()


def test_a_frame_holds_every_sending_call_once_in_group_order(hub: RtpHub) -> None:
    sessions, peers = _calls(hub, 9)
    sessions[4].update(Negotiated(*peers[4].address, g711.PCMU, 101, direction="sendonly"))  # on hold
    hub.receive()
    for i, s in enumerate(sessions):
        s.write(_frame(i, 0), _frame(i, 0))
    frame = hub.prepare()
    hub.flush()
    assert frame.count == 8
    rows_ssrc = frame.data[:8, 8:12].copy().view(">u4")[:, 0].tolist()
    by_ssrc = {s.ssrc: (i, s) for i, s in enumerate(sessions)}
    assert sorted(rows_ssrc) == sorted(s.ssrc for i, s in enumerate(sessions) if i != 4)
    for g in range(GROUPS):
        start, count = frame.group(g)
        for row in range(start, start + count):
            i, s = by_ssrc[rows_ssrc[row]]
            assert int(hub.group[s.slot]) == g
            name = frame.names[row]
            assert (int(name[4:8].view(">u4")[0]) << 16 | int(name[2]) << 8 | int(name[3])) == key_of(*peers[i].address)
            np.testing.assert_array_equal(frame.data[row, 12:], g711.encode(_frame(i, 0), g711.PCMU))
    for peer in peers:
        peer.close()


def test_the_sender_sends_each_group_at_its_deadline_and_every_stream_arrives_whole(hub: RtpHub) -> None:
    sessions, peers = _calls(hub, 6)
    clock = ManualClock(100.0)
    sender = RtpSender(hub, clock)
    state = {"tick": 0}

    def media_tick() -> None:
        for i, s in enumerate(sessions):
            s.write(_frame(i, state["tick"]), _frame(i, state["tick"]))
        state["tick"] += 1

    tick = sender.driving(media_tick)
    ticks = 25
    try:
        for _ in range(ticks):
            tick()
        wait_for(lambda: sender.sent_frames == ticks, 10, "every frame sent")
        # the last group of the last frame: one period after the start, (ticks - 1) periods, 3 group spacings
        assert clock.now() == pytest.approx(100.0 + 0.02 + (ticks - 1) * 0.02 + 3 * 0.005)
        lateness = sender.lateness()
        assert len(lateness) == ticks * GROUPS and np.all(lateness == 0)
        for i, peer in enumerate(peers):
            wait_for(lambda peer=peer: len(peer.collect().headers) >= ticks, 10, "the packets")
            got = peer.collect()
            assert len(got.headers) == ticks
            sequences = [h[0] for h in got.headers]
            assert np.all(np.diff(sequences) % 65536 == 1)
            assert np.all(np.diff([h[1] for h in got.headers]) % 2**32 == F)
            assert [h[2] for h in got.headers] == [True] + [False] * (ticks - 1)
            for k, audio in enumerate(got.audio):
                np.testing.assert_array_equal(audio, g711.decode(g711.encode(_frame(i, k), g711.PCMU), g711.PCMU))
        assert hub.counters["sent"] == ticks * len(sessions) and hub.counters["send_errors"] == 0
    finally:
        sender.stop()
        for peer in peers:
            peer.close()


def test_a_pacer_carries_the_hub_through_the_sender_on_its_own_clock(hub: RtpHub) -> None:
    sessions, peers = _calls(hub, 3)
    ticked = []
    pacer = Pacer(ManualClock(5.0), lambda: ticked.append(len(ticked)))
    sender = carry(hub, pacer)
    try:
        pacer.run(max_ticks=10)
        wait_for(lambda: sender.sent_frames == 10, 10, "every frame sent")
        assert ticked == list(range(10)) and sender.frames == 10 and sender.resyncs == 0
        assert len(sender.lateness()) == 10 * 3  # 3 calls: 3 groups of one call each, one send per group and tick
        for peer in peers:
            wait_for(lambda peer=peer: len(peer.collect().headers) >= 10, 10, "the packets")
            assert np.all(np.diff([h[0] for h in peer.collect().headers]) % 65536 == 1)
    finally:
        sender.stop()
        for peer in peers:
            peer.close()


def test_after_stop_the_media_ticks_go_on_and_hand_over_nothing(hub: RtpHub) -> None:
    sessions, peers = _calls(hub, 2)
    pacer = Pacer(ManualClock(5.0), lambda: None)
    sender = carry(hub, pacer)
    try:
        pacer.run(max_ticks=3)
        wait_for(lambda: sender.sent_frames == 3, 10, "the frames before stop sent")
        sender.stop()
        pacer.run(max_ticks=20)  # more ticks than the ring has frames: none may wait for a sender that is gone
        assert sender.frames == 23 and sender.sent_frames == 3 and hub.outbound.waits == 0
    finally:
        for peer in peers:
            peer.close()


def test_per_call_ports_are_sent_from_each_calls_own_socket_in_groups() -> None:
    hub = RtpHub(capacity=8, per_call_ports=(0, 0), send_groups=2)
    peers = [RtpPeer(("127.0.0.1", 0)) for _ in range(4)]
    sessions = [RtpSession(hub, Negotiated(*peer.address, g711.PCMU, 101)) for peer in peers]
    sender = RtpSender(hub, ManualClock(0.0))
    tick = sender.driving(lambda: [s.write(_frame(i, 0), _frame(i, 0)) for i, s in enumerate(sessions)])
    try:
        for _ in range(12):
            tick()
        wait_for(lambda: sender.sent_frames == 12, 10, "every frame sent")
        for peer, session in zip(peers, sessions, strict=True):
            got: list[tuple[bytes, tuple[str, int]]] = []

            def more(peer: RtpPeer = peer, got: list = got) -> bool:
                while True:
                    try:
                        got.append(peer.sock.recvfrom(2048))
                    except BlockingIOError:
                        return len(got) >= 12

            wait_for(more, 10, "the packets")
            assert len(got) == 12
            assert {source for _, source in got} == {("127.0.0.1", session.local_port)}  # the call's own socket
            assert {int.from_bytes(data[8:12], "big") for data, _ in got} == {session.ssrc}
            assert np.all(np.diff([int.from_bytes(data[2:4], "big") for data, _ in got]) % 65536 == 1)
        assert len(sender.lateness()) == 12 * 2 and hub.counters["send_errors"] == 0
    finally:
        sender.stop()
        for peer in peers:
            peer.close()
        hub.close()


def _kernel_at_least(major: int, minor: int) -> bool:
    import os
    import re

    found = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return found is not None and (int(found[1]), int(found[2])) >= (major, minor)


@pytest.mark.skipif(not _kernel_at_least(6, 12), reason="fair-scheduler slices of sched_setattr: Linux 6.12+")
def test_the_sender_thread_asks_for_a_short_slice_and_keeps_its_policy_and_nice() -> None:
    import ctypes
    import os
    import threading

    from engine.net.rtp_sender import SLICE_S, _SchedAttr, short_slice

    seen: dict[str, object] = {}

    def thread() -> None:
        seen["granted"] = short_slice(SLICE_S)
        attr = _SchedAttr()
        libc = ctypes.CDLL(None, use_errno=True)
        seen["read"] = libc.syscall(315, 0, ctypes.byref(attr), ctypes.sizeof(_SchedAttr), 0)  # sched_getattr
        seen["attr"] = (attr.policy, attr.nice, attr.runtime_ns)

    worker = threading.Thread(target=thread)
    worker.start()
    worker.join(10)
    assert seen["granted"] is True and seen["read"] == 0
    assert seen["attr"] == (os.SCHED_OTHER, os.getpriority(os.PRIO_PROCESS, 0), int(SLICE_S * 1e9))
    mine = _SchedAttr()
    assert ctypes.CDLL(None).syscall(315, 0, ctypes.byref(mine), ctypes.sizeof(_SchedAttr), 0) == 0
    assert mine.runtime_ns != int(SLICE_S * 1e9)  # only the thread that asked: this one keeps its slice

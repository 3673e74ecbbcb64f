"""The media loop hears and plays RTP sessions through the hub's row port: what the per-call path gives.

Real hubs on loopback, real peers. The same audio both ways through a loop whose calls are served by the port and
through one whose sessions are wrapped so that only ``read``/``write`` reach them (the per-call path): every frame
heard and every packet received must be equal, row reuse and sessions leaving included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from engine.core.orders import MultOrders, Order, PlayKind
from engine.core.timeline import Program
from engine.dtmf.tones import dtmf_tone
from engine.format import SAMPLES_PER_FRAME, to_int16
from engine.media.call import Call
from engine.media.loop import MediaLoop
from engine.media.sinks import MemorySink
from engine.net import g711
from engine.net.rtp_hub import RtpHub
from engine.net.rtp_session import RtpSession
from engine.net.sdp import Negotiated
from engine.testing.rtp_peer import RtpPeer

F = SAMPLES_PER_FRAME
TICKS = 30


class _PerCall:
    """An RTP session reached only through ``read``/``write`` (no ``row_port``): the loop's per-call path."""

    def __init__(self, session: RtpSession) -> None:
        self.session = session

    def read(self, count: int) -> np.ndarray:
        return self.session.read(count)

    def request_started(self) -> None:
        pass

    def write(self, played: np.ndarray, heard: np.ndarray) -> None:
        self.session.write(played, heard)

    def close(self) -> None:
        self.session.close()


class _Tee(MemorySink):
    """A recording sink in front of the session (as ``[sip] record`` does): the frames played go per call."""

    def __init__(self, session: RtpSession) -> None:
        super().__init__()
        self.session = session

    def write(self, played: np.ndarray, heard: np.ndarray) -> None:
        super().write(played, heard)
        self.session.write(played, heard)

    def close(self) -> None:
        self.session.close()


def _tone(hz: float, frames: int = TICKS) -> np.ndarray:
    return to_int16(6000 * np.sin(2 * np.pi * hz * np.arange(frames * F) / 8000))


def _first_sound(samples: np.ndarray) -> int:
    """The sample at which the first frame holding any sound starts."""
    return int(np.flatnonzero(samples.reshape(-1, F).any(axis=1))[0]) * F


def _program(i: int) -> Program:
    prompt = (np.arange(TICKS * F) % 1000 * (i + 1) - 500 * (i + 1)).astype(np.int16)
    return Program(MultOrders("a", "c", (Order(PlayKind.FILE, "x", 1),), 1), (prompt,))


class _Line:
    """One hub and loop with ``count`` calls, each with its peer; ``wrap``: how the session is given to the call."""

    def __init__(self, count: int, wrap: str, capacity: int = 16,
                 programs: Callable[[int], Program] | None = None) -> None:
        self.hub = RtpHub(capacity=capacity)
        self.programs = programs or _program
        self.listening = programs is None  # (a call someone listens to plays no quiet runs)
        self.loop = MediaLoop()
        self.peers: list[RtpPeer] = []
        self.sessions: list[RtpSession] = []
        self.heard: dict[str, list[np.ndarray]] = {}
        self.sinks: list[MemorySink] = []
        for i in range(count):
            self.add(f"c{i}", i, wrap)

    def add(self, call_id: str, i: int, wrap: str, loop: MediaLoop | None = None) -> Call:
        peer = RtpPeer(("127.0.0.1", self.hub.port), ssrc=0x1000 + i)
        session = RtpSession(self.hub, Negotiated(*peer.address, g711.PCMU, None))
        caller: object = _PerCall(session) if wrap == "per call" else session
        sink: object = caller
        if wrap == "tee":
            sink = _Tee(session)
            self.sinks.append(sink)  # type: ignore[arg-type]
        call = Call("a", call_id, caller, sink, lambda *_: None)  # type: ignore[arg-type]
        call.submit(self.programs(i))
        loop = self.loop if loop is None else loop
        loop.add(call)
        heard = self.heard.setdefault(call_id, [])
        if self.listening:
            loop.listen(call_id, lambda frame, _call: heard.append(frame.copy()) or True)
        self.peers.append(peer)
        self.sessions.append(session)
        return call

    def tick(self, audio: dict[int, np.ndarray], k: int, loops: tuple[MediaLoop, ...] = ()) -> None:
        for i, samples in audio.items():
            self.peers[i].send_audio(samples[k * F : (k + 1) * F])
        self.hub.receive()
        for loop in (self.loop, *loops):
            loop.tick()
        self.hub.send()

    def close(self) -> None:
        for peer in self.peers:
            peer.close()
        self.hub.close()


@pytest.fixture
def lines() -> Iterator[list[_Line]]:
    made: list[_Line] = []
    yield made
    for line in made:
        line.close()


def test_calls_served_by_the_port_hear_and_send_what_the_per_call_path_does(lines: list[_Line]) -> None:
    port, per_call = _Line(3, "port"), _Line(3, "per call")
    lines += [port, per_call]
    audio = {i: _tone(500 + 300 * i) for i in range(3)}
    for k in range(TICKS):
        for line in (port, per_call):
            line.tick(audio, k)
    assert all(s.loop_rows != (-1, -1) for s in port.sessions)
    assert all(s.loop_rows == (-1, -1) for s in per_call.sessions)
    for i in range(3):
        got = np.concatenate(port.heard[f"c{i}"])
        assert np.array_equal(got, np.concatenate(per_call.heard[f"c{i}"]))
        expected = g711.decode(g711.encode(audio[i], g711.PCMU), g711.PCMU)
        start = _first_sound(got)  # after the jitter buffer's depth
        assert start > 0 and np.array_equal(got[start:], expected[: len(got) - start])
        sent = port.peers[i].collect().samples()
        assert np.array_equal(sent, per_call.peers[i].collect().samples())
        prompt = _program(i).prompts[0]
        assert np.array_equal(sent, g711.decode(g711.encode(prompt[: len(sent)], g711.PCMU), g711.PCMU))
        assert len(sent) == TICKS * F


def test_a_reused_row_hears_only_its_new_caller_and_a_session_the_hub_dropped_is_silent(lines: list[_Line]) -> None:
    line = _Line(2, "port")
    lines.append(line)
    audio = {0: _tone(700), 1: _tone(1100)}
    for k in range(10):
        line.tick(audio, k)
    first = line.loop.calls[0]
    line.loop.remove(first)  # closes its session: the hub detaches it
    line.add("new", 2, "port")
    line.sessions[1].close()  # the hub stops carrying call c1 while the loop still ticks it (its peer stops too:
    audio = {2: _tone(1500)}  # else the new session, having heard nothing yet, would latch onto it)
    for k in range(10, TICKS):
        line.tick(audio, k)
    new = np.concatenate(line.heard["new"])
    assert not new[: 2 * F].any()  # silence until its own packets come out of the jitter buffer
    own = g711.decode(g711.encode(audio[2], g711.PCMU), g711.PCMU)
    start = _first_sound(new)
    assert np.array_equal(new[start:], own[10 * F : 10 * F + len(new) - start])
    dropped = line.heard["c1"][11:]  # one tick for the detach to apply
    assert dropped and not np.concatenate(dropped).any()


def test_a_second_loop_on_the_hub_and_a_recording_sink_take_the_per_call_path(lines: list[_Line]) -> None:
    line = _Line(1, "port")  # rows: c0 through the port, then a recorded call, then c2 through the port
    lines.append(line)
    line.add("tee", 1, "tee")
    line.add("c2", 2, "port")
    other = MediaLoop()
    line.add("other", 3, "port", loop=other)
    audio = {i: _tone(700 + 300 * i) for i in range(4)}
    for k in range(TICKS):
        line.tick(audio, k, (other,))
    assert [s.loop_rows for s in line.sessions] == [(0, 0), (1, -1), (2, 2), (-1, -1)]  # the port: one loop only
    recorded = line.sinks[0].played()
    assert len(recorded) == TICKS * F
    for i in range(3):  # what each call played reached its peer, the recorded call's through its sink
        sent = line.peers[i].collect().samples()
        played = recorded if i == 1 else _program(i).prompts[0][: TICKS * F]
        assert np.array_equal(sent, g711.decode(g711.encode(played, g711.PCMU), g711.PCMU))
    for i, call_id in enumerate(("c0", "tee", "c2", "other")):
        got = np.concatenate(line.heard[call_id])
        start = _first_sound(got)
        expected = g711.decode(g711.encode(audio[i], g711.PCMU), g711.PCMU)
        assert start > 0 and np.array_equal(got[start:], expected[: len(got) - start])
    assert np.array_equal(line.sinks[0].heard(), np.concatenate(line.heard["tee"]))  # the sink hears what was heard


def test_a_tone_whose_packets_come_late_is_one_key_the_waits_of_the_jitter_buffer_held(lines: list[_Line]) -> None:
    """Caller 1's tone packets come 120 ms apart (its buffer runs dry after each): the detector holds the waits."""
    line = _Line(2, "port")
    lines.append(line)
    found: list[tuple[int, str]] = []
    process = line.loop.detector.process

    def spy(frames: np.ndarray, hold: np.ndarray | None = None) -> list:
        events = process(frames, hold)
        found.extend((row, event.key) for row, event in events)
        return events

    line.loop.detector.process = spy  # type: ignore[method-assign]
    audio = to_int16(np.concatenate([np.zeros(5 * F), dtmf_tone("4", 100, -8.0), np.zeros(40 * F)]))
    frames = [audio[k * F : (k + 1) * F] for k in range(len(audio) // F)]
    late = {5 + 6 * j: [5 + j] for j in range(5)}  # tick -> the frames caller 1 sends then: its tone, 120 ms apart
    late.update({k: [k] for k in range(5)})
    late.update({k: [k - 20] for k in range(30, 60)})
    for k in range(60):
        if k < len(frames):
            line.peers[0].send_audio(frames[k])
        for index in late.get(k, []):
            line.peers[1].send_audio(frames[index])
        line.hub.receive()
        line.loop.tick()
        line.hub.send()
    assert line.sessions[1].stats()["buffer"]["underruns"] >= 16  # dry between every two tone frames
    assert sorted(found) == [(0, "4"), (1, "4")]  # each caller's tone: one key


_RAMP = (np.arange(25 * F + 37) * 7 % 2000 - 1000).astype(np.int16)
_SHORT = _RAMP[: 20 * F]


def _shared_prompts(i: int) -> Program:
    """Calls 0-19 play one prompt (gaps of their own), 20-37 another, then it twice; 38 and 39 each their own."""
    if i < 20:
        orders = (Order(PlayKind.FILE, "a", 3, gap_samples=F * (i % 5) + 40 * (i % 3)),)
        return Program(MultOrders("a", "c", orders, 1), (_RAMP,))
    if i < 38:
        orders = (Order(PlayKind.FILE, "b", 1), Order(PlayKind.FILE, "b", 2, gap_samples=7 * F))
        return Program(MultOrders("a", "c", orders, 1), (_SHORT, _SHORT))
    own = (_RAMP * (i - 36)).astype(np.int16)
    return Program(MultOrders("a", "c", (Order(PlayKind.FILE, "own", 2, gap_samples=3 * F),), 1), (own,))


def test_quiet_runs_into_the_port_send_what_the_per_call_path_sends(lines: list[_Line]) -> None:
    """Rows in quiet runs played into the port (gathered by source) against the same calls one frame a call."""
    port, per_call = (_Line(40, wrap, capacity=48, programs=_shared_prompts) for wrap in ("port", "per call"))
    lines += [port, per_call]
    ticks = 110
    for k in range(ticks):
        if k == 30:
            for line in (port, per_call):
                line.loop.calls[5].stop()
                line.loop.calls[25].stop()
        for line in (port, per_call):
            line.tick({}, k)
    assert port.loop.gathered_frames > 20 * 50  # most frames of the shared prompts came by gathers
    assert per_call.loop.gathered_frames == 0
    for i in range(40):
        sent = port.peers[i].collect().samples()
        assert len(sent) == ticks * F
        assert np.array_equal(sent, per_call.peers[i].collect().samples()), f"call {i}"
    prompt = _shared_prompts(0).prompts[0]
    expected = g711.decode(g711.encode(prompt, g711.PCMU), g711.PCMU)
    assert np.array_equal(port.peers[0].collect().samples()[: len(prompt)], expected)

"""The media loop's fast paths give what the general code gives.

The player's one-compare frames against its transition code alone, skipped frames against played ones, silent callers
left unread against reading every sample, a script mixed without copies against mixing whole arrays. Random programs,
keys and restarts.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from engine.audio.caller import CallerAudio, ScriptedCaller, parse_key_script, script_span_samples
from engine.core.orders import KeyCollection, MultOrders, Order, PlayKind
from engine.core.player import RequestPlayer
from engine.core.reports import PlayerEvent
from engine.core.timeline import Program
from engine.dtmf.detector import BatchDtmfDetector, KeyEvent
from engine.dtmf.tones import place_tones
from engine.format import SAMPLES_PER_FRAME
from engine.media.call import Call
from engine.media.loop import MediaLoop
from engine.media.sinks import MemorySink, NullSink

FRAME = SAMPLES_PER_FRAME


class _TransitionsOnly(RequestPlayer):
    """Every frame through the general code (the fast path never taken)."""

    __slots__ = ()

    def _plan(self) -> None:
        self.fast_last_sample = -1


def _program(rng: random.Random) -> Program:
    orders, prompts = [], []
    count = rng.randint(1, 3)
    for i in range(count):
        collect = None
        if i == count - 1 and rng.random() < 0.7:
            collect = KeyCollection(rng.choice([0, 1, 2]), rng.choice([None, "#"]), rng.choice([0, 160, 1500]),
                                    rng.choice([0, 0, rng.randint(1, 8000)]))
        orders.append(Order(PlayKind.FILE, "x", rng.randint(1, 3), rng.choice([0, 1, 160, rng.randint(1, 2000)]),
                            collect, "d"))
        length = rng.choice([0, 1, 159, 160, 161, rng.randint(1, 3000)])
        prompts.append((np.arange(length) % 20000 + 1 + 1000 * i).astype(np.int16))
    return Program(MultOrders("a", "c", tuple(orders), rng.randint(1, 2)), tuple(prompts))


def _keys(rng: random.Random) -> dict[int, list[tuple[str, int]]]:
    keys: dict[int, list[tuple[str, int]]] = {}
    for _ in range(rng.randint(0, 5)):
        tick = rng.randint(0, 80)
        keys.setdefault(tick, []).append((rng.choice("12#"), tick * FRAME - rng.randint(-100, 400)))
    return keys


@pytest.mark.parametrize("seed", range(300))
def test_fast_frames_and_skipped_frames_match_the_general_code(seed: int) -> None:
    rng = random.Random(seed)
    program, keys = _program(rng), _keys(rng)
    stop_at = rng.choice([-1, -1, rng.randint(0, 60)])
    fast, general, skipping = RequestPlayer(program), _TransitionsOnly(program), RequestPlayer(program)
    for tick in range(2000):
        frame = fast.next_frame()
        assert np.array_equal(frame, general.next_frame())
        skipping.skip_frame()
        for key, onset in keys.get(tick, []):
            for player in (fast, general, skipping):
                player.on_key(key, onset)
        if tick == stop_at:
            for player in (fast, general, skipping):
                player.stop()
        assert fast.position_samples == general.position_samples == skipping.position_samples
        assert fast.events == general.events == skipping.events
        assert fast.status() == general.status() == skipping.status()
        if fast.done:
            break
    assert fast.done


@pytest.mark.parametrize("seed", range(200))
def test_quiet_runs_play_what_ticking_plays(seed: int) -> None:
    """Calls in a loop (quiet runs: most frames without a tick) against the same calls ticked frame by frame."""
    rng = random.Random(seed)
    programs = [_program(rng) for _ in range(3)]
    keys = [_keys(rng) for _ in range(3)]
    stops = [rng.choice([-1, rng.randint(0, 80)]) for _ in range(3)]
    hang_at = rng.choice([-1, rng.randint(0, 120)])
    logs: dict[str, list[tuple[PlayerEvent, int]]] = {}

    def call(name: str, program: Program) -> Call:
        made = Call("a", name, CallerAudio(np.zeros(0, np.int16)), MemorySink(),
                    lambda c, e, at: logs.setdefault(c.call_id, []).append((e, at)))
        made.submit(program)
        made.submit(program)
        return made

    looped = [call(f"loop{i}", p) for i, p in enumerate(programs)]
    ticked = [call(f"tick{i}", p) for i, p in enumerate(programs)]
    loop = MediaLoop()
    for c in looped:
        loop.add(c)
    for tick in range(400):
        loop.tick()
        for c in ticked:
            c.sink.write(c.next_frame(), np.zeros(FRAME, np.int16))
        for i, (a, b) in enumerate(zip(looped, ticked, strict=True)):
            for key, onset in keys[i].get(tick, []):
                for c in (a, b):
                    c.on_key(KeyEvent(key, onset, tick * FRAME))
            if tick == stops[i]:
                a.stop(), b.stop()
            if tick == hang_at:
                a.hang_up(), b.hang_up()
            assert a.position_samples == b.position_samples
    for a, b in zip(looped, ticked, strict=True):
        assert np.array_equal(a.sink.played(), b.sink.played())
        assert logs.get(a.call_id) == logs.get(b.call_id)
        assert (a.player.status() if a.player else None) == (b.player.status() if b.player else None)


def _mixed_reference(script: np.ndarray, starts: list[int], frames: int) -> np.ndarray:
    """The caller's audio by whole-array mixing.

    At each request start, what still sounds plus the script, summed in int32 and saturated.
    """
    samples, position, out = np.zeros(0, dtype=np.int16), 0, []
    for tick in range(frames):
        if tick * FRAME in starts:
            rest = samples[position:]
            mixed = np.zeros(max(len(rest), len(script)), dtype=np.int32)
            mixed[: len(rest)] += rest
            mixed[: len(script)] += script
            samples, position = np.clip(mixed, -32768, 32767).astype(np.int16), 0
        chunk = samples[position : position + FRAME]
        position += FRAME
        out.append(np.pad(chunk, (0, FRAME - len(chunk))))
    return np.concatenate(out)


@pytest.mark.parametrize("seed", range(200))
def test_scripted_caller_frames_equal_whole_array_mixing(seed: int) -> None:
    rng = random.Random(seed)
    presses = ",".join(f"{rng.choice('159#')}@{rng.choice([0, 0.01, 0.05, rng.uniform(0, 0.5)]):.3f}"
                       for _ in range(rng.randint(0, 3)))
    reader, framed = ScriptedCaller(parse_key_script(presses)), ScriptedCaller(parse_key_script(presses))
    frames = rng.randint(1, 120)
    starts = sorted({0, *(rng.randrange(frames) * FRAME for _ in range(rng.randint(0, 6)))})
    read, copied, rows = [], [], np.zeros((2, FRAME), dtype=np.int16)
    for tick in range(frames):
        if tick * FRAME in starts:
            reader.request_started()
            framed.request_started()
        read.append(reader.read(FRAME).copy())
        if framed.read_into(rows, 1):
            copied.append(rows[1].copy())
        else:  # the row is left as it was: silence
            assert not rows[1].any()
            copied.append(np.zeros(FRAME, dtype=np.int16))
    script_presses = [(p.key, p.at_sample) for p in parse_key_script(presses)]
    script = place_tones(script_span_samples(parse_key_script(presses)), script_presses)
    expected = _mixed_reference(script, starts, frames)
    assert np.array_equal(np.concatenate(read), expected)
    assert np.array_equal(np.concatenate(copied), expected)


class _Reading(CallerAudio):
    """A caller read through ``read`` (the loop's general path)."""

    def read(self, count: int) -> np.ndarray:
        return super().read(count)


def test_loop_hears_and_records_what_read_gives_and_counts_cpu_per_pass() -> None:
    audio = np.zeros(9000, dtype=np.int16)
    audio[3000:3500] = 1000
    program = Program(MultOrders("a", "c", (Order(PlayKind.FILE, "x", 2, 800),), 3),
                      (np.arange(1234, dtype=np.int16) + 1,))
    loop = MediaLoop()
    sinks = [MemorySink(), MemorySink(), MemorySink()]
    callers = [CallerAudio(audio), _Reading(audio), ScriptedCaller(parse_key_script("5@0.2,6@0.9"))]
    calls = [Call("a", f"c{i}", caller, sink, lambda *_: None) for i, (caller, sink) in
             enumerate(zip(callers, sinks, strict=True))]
    for call in calls:
        call.submit(program)
        loop.add(call)
    silent = Call("a", "n", CallerAudio(audio), NullSink(), lambda *_: None)
    silent.submit(program)
    loop.add(silent)
    for _ in range(80):
        loop.tick()
    assert np.array_equal(sinks[0].heard(), np.concatenate([audio, np.zeros(80 * FRAME - len(audio), np.int16)]))
    assert np.array_equal(sinks[0].heard(), sinks[1].heard())
    assert np.array_equal(sinks[0].played(), sinks[2].played())
    assert silent.position_samples == calls[0].position_samples == 80 * FRAME and silent.idle == calls[0].idle
    assert set(loop.cpu_ns) == {"play", "hear", "detect"} and all(ns >= 0 for ns in loop.cpu_ns.values())


class _Broken(CallerAudio):
    def read(self, count: int) -> np.ndarray:
        raise RuntimeError("the endpoint broke")


class _BrokenSink(MemorySink):
    def write(self, played: np.ndarray, heard: np.ndarray) -> None:
        raise RuntimeError("the disk is full")


def test_failed_calls_are_listed_in_call_order_whichever_pass_failed() -> None:
    program = Program(MultOrders("a", "c", (Order(PlayKind.FILE, "x", 1),), 1), (np.ones(4000, np.int16),))
    loop = MediaLoop()
    calls = [Call("a", "sink", CallerAudio(np.zeros(0, np.int16)), _BrokenSink(), lambda *_: None),
             Call("a", "caller", _Broken(np.zeros(0, np.int16)), NullSink(), lambda *_: None),
             Call("a", "fine", CallerAudio(np.zeros(0, np.int16)), NullSink(), lambda *_: None)]
    for call in calls:
        call.submit(program)
        loop.add(call)
    loop.tick()
    assert [call.call_id for call in loop.failed] == ["sink", "caller"] and loop.failures == 2


class _CountingDetector(BatchDtmfDetector):
    """Counts the channels copied when the detector grows, and the channels removed."""

    def __init__(self) -> None:
        super().__init__(0)
        self.grown = self.copied = self.removed = 0

    def add_channels(self, count: int) -> int:
        self.grown += 1
        self.copied += self.channels
        return super().add_channels(count)

    def remove_channel(self, index: int) -> None:
        self.removed += 1
        super().remove_channel(index)


def _silent_call(name: str) -> Call:
    return Call("a", name, CallerAudio(np.zeros(0, np.int16)), NullSink(), lambda *_: None)


def test_adding_1000_calls_does_not_copy_every_channel() -> None:
    loop = MediaLoop()
    loop.detector = detector = _CountingDetector()
    for i in range(1000):  # one call per tick: the worst case for growing
        loop.add(_silent_call(f"c{i}"))
        loop.tick()
    assert len(loop) == 1000 and detector.channels == loop.rows >= 1000
    assert detector.grown < 40 and detector.copied < 5 * 1000  # geometric growth: O(1) per call
    assert loop.rows < 1000 * 1.25 + 2


def test_hanging_up_1000_calls_frees_rows_for_the_next_ones() -> None:
    loop = MediaLoop()
    loop.detector = detector = _CountingDetector()
    calls = [_silent_call(f"c{i}") for i in range(1000)]
    for call in calls:
        loop.add(call)
    loop.tick()
    rows = loop.rows
    for call in calls[::2]:
        loop.remove(call)
    loop.tick()
    assert detector.removed == 0 and len(loop) == 500 and loop.rows == rows
    for i in range(500):
        loop.add(_silent_call(f"n{i}"))
    loop.tick()
    assert loop.rows == rows and detector.grown == 1 and len(loop) == 1000


def test_a_call_on_a_reused_row_hears_only_its_own_caller() -> None:
    tone = ScriptedCaller(parse_key_script("5@0"))
    loop = MediaLoop()
    first = Call("a", "first", tone, MemorySink(), lambda *_: None)
    first.submit(Program(MultOrders("a", "c", (Order(PlayKind.FILE, "x", 1),), 1), (np.ones(4000, np.int16),)))
    loop.add(first)
    for _ in range(3):
        loop.tick()  # the first call's row holds its tone
    loop.remove(first)
    sink = MemorySink()
    loop.add(Call("a", "second", CallerAudio(np.zeros(0, np.int16)), sink, lambda *_: None))
    assert loop.rows == 1
    for _ in range(3):
        loop.tick()
    assert not sink.heard().any() and len(sink.heard()) == 3 * FRAME

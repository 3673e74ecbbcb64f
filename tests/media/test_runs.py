"""Quiet runs: how many start per tick, and what a run leaves the call when it ends early."""

from __future__ import annotations

import numpy as np

from engine.audio.caller import CallerAudio
from engine.core.orders import MultOrders, Order, PlayKind
from engine.core.timeline import Program
from engine.format import SAMPLES_PER_FRAME
from engine.media.call import Call
from engine.media.loop import MediaLoop
from engine.media.runs import OFFERS_PER_TICK, QuietRows
from engine.media.sinks import MemorySink, NullSink

FRAME = SAMPLES_PER_FRAME
PROMPT = (np.arange(8000 * 3) % 3000 + 1).astype(np.int16)  # 3 s, never silent


def _program() -> Program:
    return Program(MultOrders("a", "c", (Order(PlayKind.FILE, "x", 1, 0, None, "d"),), 1), (PROMPT,))


def _call(name: str, sink: object) -> Call:
    call = Call("a", name, CallerAudio(np.zeros(0, np.int16)), sink, lambda *_: None)  # type: ignore[arg-type]
    call.submit(_program())
    return call


def test_calls_that_fall_quiet_together_start_their_runs_over_several_ticks() -> None:
    loop = MediaLoop()
    runs: QuietRows = loop._runs  # the loop's own, read for its counter only
    calls = [_call(f"c{i}", NullSink()) for i in range(OFFERS_PER_TICK * 2 + 10)]
    for call in calls:
        loop.add(call)
    started = []
    for _ in range(4):
        loop.tick()
        started.append(runs.running)
    assert started == [OFFERS_PER_TICK, 2 * OFFERS_PER_TICK, len(calls), len(calls)]
    assert all(call.position_samples == 4 * FRAME for call in calls)


def test_a_run_ended_by_a_stop_leaves_the_call_at_its_sample_and_the_loop_ticks_it_again() -> None:
    loop = MediaLoop()
    call = _call("c", MemorySink())
    loop.add(call)
    for _ in range(30):
        loop.tick()
    assert loop._runs.running == 1
    assert call.position_samples == 30 * FRAME
    call.stop()  # ends the run first: the request stops at the 30th frame's end
    assert loop._runs.running == 0
    for _ in range(3):
        loop.tick()
    played = call.sink.played()
    assert np.array_equal(played[: 30 * FRAME], PROMPT[: 30 * FRAME])
    assert not played[30 * FRAME:].any() and len(played) == 33 * FRAME

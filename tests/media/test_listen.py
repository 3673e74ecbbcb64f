"""MediaLoop.listen: a listener hears exactly the caller's frames, until it says stop or its call leaves."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from engine.audio.caller import CallerAudio
from engine.format import SAMPLES_PER_FRAME
from engine.media.call import Call
from engine.media.loop import MediaLoop
from engine.media.sinks import NullSink

FRAME = SAMPLES_PER_FRAME


def _call(call_id: str, audio: np.ndarray) -> Call:
    return Call("a", call_id, CallerAudio(audio), NullSink(), lambda *_: None)


def test_a_listener_hears_its_callers_frames_until_it_stops(caplog: pytest.LogCaptureFixture) -> None:
    audio = (np.arange(20 * FRAME) % 300).astype(np.int16)
    other = np.full(20 * FRAME, 7, dtype=np.int16)
    loop = MediaLoop()
    calls = [_call("x", other), _call("heard", audio), _call("broken", other)]
    for call in calls:
        loop.add(call)
    loop.listen("gone", lambda *_: True)  # not a ticked call: ignored
    loop.tick()  # before listening
    heard: list[np.ndarray] = []

    def listener(frame: np.ndarray, call: Call) -> bool:
        heard.append(frame.copy())
        return len(heard) < 5 and call.call_id == "heard"

    def broken(_frame: np.ndarray, _call: Call) -> bool:
        raise RuntimeError("the listener broke")

    loop.listen("heard", listener)
    loop.listen("broken", broken)
    with caplog.at_level(logging.ERROR, logger="engine.media.loop"):
        for _ in range(8):
            loop.tick()
    assert np.array_equal(np.concatenate(heard), audio[FRAME : 6 * FRAME])  # frames 1-5, then it stopped
    assert sum("a listener of call broken failed" in r.getMessage() for r in caplog.records) == 1
    assert calls[2].position_samples == 9 * FRAME  # the call went on
    loop.listen("x", listener)
    loop.remove(calls[0])  # leaving drops its listener
    loop.tick()
    assert len(heard) == 5

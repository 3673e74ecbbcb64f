"""The page's caller: keys become tones the detector decodes; the microphone goes through its jitter buffer."""

from __future__ import annotations

import numpy as np

from engine.dtmf.channel import detect_keys
from engine.dtmf.tones import dtmf_tone
from engine.format import SAMPLES_PER_FRAME, to_int16
from engine.web.caller import MIC_PREFILL_SAMPLES, BrowserCaller, MicBuffer


def read_frames(caller: BrowserCaller, frames: int) -> np.ndarray:
    return np.concatenate([caller.read(SAMPLES_PER_FRAME) for _ in range(frames)])


def test_pressed_keys_are_tones_in_the_callers_audio() -> None:
    caller = BrowserCaller()
    silent = read_frames(caller, 5)
    caller.press("3")
    caller.press("#")
    audio = read_frames(caller, 30)
    assert not silent.any()
    keys = detect_keys(audio)
    assert [k.key for k in keys] == ["3", "#"]
    assert keys[0].start_sample == 0  # placed at the caller's position when read
    assert keys[1].start_sample == 1280  # 100 ms tone + 60 ms gap later
    assert caller.keys == "3#"


def test_microphone_audio_is_heard_after_the_prefill_exactly() -> None:
    caller = BrowserCaller()
    tone = to_int16(dtmf_tone("9", 100, -8))
    caller.mic.feed(tone[:MIC_PREFILL_SAMPLES - 1])
    assert not caller.read(SAMPLES_PER_FRAME).any()  # not yet primed
    caller.mic.feed(tone[MIC_PREFILL_SAMPLES - 1 :])
    heard = read_frames(caller, 5)
    np.testing.assert_array_equal(heard, tone)  # 800 samples: five frames, sample for sample
    assert not caller.read(SAMPLES_PER_FRAME).any()
    assert caller.mic.underruns == 1


def test_the_microphone_buffer_is_bounded() -> None:
    mic = MicBuffer(prefill_samples=160, max_samples=1000)
    mic.feed(np.arange(1500, dtype=np.int16))
    assert mic.dropped == 500
    first = mic.take(160)
    assert first is not None and first[0] == 500  # the oldest were dropped

"""The caller's audio: scripted keys as lazily generated tones, buffers, and the one caller factory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.audio.caller import (
    PRESS_TONE_SAMPLES,
    CallerAudio,
    ScriptedCaller,
    frame_reader,
    make_caller,
    parse_key_script,
)
from engine.audio.library import VoiceLibrary
from engine.dtmf.channel import detect_keys
from engine.dtmf.tones import place_tones
from engine.errors import EndpointError, RequestError
from engine.format import SAMPLES_PER_FRAME, seconds_to_samples

FRAME = SAMPLES_PER_FRAME


def _read(caller: ScriptedCaller | CallerAudio, frames: int) -> np.ndarray:
    return np.concatenate([caller.read(FRAME) for _ in range(frames)])


def test_key_script_at_36000_s_is_lazy():
    tracemalloc.start()
    try:
        caller = ScriptedCaller(parse_key_script("1@36000,2@36000.5"))
        caller.request_started()
        rows = np.full((1, FRAME), 7, dtype=np.int16)
        silent = [caller.read_into(rows, 0) for _ in range(5000)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024  # 36000 s of int16 audio would be 576 MB
    assert not any(silent) and (rows == 7).all()  # silent frames leave the row alone


def test_scripted_tones_are_those_of_the_whole_script_and_decode_back():
    presses = parse_key_script("5@0.3,#@0.37,9@1.013")
    caller = ScriptedCaller(presses)
    caller.request_started()
    frames = 80
    heard = _read(caller, frames)
    expected = place_tones(frames * FRAME, [(p.key, p.at_sample) for p in presses])
    assert np.array_equal(heard, expected)
    assert "".join(event.key for event in detect_keys(heard)) == "5#9"


def test_a_script_restarts_with_every_request_over_what_still_sounds():
    caller = ScriptedCaller(parse_key_script("1@0"))
    caller.request_started()
    first = _read(caller, 2)  # 320 samples of the first tone
    caller.request_started()  # the first tone still sounds for 480 samples: mixed with the second
    heard = np.concatenate([first, _read(caller, 8)])
    tone = place_tones(PRESS_TONE_SAMPLES, [("1", 0)]).astype(np.int32)
    expected = np.zeros(len(heard), dtype=np.int32)
    expected[:PRESS_TONE_SAMPLES] += tone
    expected[2 * FRAME : 2 * FRAME + PRESS_TONE_SAMPLES] += tone
    assert np.array_equal(heard, np.clip(expected, -32768, 32767))


def test_buffer_caller_reads_then_goes_silent_without_touching_the_row():
    audio = np.arange(1, 401, dtype=np.int16)
    caller = CallerAudio(audio)
    rows = np.zeros((3, FRAME), dtype=np.int16)
    assert caller.read_into(rows, 2) and np.array_equal(rows[2], audio[:FRAME])
    assert caller.read_into(rows, 2) and caller.read_into(rows, 2)
    assert np.array_equal(rows[2][:80], audio[320:]) and not rows[2][80:].any()
    rows[2] = 9
    assert caller.read_into(rows, 2) and not rows[2].any()  # silence written once after sound
    rows[2] = 9
    assert not caller.read_into(rows, 2) and (rows[2] == 9).all()  # then the row is left alone


def test_frame_reader_only_for_callers_read_as_they_are():
    class Overriding(CallerAudio):
        def read(self, count: int) -> np.ndarray:
            return super().read(count)

    assert frame_reader(CallerAudio(np.zeros(0, np.int16))) is not None
    assert frame_reader(Overriding(np.zeros(0, np.int16))) is None
    assert frame_reader(object()) is None


def test_make_caller_names_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(EndpointError, match=r"^keys: give keys or callerWav, not both"):
        make_caller("1@1", "x.wav")
    with pytest.raises(EndpointError, match=r"^--keys: key script item 'x@1'"):
        make_caller("x@1", names=("--keys", "--caller"))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    library = VoiceLibrary(tmp_path)
    with pytest.raises(RequestError, match=r"^callerWav: ") as info:  # the voice library decodes and refuses
        make_caller(audio="bad.wav", load=lambda name: library.load(name, "callerWav"))
    assert str(tmp_path) not in str(info.value)  # no absolute path in the message
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EndpointError, match=r"^callerWav: 'bad.wav' is not decodable audio$"):
        make_caller(audio="bad.wav")  # the command line's way: the path as given
    good = tmp_path / "in.wav"
    sf.write(good, np.full(800, 1000, np.int16), 8000)
    caller = make_caller(audio=str(good))
    assert isinstance(caller, CallerAudio) and (caller.read(800) == 1000).all()
    silent = make_caller()
    assert not silent.read(FRAME).any()
    assert isinstance(make_caller("1@0.5"), ScriptedCaller)


def test_seconds_become_samples_once():
    assert parse_key_script("1@1.5")[0].at_sample == seconds_to_samples(1.5) == 12000

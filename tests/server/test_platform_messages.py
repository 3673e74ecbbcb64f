"""The platform's voicemail (``message``) and ``callNotifyV2``, as a platform SDK and its callback see them.

Where the caller's message lies in the recording, silence detection, ``maxTime``; the voices of a notify call.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.audio.library import VoiceLibrary
from engine.config import DEMO_APP_ID, Application, Config
from engine.format import SAMPLE_RATE_HZ, dbm0_to_peak
from engine.testing.platform import ROUTES, Platform, platform_server
from engine.testing.server import call_events, wait_for

SILENCE_S = 1.0


def test_message_reports_where_the_callers_message_lies_in_the_recording(platform: Platform) -> None:
    call_id = platform.dial("13800138002", keys="#@1.5")
    assert platform.post("message", callId=call_id, playFlag=0, voiceStr="tone:0.5", data="vm")["code"] == "000000"
    events = platform.wait(call_id, "messagerpt")
    report = events[-1]
    assert report["data"] == "vm" and report["result"] == "complete"
    assert report["fileName"] == f"{DEMO_APP_ID}/13800138002-{call_id}.wav"
    assert platform.post("message", callId=call_id, playFlag=0, voiceStr="x", key2Stop="x")["msg"].startswith(
        "key2Stop")
    platform.post("disConnect", callId=call_id)
    platform.wait(call_id, "callbillrpt")
    played = sf.read(platform.root / "recordings" / report["fileName"], dtype="int16")[0][:, 0]
    start_ms = (int(np.flatnonzero(played)[0]) - 1) * 1000 // SAMPLE_RATE_HZ  # the tone starts at phase 0
    assert report["startMs"] == start_ms + 500  # the prompt's end
    assert 1500 < report["endMs"] - start_ms < 1600  # key2Stop (#) began at 1.5 s; decided within the latency


def test_call_notify_plays_the_voices_then_hangs_up(platform: Platform, repo_root: Path) -> None:
    voices = [{"voice": "tone:0.3", "flag": 0}, {"voice": "beep.wav", "flag": 1}]
    answer = platform.post("callNotifyV2", called="13800138003", caller="95555", voices=voices, data="n1")
    assert answer["code"] == "000000"
    call_id = answer["callId"]
    events = platform.wait(call_id, "callbillrpt")
    assert [e["event"] for e in events] == ["callstatrpt", "multrpt", "calldisconnectrpt", "callbillrpt"]
    assert events[1]["result"] == "complete" and events[2]["reason"] == "notified"
    beep = sf.info(repo_root / "voices" / "beep.wav").duration
    frames = sf.info(platform.root / "recordings" / events[2]["fileName"]).frames
    assert frames >= (0.3 + beep) * SAMPLE_RATE_HZ - 1
    refused = platform.post("callNotifyV2", called="13800138003", voices=[{"voice": "x", "flag": 2}])
    assert refused["code"] == "108100" and refused["msg"].startswith("voices[0].flag")
    assert platform.post("callNotifyV2", called="13800138003", voices=[])["msg"].startswith("voices")


@pytest.fixture(scope="module")
def quiet_platform(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Platform]:
    """A server whose application ends a message after 1 s of silence; the voice library holds a speaking caller."""
    root = tmp_path_factory.mktemp("voicemail")
    voices = root / "voices"
    voices.mkdir()
    menu = VoiceLibrary(repo_root / "voices").load("menu.flac")  # real speech, at 8 kHz
    speech = np.tile(menu, 4)  # about 14 s of speech (its pauses are much shorter than 1 s)
    sf.write(voices / "speaks-then-silent.wav", np.concatenate([speech, np.zeros(12 * SAMPLE_RATE_HZ, np.int16)]),
             SAMPLE_RATE_HZ, subtype="PCM_16")
    config = Config({DEMO_APP_ID: Application(DEMO_APP_ID, silence_s=SILENCE_S)}, ROUTES)
    with platform_server(root, voices, config=config) as live:
        live.speech = speech
        yield live


def _loud_until(speech: np.ndarray) -> int:
    """The end (samples, frame-aligned) of the last 20 ms frame at or above −45 dBm0."""
    frames = speech[: len(speech) // 160 * 160].astype(np.float64).reshape(-1, 160)
    loud = np.flatnonzero((frames**2).mean(axis=1) >= dbm0_to_peak(-45.0) ** 2 / 2)
    return int(loud[-1] + 1) * 160


def _message_report(platform: Platform, call_id: str) -> dict[str, object]:
    events = wait_for(lambda: [e for e in call_events(platform.client, call_id, None) if e["event"] == "messagerpt"],
                      what="messagerpt")
    return events[0]


def test_a_message_ends_once_the_caller_falls_silent(quiet_platform: Platform) -> None:
    call_id = quiet_platform.dial("13800138003", callerWav="speaks-then-silent.wav")
    answer = quiet_platform.post("message", callId=call_id, playFlag=0, voiceStr="tone:0.5", maxTime=60)
    assert answer["code"] == "000000", answer
    report = _message_report(quiet_platform, call_id)
    quiet_platform.post("disConnect", callId=call_id)
    expected_ms = (_loud_until(quiet_platform.speech) + int(SILENCE_S * SAMPLE_RATE_HZ)) * 1000 // SAMPLE_RATE_HZ
    assert report["startMs"] < expected_ms - 2000, "the prompt should end while the caller speaks"
    assert (report["endReason"], report["result"], report["endMs"]) == ("silence", "stopped", expected_ms)


def test_a_message_to_a_caller_who_never_speaks_ends_one_span_after_the_prompt(quiet_platform: Platform) -> None:
    call_id = quiet_platform.dial("10086")  # the null endpoint: a silent caller
    answer = quiet_platform.post("message", callId=call_id, playFlag=0, voiceStr="tone:0.4", maxTime=60)
    assert answer["code"] == "000000", answer
    report = _message_report(quiet_platform, call_id)
    quiet_platform.post("disConnect", callId=call_id)
    assert report["endReason"] == "silence" and report["endMs"] - report["startMs"] == SILENCE_S * 1000


def test_a_message_without_silence_detection_runs_to_max_time(platform: Platform) -> None:
    call_id = platform.dial("13800138004")  # a silent caller; the platform's application keeps the default 5 s
    answer = platform.post("message", callId=call_id, playFlag=0, voiceStr="tone:0.5", maxTime=2)
    assert answer["code"] == "000000", answer
    report = platform.wait(call_id, "messagerpt")[-1]
    platform.post("disConnect", callId=call_id)
    assert (report["endReason"], report["result"]) == ("maxTime", "complete")
    assert report["endMs"] - report["startMs"] == 1500  # maxTime counts from the prompt's start

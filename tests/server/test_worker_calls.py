"""``null`` and ``wav:`` calls in a media worker process (``[sip] mediaProcesses`` without SIP), by the HTTP API.

A real server (uvicorn, the HTTP client, the worker process started as ``serve`` starts it); keys are decoded back
from the caller's audio by the worker's detector. No sleeps: every wait is on an event or a counter.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from engine.audio.library import VoiceLibrary
from engine.config import DEMO_APP_ID, Application, Config, Route
from engine.dtmf.tones import place_tones
from engine.format import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, dbm0_to_peak, seconds_to_samples
from engine.server.app import ServerSettings, create_app
from engine.server.limits import GuardSettings
from engine.server.worker_pool import start_workers
from engine.testing.browser import serve_process
from engine.testing.guard import register_test_endpoints
from engine.testing.server import FakeSpeaker, LiveServer, call_events, wait_events, wait_for

GETKEY = {"playFlag": 0, "voiceStr": "tone:0.2", "getkey": 1, "maxRevCnt": 2, "totalTime": 10}
CALL_EVENTS = ("callstatrpt", "calldisconnectrpt", "callbillrpt")


def _serve(root: Path, voices: Path, guard: GuardSettings | None = None, config: Config | None = None) -> LiveServer:
    settings = ServerSettings(config=config or Config({DEMO_APP_ID: Application(DEMO_APP_ID)}), voices=voices,
                              recordings=root / "rec", state_dir=root / "state", guard=guard or GuardSettings())
    live = LiveServer(create_app(settings, speaker=FakeSpeaker()))
    start_workers(live.app.state.engine, 1)
    return live


@pytest.fixture
def voices(tmp_path: Path) -> Path:
    folder = tmp_path / "voices"
    folder.mkdir()
    tones = place_tones(seconds_to_samples(3.0), [("7", seconds_to_samples(0.5)), ("3", seconds_to_samples(1.0))],
                        tone_ms=100, level_dbm0=-8)
    sf.write(folder / "keys.wav", tones, SAMPLE_RATE_HZ, subtype="PCM_16")
    return folder


@pytest.fixture
def served(tmp_path: Path, voices: Path) -> Iterator[tuple[LiveServer, httpx.Client]]:
    live = _serve(tmp_path, voices)
    with httpx.Client(base_url=live.url, timeout=10) as client:
        yield live, client
    live.close()


def _dial(client: httpx.Client, called: str = "null", **fields: Any) -> str:
    answer = client.post("/ipcc/call/outCall", json={"appId": DEMO_APP_ID, "called": called, **fields}).json()
    assert answer["code"] == "000000", answer
    return answer["callId"]


def _play(client: httpx.Client, call_id: str, order: dict[str, Any]) -> None:
    answer = client.post("/ipcc/call/multOrders", json={"appId": DEMO_APP_ID, "callId": call_id,
                                                         "orders": [order]}).json()
    assert answer["code"] == "000000", answer


def _worker(live: LiveServer) -> Any:
    return live.app.state.engine.board.workers.workers[0]


def test_scripted_keys_are_decoded_on_the_worker_and_the_call_ends_as_a_local_one(
        served: tuple[LiveServer, httpx.Client]) -> None:
    live, client = served
    call_id = _dial(client, keys="5@0.3,9@0.6")
    sizes = wait_for(lambda: (s := live.app.state.engine.board.sizes())["worker_calls"] and s, 10, "the call added")
    assert sizes["worker_calls"] == 1 and sizes["media_calls"] == 0  # not in the server's own loop
    _play(client, call_id, GETKEY)
    keys, report = wait_events(client, call_id, 2, 20)
    assert (keys["event"], keys["dtmfCode"], keys["endReason"]) == ("ivrreportdtmf", "59", "maxRevCnt")
    assert (report["event"], report["result"]) == ("multrpt", "complete")
    assert client.post("/ipcc/call/disConnect", json={"appId": DEMO_APP_ID, "callId": call_id}).json()["code"] \
        == "000000"
    events = wait_events(client, call_id, 3, 20, CALL_EVENTS)
    assert [(e["event"], e.get("reason")) for e in events] == [
        ("callstatrpt", None), ("calldisconnectrpt", "disconnect"), ("callbillrpt", None)]
    worker = _worker(live)
    wait_for(lambda: worker.placed == 0 and not worker.calls, 10, "the worker's place given back")
    stats = wait_for(lambda: worker.stats.get("ticks", 0) > 0 and worker.stats, 10, "its stats")
    assert {"missed", "recent_p99_lateness_s"} <= stats.keys()  # its timing is the machine's: reported, not asserted
    metrics = client.get("/metrics").text  # the worker's timing over its last 5 s, for an operator's alerts
    assert 'ipcc_workers_recent_p99_lateness_s{worker="0"} ' in metrics


def test_the_caller_audio_of_a_voice_file_is_heard_on_the_worker(served: tuple[LiveServer, httpx.Client]) -> None:
    live, client = served
    worker = _worker(live)
    call_id, again = _dial(client, callerWav="keys.wav"), _dial(client, callerWav="keys.wav")
    wait_for(lambda: worker.calls == {call_id, again}, 10, "both calls on the worker")
    assert worker.prompts.held() == 1  # the file's audio crossed the pipe once (by reference), not once per call
    _play(client, call_id, GETKEY)
    keys = wait_events(client, call_id, 2, 20)[0]
    assert (keys["dtmfCode"], keys["endReason"]) == ("73", "maxRevCnt")  # in the file's audio, from the call's start


def test_a_worker_killed_under_a_call_ends_its_request_and_the_call_then_serves_again(
        served: tuple[LiveServer, httpx.Client]) -> None:
    live, client = served
    call_id = _dial(client)
    _play(client, call_id, {"playFlag": 0, "voiceStr": "tone:30"})
    worker = _worker(live)
    wait_for(lambda: call_id in worker.calls, 10, "the call on its worker")
    worker.kill()
    report = wait_events(client, call_id, 1, 20)[0]
    assert (report["event"], report["result"]) == ("multrpt", "error")
    events = wait_events(client, call_id, 3, 20, CALL_EVENTS)
    assert [(e["event"], e.get("reason")) for e in events][1] == ("calldisconnectrpt", "error")
    wait_for(lambda: worker.alive and worker.restarts == 1, 60, "the worker restarted")
    assert worker.placed == 0
    again = _dial(client, keys="1@0.3")
    _play(client, again, {**GETKEY, "maxRevCnt": 1})
    assert wait_events(client, again, 2, 20)[0]["dtmfCode"] == "1"
    assert call_events(client, call_id, None)[-1]["event"] == "callbillrpt"  # nothing more for the lost call


def test_calls_beyond_the_workers_headroom_are_refused_108102_naming_called(tmp_path: Path, voices: Path) -> None:
    live = _serve(tmp_path, voices, GuardSettings(call_cpu_share=0.4, max_cpu_share=0.9))
    try:
        with httpx.Client(base_url=live.url, timeout=10) as client:
            first, second = _dial(client), _dial(client)
            third = client.post("/ipcc/call/outCall", json={"appId": DEMO_APP_ID, "called": "null"}).json()
            assert third["code"] == "108102" and third["msg"].startswith("called: no media worker has headroom")
            client.post("/ipcc/call/disConnect", json={"appId": DEMO_APP_ID, "callId": first})
            wait_for(lambda: _worker(live).placed == 1, 10, "the first call's place given back")
            assert _dial(client) != second
    finally:
        live.close()


def test_a_wav_call_is_recorded_by_the_worker_into_the_file_the_server_opened(
        served: tuple[LiveServer, httpx.Client], tmp_path: Path) -> None:
    live, client = served
    call_id = _dial(client, called="wav:here", keys="5@0.3")
    wait_for(lambda: _worker(live).calls == {call_id}, 10, "the call on the worker")
    assert live.app.state.engine.board.sizes()["media_calls"] == 0
    _play(client, call_id, {**GETKEY, "maxRevCnt": 1})
    assert wait_events(client, call_id, 2, 20)[0]["dtmfCode"] == "5"
    client.post("/ipcc/call/disConnect", json={"appId": DEMO_APP_ID, "callId": call_id})
    wait_events(client, call_id, 3, 20, CALL_EVENTS)  # calldisconnectrpt: the worker closed the file before
    path = tmp_path / "rec" / DEMO_APP_ID / "here.wav"
    assert path.stat().st_mode & 0o777 == 0o600
    recording, rate = sf.read(str(path), dtype="int16")
    assert rate == SAMPLE_RATE_HZ and recording.shape[1] == 2
    prompt = live.app.state.engine.speaker.synthesize("tone:0.2")
    start = int(np.flatnonzero(recording[:, 0])[0]) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME  # a frame's start
    assert np.array_equal(recording[start:start + len(prompt), 0], prompt)  # played by the worker, sample for sample
    assert np.abs(recording[:, 1]).max() > 1000  # and the caller's key, heard
    again = client.post("/ipcc/call/outCall", json={"appId": DEMO_APP_ID, "called": "wav:here"}).json()
    assert again["code"] == "108100" and again["msg"].startswith("called: the recording")  # never over a file


def test_a_message_on_the_worker_ends_on_the_callers_silence_and_says_where_it_lies_in_the_recording(
        tmp_path: Path, voices: Path, repo_root: Path) -> None:
    # the worker watches the caller's silence (the application's silenceSeconds: 1 s) and tells the server, whose
    # messagerpt places the message by the request's start the worker reported
    speech = VoiceLibrary(repo_root / "voices").load("menu.flac")  # real speech, at 8 kHz
    sf.write(voices / "speaks.wav", np.concatenate([speech, np.zeros(4 * SAMPLE_RATE_HZ, np.int16)]), SAMPLE_RATE_HZ,
             subtype="PCM_16")
    live = _serve(tmp_path, voices, config=Config({DEMO_APP_ID: Application(DEMO_APP_ID, silence_s=1.0)}))
    try:
        with httpx.Client(base_url=live.url, timeout=10) as client:
            call_id = _dial(client, called="wav:vm", callerWav="speaks.wav")
            answer = client.post("/ipcc/call/message", json={"appId": DEMO_APP_ID, "callId": call_id, "playFlag": 0,
                                                              "voiceStr": "tone:0.5", "maxTime": 60}).json()
            assert answer["code"] == "000000", answer
            report = wait_events(client, call_id, 1, 30, ("messagerpt",))[0]
            client.post("/ipcc/call/disConnect", json={"appId": DEMO_APP_ID, "callId": call_id})
            wait_events(client, call_id, 3, 20, CALL_EVENTS)
    finally:
        live.close()
    frames = speech[: len(speech) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME].astype(np.float64).reshape(
        -1, SAMPLES_PER_FRAME)
    loud_until = int(np.flatnonzero((frames**2).mean(axis=1) >= dbm0_to_peak(-45.0) ** 2 / 2)[-1] + 1)
    expected_ms = (loud_until * SAMPLES_PER_FRAME + SAMPLE_RATE_HZ) * 1000 // SAMPLE_RATE_HZ
    assert (report["endReason"], report["result"], report["endMs"]) == ("silence", "stopped", expected_ms)
    played = sf.read(tmp_path / "rec" / DEMO_APP_ID / "vm.wav", dtype="int16")[0][:, 0]
    start = int(np.flatnonzero(played)[0]) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME  # the prompt's first frame
    assert report["startMs"] == start * 1000 // SAMPLE_RATE_HZ + 500  # the prompt's end, in the call's time


def test_a_routed_number_plays_on_the_worker_with_its_routes_caller(tmp_path: Path, voices: Path) -> None:
    # the platform's way: outCall a phone number; the route table says null with a key script, or a recording
    routes = (Route("10086", "null", keys="6@0.3"), Route("*", "wav:{called}-{callId}"))
    live = _serve(tmp_path, voices, config=Config({DEMO_APP_ID: Application(DEMO_APP_ID)}, routes))
    try:
        with httpx.Client(base_url=live.url, timeout=10) as client:
            routed, recorded = _dial(client, called="10086"), _dial(client, called="13800138000")
            wait_for(lambda: _worker(live).calls == {routed, recorded}, 10, "both calls on the worker")
            _play(client, routed, {**GETKEY, "maxRevCnt": 1})
            assert wait_events(client, routed, 2, 20)[0]["dtmfCode"] == "6"
            client.post("/ipcc/call/disConnect", json={"appId": DEMO_APP_ID, "callId": recorded})
            hang_up = wait_events(client, recorded, 3, 20, CALL_EVENTS)[1]
            assert hang_up["fileName"] == f"{DEMO_APP_ID}/13800138000-{recorded}.wav"
            assert sf.info(str(tmp_path / "rec" / hang_up["fileName"])).samplerate == SAMPLE_RATE_HZ
    finally:
        live.close()


def test_serve_with_media_processes_and_no_sip_plays_a_null_call_on_its_worker(tmp_path: Path) -> None:
    # real speech (the serve process's own TTS), the worker started by `serve --media-processes 1`
    with serve_process(tmp_path / "serve", "--media-processes", "1") as url, \
            httpx.Client(base_url=url, timeout=10) as client:
        call_id = _dial(client, keys="8@0.5")
        _play(client, call_id, {**GETKEY, "voiceStr": "Press eight.", "maxRevCnt": 1})
        status = wait_for(lambda: (s := client.get("/ipcc/status").json())["calls"]["worker_calls"] and s, 20,
                          "the call on the worker")
        assert status["calls"]["media_calls"] == 0 and len(status["workers"]) == 1
        keys, report = wait_events(client, call_id, 2, 30)
        assert (keys["dtmfCode"], keys["endReason"], report["result"]) == ("8", "maxRevCnt", "complete")


def test_a_worker_call_is_admitted_and_plays_while_the_servers_own_loop_has_no_headroom(
        served: tuple[LiveServer, httpx.Client]) -> None:
    # the server's own media thread over its budget (a local call burning 30 ms a frame): its loop refuses to
    # start local calls playing, but a call on the worker is judged by the worker's headroom
    live, client = served
    register_test_endpoints()
    # a busy machine may close the server's door for a moment even at rest: try until the burner is let in
    burner = wait_for(lambda: (answer := client.post("/ipcc/call/outCall", json={
        "appId": DEMO_APP_ID, "called": "burn:30"}).json())["code"] == "000000" and answer, 30, "the burner let in")
    wait_for(lambda: not client.get("/ipcc/status").json()["guard"]["headroom"], 30, "the server's loop without room")
    call_id = _dial(client, keys="4@0.3")
    _play(client, call_id, {**GETKEY, "maxRevCnt": 1})
    keys, report = wait_events(client, call_id, 2, 30)
    assert (keys["dtmfCode"], report["result"]) == ("4", "complete")
    client.post("/ipcc/call/disConnect", json={"appId": DEMO_APP_ID, "callId": burner["callId"]})

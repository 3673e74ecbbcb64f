"""The calls page's API for every server call: ``wav:`` calls, ``message`` recordings, calls without a recording.

A live server (uvicorn in a thread, real HTTP), real files. What the API serves is compared with the recording on
disk and with ``render`` of the same request, sample for sample; the book's trace (each request's start, each
event's sample) is checked against the recording it is drawn over.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from engine.admission import check_request, prepare
from engine.audio.library import VoiceLibrary
from engine.config import DEMO_APP_ID, default_config
from engine.core.timeline import Program
from engine.dtmf.channel import detect_keys
from engine.dtmf.tones import dtmf_tone
from engine.format import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, ms_to_samples
from engine.media.render import render
from engine.net.sdp import build_sdp, negotiate, parse_sdp
from engine.testing.alsa import APP, VOICES
from engine.testing.rtp_peer import RtpPeer
from engine.testing.server import FakeSpeaker, LiveServer, wait_events, wait_for
from engine.testing.sip_client import SipClient
from engine.testing.sip_server import SipServer
from engine.testing.web_server import OTHER, two_app_server
from engine.web.calls_api import LIVE_LISTED, recording_path

PROMPT = [{"playFlag": 1, "voiceStr": "welcome.wav"}, {"playFlag": 1, "voiceStr": "beep.wav", "playTime": 2,
                                                       "spaceTime": 1}]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with two_app_server(tmp_path) as live:
        yield live


def post(server: LiveServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{server.url}/ipcc/call/{path}", json={"appId": APP, **body}).json()
    assert answer["code"] == "000000", answer
    return answer


def finished(url: str, call_id: str, app_id: str = APP) -> dict[str, Any]:
    """The call's entry among the finished calls of the server at ``url``, once it is there."""
    def entry() -> dict[str, Any] | None:
        listing = httpx.get(f"{url}/web/calls", params={"appId": app_id}).json()
        return next((c for c in listing["finished"] if c["callId"] == call_id), None)

    return wait_for(entry, 20, f"call {call_id} finished")


def get(base: str, url: str, app_id: str = APP) -> httpx.Response:
    return httpx.get(f"{base}{url}", params={"appId": app_id})


def rendered(orders: list[dict]) -> tuple[Program, np.ndarray]:
    """The program of ``orders`` and what ``render`` plays of it."""
    library = VoiceLibrary(Path(VOICES))
    body = httpx.Request("POST", "/", json={"appId": APP, "callId": "x", "orders": orders}).read()
    request, app = check_request(body, default_config(), library)
    program = prepare(request, library, FakeSpeaker(), app.voice)
    return program, render(program).played


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def test_a_finished_wav_call_lists_its_recording_and_picture_and_its_trace_matches_it(
        server: LiveServer, tmp_path: Path) -> None:
    call_id = post(server, "outCall", {"called": "wav:first"})["callId"]
    post(server, "multOrders", {"callId": call_id, "orders": PROMPT})
    wait_events(httpx.Client(base_url=server.url), call_id, 1)
    post(server, "disConnect", {"callId": call_id})
    entry = finished(server.url, call_id)
    on_disk = tmp_path / "rec" / APP / "first.wav"
    audio, rate = sf.read(on_disk, dtype="int16")
    assert (entry["kind"], rate, audio.shape[1]) == ("wav", SAMPLE_RATE_HZ, 2)
    assert entry["seconds"] == len(audio) / SAMPLE_RATE_HZ  # the call's length is its recording's
    assert [(r["label"], r["download"], r["seconds"]) for r in entry["recordings"]] == [
        ("call (played, caller)", "first.wav", entry["seconds"])]
    assert [e["event"] for e in entry["events"]][:2] == ["callstatrpt", "multrpt"]
    got = get(server.url, entry["recordings"][0]["url"])
    assert got.headers["content-type"] == "audio/wav" and got.content == on_disk.read_bytes()
    picture = get(server.url, entry["picture"])
    assert picture.headers["content-type"] == "image/png" and png_size(picture.content) == (1400, 750)
    assert get(server.url, entry["picture"]).content == picture.content  # drawn once, kept
    # the trace the picture is drawn from lies on the recording: the request played from its start sample
    record = server.app.state.web_book.finished_call(APP, call_id)
    [(start, program)] = record.requests
    prepared, expected = rendered(PROMPT)
    # kept light: each prompt's length, no audio
    assert [(len(p), p.strides) for p in program.prompts] == [(len(p), (0,)) for p in prepared.prompts]
    np.testing.assert_array_equal(audio[start : start + len(expected), 0], expected)
    assert not audio[:start, 0].any()
    [(at, body)] = record.bodies()
    assert (body["event"], body["result"], at) == ("multrpt", "complete", start + prepared.samples_without_keys)


def test_a_message_is_a_recording_of_its_own_cut_from_the_callers_channel(server: LiveServer,
                                                                         tmp_path: Path) -> None:
    call_id = post(server, "outCall", {"called": "wav:voicemail", "keys": "7@1.5,#@3.0"})["callId"]
    post(server, "message", {"callId": call_id, "playFlag": 1, "voiceStr": "beep.wav", "key2Stop": "#"})
    wait_events(httpx.Client(base_url=server.url), call_id, 1, kinds=("messagerpt",))
    post(server, "disConnect", {"callId": call_id})
    entry = finished(server.url, call_id)
    report = next(e for e in entry["events"] if e["event"] == "messagerpt")
    assert report["endReason"] == "key2Stop"
    call, message = entry["recordings"]
    assert (call["download"], message["download"]) == ("voicemail.wav", "voicemail-message-1.wav")
    assert message["label"] == f"message 1 (key2Stop, from {report['startMs'] / 1000:.2f} s)"
    got = get(server.url, message["url"])
    assert got.status_code == 200 and got.headers["content-type"] == "audio/wav"
    (tmp_path / "message.wav").write_bytes(got.content)
    cut, rate = sf.read(tmp_path / "message.wav", dtype="int16")
    audio, _ = sf.read(tmp_path / "rec" / APP / "voicemail.wav", dtype="int16")
    start, end = ms_to_samples(report["startMs"]), ms_to_samples(report["endMs"])
    assert (rate, cut.ndim, len(cut), message["seconds"]) == (SAMPLE_RATE_HZ, 1, end - start, (end - start) / rate)
    np.testing.assert_array_equal(cut, audio[start:end, 1])  # the caller's channel, sample for sample
    assert "".join(k.key for k in detect_keys(cut)) == "7#"  # what the caller said in the message
    assert get(server.url, f"/web/calls/{call_id}/message/2.wav").status_code == 404


def test_a_call_without_a_recording_has_a_picture_and_no_recordings(server: LiveServer) -> None:
    call_id = post(server, "outCall", {"called": "null"})["callId"]
    post(server, "multOrders", {"callId": call_id, "orders": PROMPT[:1]})
    wait_events(httpx.Client(base_url=server.url), call_id, 1)
    post(server, "disConnect", {"callId": call_id})
    entry = finished(server.url, call_id)
    assert (entry["kind"], entry["recordings"]) == ("null", [])
    assert "rtp" not in entry  # no RTP: no figures at all, not null-filled ones
    assert get(server.url, f"/web/calls/{call_id}/recording.wav").status_code == 404
    assert png_size(get(server.url, entry["picture"]).content) == (1400, 750)


def test_another_application_sees_none_of_it_and_no_folder_is_named(server: LiveServer, tmp_path: Path) -> None:
    call_id = post(server, "outCall", {"called": "13800138000"})["callId"]  # routed: wav:{called}-{callId}
    post(server, "disConnect", {"callId": call_id})
    entry = finished(server.url, call_id)
    assert entry["recordings"][0]["download"] == f"13800138000-{call_id}.wav"
    listing = httpx.get(f"{server.url}/web/calls", params={"appId": APP}).text
    assert str(tmp_path) not in listing and "/rec/" not in listing  # events name recordings inside the folder
    nothing = {"live": [], "liveCount": 0, "finished": []}
    assert httpx.get(f"{server.url}/web/calls", params={"appId": OTHER}).json() == nothing
    for url in (entry["recordings"][0]["url"], entry["picture"]):
        refused = get(server.url, url, OTHER)
        assert refused.status_code == 404 and refused.json() == {
            "error": "callId: no finished call of this application" + (" with a recording" if "wav" in url else "")}
    assert httpx.get(f"{server.url}/web/calls", params={"appId": "nobody"}).status_code == 403


def test_the_live_calls_listed_are_bounded_and_counted(server: LiveServer) -> None:
    ids = [post(server, "outCall", {"called": "null"})["callId"] for _ in range(LIVE_LISTED + 1)]
    listing = httpx.get(f"{server.url}/web/calls", params={"appId": APP}).json()
    assert listing["liveCount"] == LIVE_LISTED + 1
    assert len(listing["live"]) == LIVE_LISTED and {c["callId"] for c in listing["live"]} < set(ids)
    assert {c["kind"] for c in listing["live"]} <= {"null", ""}  # "": not ticking yet
    assert not any("rtp" in c for c in listing["live"])  # no SIP call: no RTP figures


def test_a_recording_replaced_by_a_symbolic_link_is_not_served(server: LiveServer, tmp_path: Path) -> None:
    call_id = post(server, "outCall", {"called": "wav:linked"})["callId"]
    post(server, "disConnect", {"callId": call_id})
    entry = finished(server.url, call_id)
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"not for the page")
    path = tmp_path / "rec" / APP / "linked.wav"
    path.unlink()
    path.symlink_to(secret)
    assert get(server.url, f"/web/calls/{call_id}/recording.wav").status_code == 404
    assert recording_path(tmp_path / "rec", f"{APP}/linked.wav") is None
    assert recording_path(tmp_path / "rec", "../secret.wav") is None
    assert entry["recordings"][0]["download"] == "linked.wav"


def test_a_recorded_sip_call_is_listed_with_its_recording_and_picture(tmp_path: Path) -> None:
    server = SipServer(tmp_path / "sip", extra_toml="[sip]\nrecord = true\n")
    client = SipClient(("127.0.0.1", server.sip_port))
    peer = RtpPeer(("127.0.0.1", 0))
    try:
        client.request("INVITE", "c-calls", 1, build_sdp("127.0.0.1", peer.address[1], 1, 1, [0], 101, "sendrecv"))
        ok = client.wait(200, "INVITE")
        client.request("ACK", "c-calls", 1, to_tag=client.to_tag(ok))
        remote = negotiate(parse_sdp(ok.body))
        peer.target = (remote.remote_address, remote.remote_port)
        hub = server.glue.hub
        for key in "47":  # the caller's keys, in band, paced by the engine's ticks
            tone = dtmf_tone(key, 100, -8)
            for k in range(0, len(tone), SAMPLES_PER_FRAME):
                tick = hub.ticks
                peer.send_audio(tone[k : k + SAMPLES_PER_FRAME])
                wait_for(lambda t=tick: hub.ticks > t or None, 10, "a tick")
        client.request("BYE", "c-calls", 2, to_tag=client.to_tag(ok))
        client.wait(200, "BYE")
        call_id = server.glue.lines[0].data["call_id"]
        url = server.live.url
        entry = finished(url, call_id, DEMO_APP_ID)
        on_disk = tmp_path / "sip" / "recordings" / DEMO_APP_ID / f"sip-{call_id}.wav"
        assert (entry["kind"], entry["called"]) == ("sip", "10086")
        [recording] = entry["recordings"]
        assert recording["download"] == on_disk.name
        got = get(url, recording["url"], DEMO_APP_ID)
        assert got.content == on_disk.read_bytes()
        audio, _ = sf.read(on_disk, dtype="int16")
        assert "".join(k.key for k in detect_keys(audio[:, 1])) == "47"  # the caller's direction
        assert entry["seconds"] == len(audio) / SAMPLE_RATE_HZ
        record = server.app.state.web_book.finished_call(DEMO_APP_ID, call_id)
        [(start, program)] = record.requests  # the number's welcome
        assert program.request.orders[0].collect is not None and start < len(audio)
        assert png_size(get(url, entry["picture"], DEMO_APP_ID).content) == (1400, 750)
    finally:
        peer.close()
        client.close()
        server.close()

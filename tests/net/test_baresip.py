"""baresip, a real SIP phone, calls the engine and is called by it: speech heard, keys both ways, hang-ups."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import soundfile as sf

from engine.config import DEMO_APP_ID
from engine.dtmf.tones import place_tones
from engine.format import seconds_to_samples
from engine.net import g711
from engine.testing.baresip import BARESIP, Baresip
from engine.testing.correlation import best_correlation
from engine.testing.phone_calls import check_hello_heard, say_hello_and_disconnect
from engine.testing.server import wait_for
from engine.testing.sip_server import WELCOME, SipServer

pytestmark = pytest.mark.skipif(BARESIP is None, reason="baresip (apt baresip-core) is not installed")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SipServer]:
    server = SipServer(tmp_path / "server")
    yield server
    server.close()


def _mic(path: Path, seconds: float, keys: list[tuple[str, float]]) -> Path:
    audio = place_tones(seconds_to_samples(seconds), [(k, seconds_to_samples(t)) for k, t in keys], tone_ms=100,
                        level_dbm0=-8)
    sf.write(str(path), audio, 8000, subtype="PCM_16")
    return path


@pytest.mark.parametrize("transport", ["", ";transport=tcp"], ids=["udp", "tcp"])
def test_baresip_calls_hears_the_welcome_and_its_two_keys_reach_the_application(server: SipServer,
                                                                                tmp_path: Path, transport: str) -> None:
    phone = Baresip(tmp_path / "phone", _mic(tmp_path / "mic.wav", 8.0, [("3", 2.5)]))
    try:
        phone.command("dial", f"sip:10086@127.0.0.1:{server.sip_port}{transport}")
        phone.wait_event("CALL_ESTABLISHED")
        line = wait_for(lambda: server.glue.lines[0] if server.glue.lines else None, 10, "the line")
        assert line.call.remote.transport == ("tcp" if transport else "udp")
        hub = server.glue.hub
        wait_for(lambda: line.session.slot >= 0 and hub.received[line.session.slot] >= 200 or None, 10,
                 "4 s of the phone's audio")  # the in-band 3 (at 2.5 s) is behind us
        phone.command("sndcode", "9")  # RFC 4733
        keys = wait_for(lambda: [e for e in server.events(line.data["call_id"]) if e["event"] == "ivrreportdtmf"]
                        or None, 15, "ivrreportdtmf")
        assert [(k["dtmfCode"], k["endReason"]) for k in keys] == [("39", "maxRevCnt")]
        assert line.session.events.count == 1
        phone.wait_event("CALL_CLOSED")  # its microphone file ended: the phone hung up
        wait_for(lambda: line.call.end_reason or None, 10, "the engine to see the BYE")
        assert line.call.end_reason == "bye"
        wait_for(lambda: not server.engine.board.live_calls() or None, 10, "the engine call to end")
        stats = wait_for(lambda: line.session.final_stats or None, 10, "its session's final stats")  # closed after
        assert stats["lost"] <= 0 and stats["remote_lost"] in (0, None)  # RFC 3550: duplicates count negative
    finally:
        phone.close()
    heard, rate = sf.read(str(phone.recording("dec")), dtype="int16")
    assert rate == 8000
    prompt = server.engine.speaker.synthesize(WELCOME["orders"][0]["voiceStr"])
    prompt = g711.decode(g711.encode(prompt, g711.PCMU), g711.PCMU)
    first_second = prompt[: seconds_to_samples(1.0)]
    assert best_correlation(heard, first_second) > 0.9  # the phone heard the engine's speech, sample for sample


@pytest.mark.parametrize("transport", ["", ";transport=tcp"], ids=["udp", "tcp"])
def test_out_call_rings_an_auto_answering_baresip_and_disconnect_hangs_it_up(server: SipServer,
                                                                             tmp_path: Path, transport: str) -> None:
    phone = Baresip(tmp_path / "phone", _mic(tmp_path / "mic.wav", 30.0, []))
    try:
        with httpx.Client(base_url=server.live.url, timeout=10) as client:
            answer = client.post("/ipcc/call/outCall", json={"appId": DEMO_APP_ID,
                                                             "called": phone.uri + transport}).json()
            assert answer["code"] == "000000", answer
            call_id = answer["callId"]
            phone.wait_event("CALL_ESTABLISHED")
            line = next(iter(server.glue.phone.lines.values()))
            wait_for(lambda: line.data.get("status") == 200 or None, 10, "the 200 OK")
            assert line.call.remote.transport == ("tcp" if transport else "udp")
            wait_for(lambda: line.session.slot >= 0 and server.glue.hub.received[line.session.slot] >= 25 or None,
                     10, "the phone's audio")
            closed = say_hello_and_disconnect(server, client, phone, call_id)
            assert closed["direction"] == "incoming"
            assert line.call.end_reason == "local"
    finally:
        phone.close()
    check_hello_heard(server, phone, call_id)

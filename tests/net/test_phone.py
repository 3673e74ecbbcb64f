"""SDP offer/answer, hold, INFO keys and bad input against the live server's SIP port, over real UDP."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from engine.config import DEMO_APP_ID
from engine.format import SAMPLES_PER_FRAME
from engine.net.sdp import build_sdp, negotiate, parse_sdp
from engine.net.sip_message import parse_message
from engine.testing.rtp_peer import RtpPeer
from engine.testing.server import wait_for
from engine.testing.sip_client import SipClient
from engine.testing.sip_server import SipServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SipServer]:
    server = SipServer(tmp_path / "server")
    yield server
    server.close()


@pytest.fixture
def client(server: SipServer) -> Iterator[SipClient]:
    client = SipClient(("127.0.0.1", server.sip_port))
    yield client
    client.close()


def _offer(port: int, formats: list[int], direction: str = "sendrecv") -> bytes:
    return build_sdp("127.0.0.1", port, 1, 1, formats, 101, direction)


def test_an_offer_with_nothing_in_common_is_refused_488(server: SipServer, client: SipClient) -> None:
    client.request("INVITE", "c488", 1, build_sdp("127.0.0.1", 7000, 1, 1, [], None).replace(
        b"m=audio 7000 RTP/AVP ", b"m=audio 7000 RTP/AVP 18").replace(b"a=ptime", b"a=rtpmap:18 G729/8000\r\na=ptime"))
    assert client.wait(488, "INVITE").status == 488
    assert server.glue.lines == []


@pytest.mark.parametrize("sdp", [b"v=0\r\nm=audio 99999 RTP/AVP 0\r\n", b"v=0\r\no=x\r\ns=-\r\nt=0 0\r\n"],
                         ids=["absurd port", "no media"])
def test_broken_sdp_is_refused_and_the_server_stays_healthy(server: SipServer, client: SipClient,
                                                            sdp: bytes) -> None:
    client.request("INVITE", "cbad", 1, sdp)
    assert client.wait(488, "INVITE")
    client.request("OPTIONS", "copt", 1)
    assert client.wait(200, "OPTIONS").get("allow")


def test_an_offerless_invite_gets_our_offer_and_takes_the_answer_from_the_ack(server: SipServer,
                                                                              client: SipClient) -> None:
    client.request("INVITE", "c-offerless", 1)
    ok = client.wait(200, "INVITE")
    offer = negotiate(parse_sdp(ok.body))
    assert offer.payload_type == 0 and offer.event_payload_type == 101
    peer = RtpPeer((offer.remote_address, offer.remote_port))
    try:
        client.request("ACK", "c-offerless", 1, _offer(peer.address[1], [8]), to_tag=client.to_tag(ok))
        wait_for(lambda: len(peer.collect().headers) >= 10 or None, 10, "the engine's RTP")
        assert {h[4] for h in peer.received.headers} == {8}  # the answer chose PCMA
    finally:
        peer.close()


def test_hold_stops_the_engines_rtp_and_unhold_resumes_it(server: SipServer, client: SipClient) -> None:
    peer = RtpPeer(("127.0.0.1", 0))
    try:
        client.request("INVITE", "c-hold", 1, _offer(peer.address[1], [0]))
        ok = client.wait(200, "INVITE")
        tag = client.to_tag(ok)
        client.request("ACK", "c-hold", 1, to_tag=tag)
        wait_for(lambda: len(peer.collect().headers) >= 5 or None, 10, "RTP before hold")
        client.request("INVITE", "c-hold", 2, _offer(peer.address[1], [0], "sendonly"), to_tag=tag)
        held = client.wait(200, "INVITE")
        assert b"a=recvonly" in held.body
        client.request("ACK", "c-hold", 2, to_tag=tag)
        hub = server.glue.hub
        slot = server.glue.lines[0].session.slot
        wait_for(lambda: not hub.sending[slot] or None, 10, "hold applied")
        sent, held_at = int(hub.packets_sent[slot]), hub.ticks
        wait_for(lambda: hub.ticks >= held_at + 25 or None, 10, "half a second on hold")
        assert int(hub.packets_sent[slot]) == sent
        client.request("INVITE", "c-hold", 3, _offer(peer.address[1], [0]), to_tag=tag)
        client.wait(200, "INVITE")
        client.request("ACK", "c-hold", 3, to_tag=tag)
        wait_for(lambda: int(hub.packets_sent[slot]) > sent + 5 or None, 10, "RTP after unhold")
        client.request("BYE", "c-hold", 4, to_tag=tag)
        assert client.wait(200, "BYE")
        client.request("BYE", "c-hold", 5, to_tag=tag)
        assert client.wait(481, "BYE")
    finally:
        peer.close()


def test_keys_by_sip_info_reach_the_application(server: SipServer, client: SipClient) -> None:
    peer = RtpPeer(("127.0.0.1", 0))
    try:
        client.request("INVITE", "c-info", 1, _offer(peer.address[1], [0]))
        ok = client.wait(200, "INVITE")
        tag = client.to_tag(ok)
        client.request("ACK", "c-info", 1, to_tag=tag)
        line = wait_for(lambda: server.glue.lines[0] if server.glue.lines else None, 10, "the line")
        remote = negotiate(parse_sdp(ok.body))
        peer.target = (remote.remote_address, remote.remote_port)
        hub = server.glue.hub

        def talk(frames: int) -> None:  # the caller's audio, one packet per engine tick, as a phone sends it
            for _ in range(frames):
                tick = hub.ticks
                peer.send_audio(np.zeros(SAMPLES_PER_FRAME, np.int16))
                wait_for(lambda t=tick: hub.ticks > t or None, 10, "a tick")

        wait_for(lambda: server.engine.board.sizes()["held_requests"] or None, 20, "the welcome to be queued")
        client.send_info_keys("c-info", 2, "47", tag, lambda: talk(15))
        talk(50)
        keys = wait_for(lambda: [e for e in server.events(line.data["call_id"]) if e["event"] == "ivrreportdtmf"]
                        or None, 15, "ivrreportdtmf")
        assert keys[0]["dtmfCode"] == "47"
    finally:
        peer.close()


def test_a_source_outside_the_allow_list_gets_nothing_and_digest_guards_invites(tmp_path: Path) -> None:
    server = SipServer(tmp_path / "guarded", extra_toml='[sip]\nallow = ["10.0.0.0/8"]\n')
    client = SipClient(("127.0.0.1", server.sip_port))
    try:
        client.request("OPTIONS", "c-refused", 1)
        counters = server.glue.phone.agent.counters
        wait_for(lambda: counters["refused_source"] == 1 or None, 10, "the refusal")
        client.sock.setblocking(False)
        with pytest.raises(BlockingIOError):  # refused before any answer was made
            client.sock.recv(65536)
    finally:
        client.close()
        server.close()
    server = SipServer(tmp_path / "auth", extra_toml='[sip]\nauth = true\nusers = { alice = "pw" }\n')
    client = SipClient(("127.0.0.1", server.sip_port))
    try:
        client.request("INVITE", "c-auth", 1, _offer(7000, [0]))
        challenge = client.wait(401, "INVITE")
        assert "SHA-256" in challenge.get("www-authenticate") and server.glue.lines == []
    finally:
        client.close()
        server.close()


def test_a_recorded_sip_call_holds_both_directions(tmp_path: Path) -> None:
    import soundfile as sf

    from engine.net import g711

    server = SipServer(tmp_path / "rec", extra_toml="[sip]\nrecord = true\n")
    client = SipClient(("127.0.0.1", server.sip_port))
    peer = RtpPeer(("127.0.0.1", 0))
    try:
        client.request("INVITE", "c-rec", 1, _offer(peer.address[1], [0]))
        ok = client.wait(200, "INVITE")
        tag = client.to_tag(ok)
        client.request("ACK", "c-rec", 1, to_tag=tag)
        remote = negotiate(parse_sdp(ok.body))
        peer.target = (remote.remote_address, remote.remote_port)
        hub = server.glue.hub
        tone = (6000 * np.sin(2 * np.pi * 700 * np.arange(50 * SAMPLES_PER_FRAME) / 8000)).astype(np.int16)
        for k in range(50):  # one second of the caller's 700 Hz, one packet per engine tick
            tick = hub.ticks
            peer.send_audio(tone[k * SAMPLES_PER_FRAME : (k + 1) * SAMPLES_PER_FRAME])
            wait_for(lambda t=tick: hub.ticks > t or None, 10, "a tick")
        client.request("BYE", "c-rec", 2, to_tag=tag)
        client.wait(200, "BYE")
        wait_for(lambda: not server.engine.board.live_calls() or None, 10, "the call to end")
        call_id = server.glue.lines[0].data["call_id"]
        ended = next(e for e in server.wait_received(call_id, "calldisconnectrpt") if e["event"] == "calldisconnectrpt")
        assert ended["fileName"] == f"{DEMO_APP_ID}/sip-{call_id}.wav"  # in the application's folder
        recording = tmp_path / "rec" / "recordings" / ended["fileName"]
        modes = [stat.S_IMODE(path.stat().st_mode) for path in (recording.parent.parent, recording.parent, recording)]
        assert modes == [0o700, 0o700, 0o600]  # a caller's voice: the recordings' folders and the file private
        audio, rate = sf.read(str(recording), dtype="int16")
        assert rate == 8000 and audio.shape[1] == 2
        expected = g711.decode(g711.encode(tone, g711.PCMU), g711.PCMU)
        heard = audio[:, 1]
        frames = {expected[k * SAMPLES_PER_FRAME : (k + 1) * SAMPLES_PER_FRAME].tobytes(): k for k in range(50)}
        found = [frames[heard[i : i + SAMPLES_PER_FRAME].tobytes()]
                 for i in range(0, len(heard) - SAMPLES_PER_FRAME + 1, SAMPLES_PER_FRAME)
                 if heard[i : i + SAMPLES_PER_FRAME].tobytes() in frames]
        # the caller's frames, sample for sample and in order (a frame late under load may be concealed)
        assert len(found) >= 45 and found == sorted(found)
        assert np.sqrt(np.mean(audio[:, 0].astype(float) ** 2)) > 300  # the welcome's speech on channel 1
    finally:
        peer.close()
        client.close()
        server.close()


def test_out_call_to_a_registered_softphone_sends_it_an_invite(server: SipServer, client: SipClient) -> None:
    with httpx.Client(base_url=server.live.url, timeout=10) as http:
        refused = http.post("/ipcc/call/outCall", json={"appId": DEMO_APP_ID, "called": "sip:alice"}).json()
        assert refused["code"] == "108100" and "not registered" in refused["msg"]
        client.request("REGISTER", "c-reg", 1, user="alice")
        assert client.wait(200, "REGISTER")
        answer = http.post("/ipcc/call/outCall", json={"appId": DEMO_APP_ID, "called": "sip:alice"}).json()
        assert answer["code"] == "000000", answer
    client.sock.settimeout(10)
    invite = None
    while invite is None:  # the engine's INVITE, after whatever else arrives first
        message = parse_message(client.sock.recv(65536))
        invite = message if message.method == "INVITE" else None
    assert invite.uri == f"sip:alice@{client.address[0]}:{client.address[1]}"
    assert b"m=audio" in invite.body

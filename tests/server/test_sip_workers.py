"""``[sip] mediaProcesses = 2``: SIP calls' media in two worker processes behind one SIP address.

Real peers: sipp (in-band keys, RFC 2833 keys, a load of calls spread over both workers, a worker SIGKILLed
under its calls) and baresip (the welcome heard, RFC 4733 keys, multOrders from the application, hang-up both
ways). No sleeps: every wait is on an event, a line of the phone, or a counter.
"""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from engine.config import DEMO_APP_ID
from engine.dtmf.tones import place_tones
from engine.format import SAMPLES_PER_FRAME, seconds_to_samples
from engine.net import g711
from engine.net.sdp import build_sdp, negotiate, parse_sdp
from engine.server.limits import GuardSettings
from engine.testing.baresip import BARESIP, Baresip
from engine.testing.correlation import best_correlation
from engine.testing.phone_calls import HELLO, check_hello_heard, say_hello_and_disconnect
from engine.testing.rtp_peer import RtpPeer
from engine.testing.server import wait_for
from engine.testing.sip_client import SipClient
from engine.testing.sip_server import WELCOME, SipServer
from engine.testing.sipp import SIPP, Sipp, media_port, rfc2833_call, run_sipp, uac_scenario, write_ulaw

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp (apt sip-tester) is not installed")
WORKERS_TOML = "[sip]\nmediaProcesses = 2\nrecord = true\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SipServer]:
    server = SipServer(tmp_path / "server", extra_toml=WORKERS_TOML)
    yield server
    server.close()



def _events(server: SipServer, line_index: int, kind: str) -> list[dict[str, Any]]:
    call_id = server.glue.lines[line_index].data["call_id"]
    return [e for e in server.events(call_id) if e["event"] == kind]


def _sipp_keys(server: SipServer, tmp_path: Path, calls: int = 1, pause_ms: int = 4500) -> Sipp:
    tmp_path.mkdir(parents=True, exist_ok=True)
    audio = place_tones(seconds_to_samples(4.0), [("4", seconds_to_samples(1.5)), ("2", seconds_to_samples(2.5))],
                        tone_ms=100, level_dbm0=-8)
    stream = write_ulaw(tmp_path / "caller.ulaw", audio)
    scenario = uac_scenario(tmp_path / "uac.xml", pause_ms=pause_ms, stream=stream)
    return Sipp(["-sf", str(scenario), f"127.0.0.1:{server.sip_port}", "-s", "10086", "-i", "127.0.0.1",
                 "-m", str(calls), "-l", str(calls), "-r", "20", "-mp", media_port(), "-timeout", "60"], tmp_path)


def test_two_workers_start_with_their_own_rtp_ports_and_the_status_shows_them(server: SipServer) -> None:
    workers = server.glue.workers
    assert workers is not None and len(workers.workers) == 2
    ports = {w.port for w in workers.workers}
    pids = {w.pid for w in workers.workers}
    assert len(ports) == 2 and len(pids) == 2 and server.glue.phone.address[1] not in ports
    status = httpx.get(f"{server.live.url}/ipcc/status", timeout=10).json()
    assert [w["port"] for w in status["workers"]] == [w.port for w in workers.workers]
    wait_for(lambda: all(w.stats.get("ticks", 0) > 0 for w in workers.workers) or None, 10, "the workers' stats")
    metrics = httpx.get(f"{server.live.url}/metrics", timeout=10).text
    for worker in workers.workers:
        assert f'ipcc_workers_send_p99_s{{worker="{worker.index}"}} ' in metrics
        assert f'ipcc_workers_alive{{worker="{worker.index}"}} 1.0' in metrics


def test_a_sipp_caller_on_a_worker_hears_the_welcome_and_its_in_band_keys_reach_the_application(
        server: SipServer, tmp_path: Path) -> None:
    result = _sipp_keys(server, tmp_path).finish(60)
    assert result.successful == 1 and result.failed == 0, result.output[-2000:]
    keys = wait_for(lambda: _events(server, 0, "ivrreportdtmf") or None, 10, "ivrreportdtmf")
    assert [(k["dtmfCode"], k["endReason"]) for k in keys] == [("42", "maxRevCnt")]
    line = server.glue.lines[0]
    assert line.call.end_reason == "bye"
    call_id = line.data["call_id"]
    events = server.wait_received(call_id, "callbillrpt")
    kinds = [(e["event"], e.get("result"), e.get("reason")) for e in events]
    assert kinds == [("incomingcall", None, None), ("callstatrpt", None, None), ("ivrreportdtmf", None, None),
                     ("multrpt", "complete", None), ("calldisconnectrpt", None, "remote"), ("callbillrpt", None, None)]
    stats = wait_for(lambda: line.session.final_stats or None, 10, "the worker's session stats")
    assert stats["received"] == 200 and stats["lost"] == 0 and int(stats["sent"]) >= 200
    recording, rate = sf.read(str(_recording(server, call_id)), dtype="int16")
    assert rate == 8000 and recording.shape[1] == 2
    prompt = server.engine.speaker.synthesize(WELCOME["orders"][0]["voiceStr"])[: seconds_to_samples(1.0)]
    start = int(np.flatnonzero(recording[:, 0])[0])  # the welcome starts on a frame once the ACK came
    assert start % SAMPLES_PER_FRAME == 0 and prompt[0] != 0
    assert np.array_equal(recording[start:start + len(prompt), 0], prompt)  # the worker played it, sample for sample
    assert np.abs(recording[:, 1]).max() > 1000  # and recorded the caller's keys


def _recording(server: SipServer, call_id: str) -> Path:
    found = list(Path(server.engine.settings.recordings).rglob(f"sip-{call_id}.wav"))
    assert len(found) == 1
    assert [stat.S_IMODE(p.stat().st_mode) for p in (found[0].parent, found[0])] == [0o700, 0o600]  # the worker's
    return found[0]


def test_rfc2833_keys_reach_a_call_on_a_worker(server: SipServer, tmp_path: Path) -> None:
    result = rfc2833_call(server.sip_port, tmp_path)
    assert result.successful == 1, result.output[-2000:]
    session = server.glue.lines[0].session
    stats = wait_for(lambda: session.final_stats or None, 10, "the call to end on its worker")
    assert stats["events"] == 1  # one RFC 2833 key, however many packets carried it


def test_calls_spread_over_both_workers_and_every_call_gets_its_keys(server: SipServer, tmp_path: Path) -> None:
    calls = 20
    result = _sipp_keys(server, tmp_path, calls).finish(120)
    assert result.successful == calls and result.failed == 0, result.output[-2000:]
    assert len(server.glue.lines) == calls
    wait_for(lambda: not server.engine.board.live_calls() or None, 20, "every call to end")
    placed = [line.session.placed_on for line in server.glue.lines]
    assert abs(placed.count(0) - placed.count(1)) <= calls // 2 and set(placed) == {0, 1}  # both carried calls
    assert all(w.stats["rtp_wrong_ssrc"] == 0 for w in server.glue.workers.workers)
    for i in range(calls):
        keys = _events(server, i, "ivrreportdtmf")
        assert [k["dtmfCode"] for k in keys] == ["42"], i


def test_a_worker_killed_under_its_calls_ends_them_with_error_and_a_new_call_after_it_works(
        server: SipServer, tmp_path: Path) -> None:
    workers = server.glue.workers
    long_call = _sipp_keys(server, tmp_path / "long", calls=2, pause_ms=60_000)  # two calls: one on each worker
    try:
        wait_for(lambda: len(server.engine.board.live_calls()) == 2 or None, 20, "two live calls")
        victim = workers.workers[0]
        old_pid = victim.pid
        on_victim = [line for line in server.glue.lines if line.session.placed_on == 0]
        assert len(on_victim) == 1
        call_id = on_victim[0].data["call_id"]
        wait_for(lambda: any(e["event"] == "callstatrpt" for e in server.received(call_id)) or None, 10, "answered")
        victim.kill()
        events = server.wait_received(call_id, "callbillrpt")
        kinds = [(e["event"], e.get("result"), e.get("reason")) for e in events if e["event"] != "incomingcall"]
        assert kinds[-3:] == [("multrpt", "error", None), ("calldisconnectrpt", None, "error"),
                              ("callbillrpt", None, None)], kinds
        wait_for(lambda: victim.pid != old_pid and victim.port or None, 60, "the worker restarted")
        assert victim.restarts == 1 and server.engine.board.sizes()["worker_calls_lost"] == 1
        wait_for(lambda: on_victim[0].call.end_reason or None, 10, "the BYE to the killed worker's caller")
        assert len(server.engine.board.live_calls()) == 1  # the other worker's call carries on
    finally:
        long_call.kill()
    result = _sipp_keys(server, tmp_path / "after", calls=2).finish(60)  # the least loaded: the new worker
    assert result.successful == 2 and result.failed == 0, result.output[-2000:]
    for i in (2, 3):
        keys = wait_for(lambda i=i: _events(server, i, "ivrreportdtmf") or None, 10, "ivrreportdtmf")
        assert [k["dtmfCode"] for k in keys] == ["42"]
    assert server.glue.lines[2].session.placed_on == 0


@pytest.mark.skipif(BARESIP is None, reason="baresip (apt baresip-core) is not installed")
def test_baresip_on_a_worker_hears_the_welcome_sends_rfc4733_keys_and_gets_multorders(
        server: SipServer, tmp_path: Path) -> None:
    mic = tmp_path / "mic.wav"
    sf.write(str(mic), np.zeros(seconds_to_samples(30.0), dtype=np.int16), 8000, subtype="PCM_16")
    phone = Baresip(tmp_path / "phone", mic)
    try:
        phone.command("dial", f"sip:10086@127.0.0.1:{server.sip_port}")
        phone.wait_event("CALL_ESTABLISHED")
        line = wait_for(lambda: server.glue.lines[0] if server.glue.lines else None, 10, "the line")
        call_id = line.data["call_id"]
        wait_for(lambda: any(e["event"] == "callstatrpt" for e in server.received(call_id)) or None, 10, "answered")
        worker = server.glue.workers.workers[line.session.placed_on]
        wait_for(lambda: worker.stats.get("rtp_received", 0) >= 100 or None, 10, "2 s of the phone's packets")
        phone.command("sndcode", "6")  # RFC 4733, twice: the welcome collects two keys
        phone.command("sndcode", "8")
        keys = wait_for(lambda: _events(server, 0, "ivrreportdtmf") or None, 20, "ivrreportdtmf")
        assert [(k["dtmfCode"], k["endReason"]) for k in keys] == [("68", "maxRevCnt")]
        with httpx.Client(base_url=server.live.url, timeout=10) as client:
            say_hello_and_disconnect(server, client, phone, call_id)
        assert wait_for(lambda: line.call.end_reason or None, 10, "the BYE sent") == "local"
    finally:
        phone.close()
    events = server.wait_received(call_id, "callbillrpt")
    kinds = [(e["event"], e.get("result"), e.get("reason")) for e in events]
    assert kinds == [("incomingcall", None, None), ("callstatrpt", None, None), ("ivrreportdtmf", None, None),
                     ("multrpt", "complete", None), ("multrpt", "complete", None),
                     ("calldisconnectrpt", None, "disconnect"), ("callbillrpt", None, None)]
    heard, _ = sf.read(str(phone.recording("dec")), dtype="int16")
    for text in (WELCOME["orders"][0]["voiceStr"], HELLO):
        speech = server.engine.speaker.synthesize(text)
        reference = g711.decode(g711.encode(speech, g711.PCMU), g711.PCMU)[:4000]
        assert best_correlation(heard, reference) > 0.9, text  # heard sample for sample, through the worker




def test_a_reinvite_moves_a_workers_stream_and_sip_info_keys_reach_the_application(server: SipServer) -> None:
    client = SipClient(("127.0.0.1", server.sip_port))
    first, second = RtpPeer(("127.0.0.1", 0)), RtpPeer(("127.0.0.1", 0))
    try:
        client.request("INVITE", "c-move", 1, build_sdp("127.0.0.1", first.address[1], 1, 1, [0], 101))
        ok = client.wait(200, "INVITE")
        tag = client.to_tag(ok)
        client.request("ACK", "c-move", 1, to_tag=tag)
        remote = negotiate(parse_sdp(ok.body))
        assert remote.remote_port != server.sip_port
        wait_for(lambda: len(first.collect().headers) >= 5 or None, 10, "the worker's RTP at the first address")
        client.request("INVITE", "c-move", 2, build_sdp("127.0.0.1", second.address[1], 1, 2, [0], 101), to_tag=tag)
        moved = client.wait(200, "INVITE")
        assert negotiate(parse_sdp(moved.body)).remote_port == remote.remote_port  # our address is kept
        client.request("ACK", "c-move", 2, to_tag=tag)
        wait_for(lambda: len(second.collect().headers) >= 5 or None, 10, "the worker's RTP at the new address")
        second.target = (remote.remote_address, remote.remote_port)

        def talk(packets: int) -> None:  # the caller's audio, one packet per packet heard, as a phone paces it
            for _ in range(packets):
                heard = len(second.received.headers)
                wait_for(lambda h=heard: len(second.collect().headers) > h or None, 10, "a packet")
                second.send_audio(np.zeros(SAMPLES_PER_FRAME, np.int16))

        line = server.glue.lines[0]
        client.send_info_keys("c-move", 3, "47", tag, lambda: talk(15))
        talk(50)
        keys = wait_for(lambda: _events(server, 0, "ivrreportdtmf") or None, 15, "ivrreportdtmf")
        assert keys[0]["dtmfCode"] == "47"
        client.request("BYE", "c-move", 5, to_tag=tag)
        assert client.wait(200, "BYE")
        events = server.wait_received(line.data["call_id"], "callbillrpt")
        assert [e.get("reason") for e in events if e["event"] == "calldisconnectrpt"] == ["remote"]
    finally:
        first.close()
        second.close()
        client.close()


def test_serve_refuses_a_bad_media_processes_option() -> None:
    bad = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--media-processes", "65"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0 and "--media-processes: must be 0-64, got '65'" in bad.stderr


@pytest.mark.skipif(BARESIP is None, reason="baresip (apt baresip-core) is not installed")
def test_out_call_to_baresip_plays_on_a_worker_and_disconnect_hangs_it_up(server: SipServer, tmp_path: Path) -> None:
    mic = tmp_path / "mic.wav"
    sf.write(str(mic), np.zeros(seconds_to_samples(30.0), dtype=np.int16), 8000, subtype="PCM_16")
    phone = Baresip(tmp_path / "phone", mic)
    try:
        with httpx.Client(base_url=server.live.url, timeout=10) as client:
            answer = client.post("/ipcc/call/outCall", json={"appId": DEMO_APP_ID, "called": phone.uri}).json()
            assert answer["code"] == "000000", answer
            call_id = answer["callId"]
            phone.wait_event("CALL_ESTABLISHED")
            line = next(iter(server.glue.phone.lines.values()))
            wait_for(lambda: line.data.get("status") == 200 or None, 10, "the 200 OK")
            assert line.session.placed_on in (0, 1)
            say_hello_and_disconnect(server, client, phone, call_id)
    finally:
        phone.close()
    check_hello_heard(server, phone, call_id)


def test_a_call_past_every_workers_headroom_gets_503_and_an_out_call_108102(tmp_path: Path) -> None:
    """Each call projected at 25 % of a core, 60 % at most: two calls a worker; then INVITE 503, outCall 108102."""
    guard = GuardSettings(max_cpu_share=0.6, call_cpu_share=0.25, min_real_time=1e-6, max_lateness_s=3600.0)
    server = SipServer(tmp_path / "server", extra_toml=WORKERS_TOML, guard=guard)
    for name in ("held", "fifth"):
        (tmp_path / name).mkdir()
    held = Sipp(["-sn", "uac", f"127.0.0.1:{server.sip_port}", "-s", "10086", "-i", "127.0.0.1", "-m", "4",
                 "-l", "4", "-r", "20", "-d", "8000", "-timeout", "60"], tmp_path / "held")
    try:
        wait_for(lambda: len(server.engine.board.live_calls()) == 4 or None, 30, "four calls up")
        assert sorted(line.session.placed_on for line in server.glue.lines) == [0, 0, 1, 1]
        refused = run_sipp(["-sn", "uac", f"127.0.0.1:{server.sip_port}", "-s", "10086", "-i", "127.0.0.1", "-m",
                            "1", "-l", "1", "-timeout", "30"], tmp_path / "fifth")
        assert (refused.successful, refused.failed) == (0, 1)
        assert "503" in (tmp_path / "fifth" / "sipp-errors.log").read_text(errors="replace")
        answer = httpx.post(f"{server.live.url}/ipcc/call/outCall", json={
            "appId": DEMO_APP_ID, "called": "sip:bob@127.0.0.1:5999"}, timeout=10).json()
        assert answer["code"] == "108102" and "no media worker has headroom" in answer["msg"], answer
        assert len(server.glue.lines) == 4  # the refused INVITE made no line
        result = held.finish()
        assert (result.successful, result.failed) == (4, 0), result.output[-2000:]
    finally:
        held.kill()
        server.close()

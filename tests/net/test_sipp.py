"""sipp, a real SIP peer, calls the engine and is called by it, over UDP and TCP.

It calls: welcome prompt, keys in-band and by RFC 2833, hang-up, load. It is called and rings (a callee that
holds its 180): the application's ``disConnect`` sends CANCEL (``called`` = ``sip:...;transport=tcp``: over a
TCP connection the engine opens to sipp ``-t t1``); sipp's scenario passes only if it got the CANCEL,
answered it and the INVITE ``487``, and got the ACK of the ``487``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from engine.config import DEMO_APP_ID
from engine.dtmf.tones import place_tones
from engine.format import seconds_to_samples
from engine.testing.platform import check_against_table, markdown_tables
from engine.testing.server import wait_for
from engine.testing.sip_server import SipServer
from engine.testing.sipp import (
    SIPP,
    Sipp,
    media_port,
    rfc2833_call,
    ringing_uas_scenario,
    run_sipp,
    uac_scenario,
    write_ulaw,
)

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp (apt sip-tester) is not installed")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SipServer]:
    server = SipServer(tmp_path / "server")
    yield server
    server.close()




def _keys_of(server: SipServer, line_index: int = 0) -> list[dict]:
    call_id = server.glue.lines[line_index].data["call_id"]
    return [e for e in server.events(call_id) if e["event"] == "ivrreportdtmf"]


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_a_sipp_caller_hears_the_welcome_and_its_in_band_keys_reach_the_application(
        server: SipServer, tmp_path: Path, transport: str) -> None:
    audio = place_tones(seconds_to_samples(4.0), [("4", seconds_to_samples(1.5)), ("2", seconds_to_samples(2.5))],
                        tone_ms=100, level_dbm0=-8)
    stream = write_ulaw(tmp_path / "caller.ulaw", audio)
    scenario = uac_scenario(tmp_path / "uac.xml", pause_ms=4500, stream=stream)
    result = run_sipp(["-sf", str(scenario), f"127.0.0.1:{server.sip_port}", "-s", "10086", "-i", "127.0.0.1",
                       "-m", "1", "-l", "1", "-mp", media_port(), "-timeout", "30", "-t", transport], tmp_path)
    assert result.successful == 1 and result.failed == 0, result.output[-2000:]
    tcp = server.glue.phone.transport.tcp
    assert tcp is not None
    # sipp -t t1: every message of the call on one connection (sipp opened it; the engine dialled none)
    assert (tcp.counters["tcp_opened"], tcp.counters["tcp_dialled"]) == ((1, 0) if transport == "t1" else (0, 0))
    assert server.glue.lines[0].call.remote.transport == ("tcp" if transport == "t1" else "udp")
    keys = wait_for(lambda: _keys_of(server) or None, 10, "ivrreportdtmf")
    assert [(k["dtmfCode"], k["endReason"]) for k in keys] == [("42", "maxRevCnt")]
    line = server.glue.lines[0]
    assert line.call.end_reason == "bye"
    wait_for(lambda: not server.engine.board.live_calls() or None, 10, "the call to end")
    stats = wait_for(lambda: line.session.final_stats or None, 10, "its session's final stats")  # closed after
    assert stats["received"] == 200 and stats["lost"] == 0  # 4 s of 20 ms packets from sipp
    assert int(stats["sent"]) >= 200  # the engine sent the welcome for as long as the call lasted


def test_rfc2833_keys_replayed_from_sipps_pcap_from_port_0(server: SipServer, tmp_path: Path) -> None:
    result = rfc2833_call(server.sip_port, tmp_path)
    assert result.successful == 1, result.output[-2000:]
    line = server.glue.lines[0]
    assert line.session.events.count == 1
    assert line.session.remote[1] != 0  # never latched to port 0


def test_sipp_hang_up_ends_the_engine_call(server: SipServer, tmp_path: Path) -> None:
    result = run_sipp(["-sn", "uac", f"127.0.0.1:{server.sip_port}", "-s", "10086", "-i", "127.0.0.1",
                       "-m", "3", "-l", "3", "-d", "300", "-timeout", "30"], tmp_path)
    assert result.successful == 3 and result.failed == 0, result.output[-2000:]
    wait_for(lambda: not server.engine.board.live_calls() or None, 10, "every call to end")
    assert [line.call.end_reason for line in server.glue.lines] == ["bye"] * 3
    for line in server.glue.lines:  # the application's receiver: each call's events, in order
        events = server.wait_received(line.data["call_id"], "callbillrpt")
        calls = [e for e in events if e["event"] in ("incomingcall", "callstatrpt", "calldisconnectrpt",
                                                     "callbillrpt")]
        assert [(e["event"], e.get("ansCode"), e.get("reason")) for e in calls] == [
            ("incomingcall", None, None), ("callstatrpt", 0, None), ("calldisconnectrpt", None, "remote"),
            ("callbillrpt", None, None)]


def test_load_200_concurrent_calls_with_media_and_keys(server: SipServer, tmp_path: Path) -> None:
    audio = place_tones(seconds_to_samples(3.0), [("4", seconds_to_samples(1.0)), ("2", seconds_to_samples(2.0))],
                        tone_ms=100, level_dbm0=-8)
    stream = write_ulaw(tmp_path / "caller.ulaw", audio)
    scenario = uac_scenario(tmp_path / "uac.xml", pause_ms=3500, stream=stream)
    result = run_sipp(["-sf", str(scenario), f"127.0.0.1:{server.sip_port}", "-s", "10086", "-i", "127.0.0.1",
                       "-m", "200", "-l", "200", "-r", "200", "-mp", media_port(), "-timeout", "60"], tmp_path, 90)
    assert result.successful == 200 and result.failed == 0, result.output[-2000:]
    wait_for(lambda: len(server.glue.lines) == 200 and all(_keys_of(server, i) for i in range(200)) or None, 20,
             "every call's keys")
    codes = [_keys_of(server, i)[0]["dtmfCode"] for i in range(200)]
    assert codes == ["42"] * 200
    assert np.all([line.call.end_reason == "bye" for line in server.glue.lines])


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_disconnect_of_a_ringing_out_call_sends_cancel_and_reports_a_call_ended_before_answer(
        server: SipServer, tmp_path: Path, repo_root: Path, transport: str) -> None:
    callee = Sipp(["-sf", str(ringing_uas_scenario(tmp_path / "uas.xml")), "-i", "127.0.0.1", "-m", "1",
                   "-t", transport, "-timeout", "60"], tmp_path)
    try:
        wait_for(lambda: callee.listening(transport == "t1"), 30, "sipp to listen")
        called = f"sip:bob@127.0.0.1:{callee.port}" + (";transport=tcp" if transport == "t1" else "")
        with httpx.Client(base_url=server.live.url, timeout=10) as http:
            answer = http.post("/ipcc/call/outCall", json={"appId": DEMO_APP_ID, "called": called,
                                                           "data": "d"}).json()
            assert answer["code"] == "000000", answer
            call_id = answer["callId"]
            lines = server.glue.phone.lines
            line = wait_for(lambda: next((li for li in lines.values() if li.data.get("status") == 180), None),
                            30, "the phone to ring")
            assert not server.engine.board.is_live(call_id)  # ringing: not a live call yet
            body = {"appId": DEMO_APP_ID, "callId": call_id}
            assert http.post("/ipcc/call/disConnect", json=body).json()["code"] == "000000"
            assert http.post("/ipcc/call/disConnect", json=body).json()["code"] == "108105"  # once
        result = callee.finish(60)
    finally:
        callee.kill()
    assert result.successful == 1 and result.failed == 0, result.output[-2000:]
    assert line.call.end_reason == "local" and line.call.extra["cancelled"]
    assert line.call.remote.transport == ("tcp" if transport == "t1" else "udp")
    tables = markdown_tables((repo_root / "README.md").read_text(encoding="utf-8"))
    events = [e for e in server.wait_received(call_id, "callbillrpt") if check_against_table(e, tables)]
    assert [e["event"] for e in events] == ["callstatrpt", "calldisconnectrpt", "callbillrpt"]
    stat, gone, bill = events
    assert (stat["ansCode"], stat["dir"], stat["called"], stat["data"]) == (2, "out", called, "d")
    assert (gone["reason"], gone["hangUpBy"], gone["duration"], bill["duration"]) == ("disconnect", "app", 0, 0)
    wait_for(lambda: not server.glue.phone.lines or None, 10, "the line to be forgotten")

"""``disConnect`` of an ``outCall`` still ringing: CANCEL to the phone (a real sipp callee that holds its 180).

Over UDP and over TCP (``called`` = ``sip:...;transport=tcp``: the engine dials a TCP connection to sipp
``-t t1``). sipp's scenario passes only if it got the CANCEL, answered it and the INVITE ``487``, and got the
ACK of the ``487``; the application gets the events of a call it ended before answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.config import DEMO_APP_ID
from engine.testing.platform import check_against_table, markdown_tables
from engine.testing.server import wait_for
from engine.testing.sip_server import SipServer
from engine.testing.sipp import SIPP, Sipp, ringing_uas_scenario

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp (apt sip-tester) is not installed")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SipServer]:
    server = SipServer(tmp_path / "server")
    yield server
    server.close()


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


def test_with_tcp_off_an_out_call_over_tcp_is_refused_naming_called(tmp_path: Path) -> None:
    server = SipServer(tmp_path / "udp-only", extra_toml="[sip]\ntcp = false\n")
    try:
        assert server.glue.phone.transport.tcp is None
        body = {"appId": DEMO_APP_ID, "called": "sip:bob@127.0.0.1:5999;transport=tcp"}
        answer = httpx.post(f"{server.live.url}/ipcc/call/outCall", json=body, timeout=10).json()
        assert answer["code"] == "108100" and answer["msg"].startswith("called") and "TCP" in answer["msg"]
    finally:
        server.close()

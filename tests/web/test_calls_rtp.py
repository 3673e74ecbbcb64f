"""``GET /web/calls``: a SIP call's ``rtp`` figures, live and finished, in the server's media thread and on a worker.

Real peers: sipp streams the caller's audio (``rtp_stream``, one μ-law packet every 20 ms) into a live server
(uvicorn, real HTTP). The live figures grow between two listings; the finished call's match what sipp sent.
No sleeps: every wait is on a figure of the listing, bounded.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.config import DEMO_APP_ID
from engine.format import SAMPLES_PER_FRAME, samples_to_ms, seconds_to_samples, silence
from engine.testing.browser import chromium, chromium_available, wait_page
from engine.testing.server import wait_for
from engine.testing.sip_server import SipServer
from engine.testing.sipp import SIPP, Sipp, media_port, uac_scenario, write_ulaw
from engine.testing.web_server import OTHER
from engine.web.calls_api import rtp_body

STREAM_S = 8.0  # the caller's audio: 400 packets
STREAM_PACKETS = seconds_to_samples(STREAM_S) // SAMPLES_PER_FRAME
STATS = {"sent": 420, "received": 398, "lost": 2, "jitter_samples": 12, "remote_lost": 1,
         "remote_jitter_samples": 7, "events": 3, "payload_type": 8,
         "buffer": {"placed": 398, "late": 4, "duplicate": 5, "concealed": 6, "underruns": 0, "resyncs": 0,
                    "grown": 1, "shrunk": 0, "skipped": 0, "depth": 3}}


def test_the_stats_become_the_wire_object_with_jitter_in_ms_exactly() -> None:
    assert rtp_body(STATS) == {
        "available": True, "codec": "PCMA", "packetsSent": 420, "packetsReceived": 398, "packetsLost": 2,
        "jitterMs": 1.5, "remotePacketsLost": 1, "remoteJitterMs": 0.875, "lateFrames": 4, "duplicateFrames": 5,
        "concealedFrames": 6, "events": 3}
    silent_remote = rtp_body({**STATS, "payload_type": 0, "remote_lost": None, "remote_jitter_samples": None})
    assert (silent_remote["codec"], silent_remote["remotePacketsLost"], silent_remote["remoteJitterMs"]) == (
        "PCMU", None, None)
    assert rtp_body({}) == rtp_body(None) == {"available": False}  # no figures: said so, nothing made up


def _listing(url: str, app_id: str = DEMO_APP_ID) -> dict[str, Any]:
    answer = httpx.get(f"{url}/web/calls", params={"appId": app_id}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _live_rtp(url: str, call_id: str) -> dict[str, Any] | None:
    entry = next((c for c in _listing(url)["live"] if c["callId"] == call_id), None)
    rtp = entry.get("rtp", {}) if entry is not None else {}  # none until the media thread has started the call
    return rtp if rtp.get("available") else None


def _page_line(url: str, call_id: str) -> str:
    """The RTP line the calls page shows under the finished call ``call_id`` (Chromium)."""
    with chromium() as context:
        page = context.new_page()
        page.goto(f"{url}/calls?appId={DEMO_APP_ID}")
        selector = f'tr[data-call-id="{call_id}"] small.rtp'
        wait_page(page, f"document.querySelector('{selector}')")
        return page.inner_text(selector)


def _caller(server: SipServer, tmp_path: Path) -> Sipp:
    stream = write_ulaw(tmp_path / "caller.ulaw", silence(seconds_to_samples(STREAM_S)))
    scenario = uac_scenario(tmp_path / "uac.xml", pause_ms=int(STREAM_S * 1000) + 500, stream=stream)
    return Sipp(["-sf", str(scenario), f"127.0.0.1:{server.sip_port}", "-s", "10086", "-i", "127.0.0.1",
                 "-m", "1", "-l", "1", "-mp", media_port(), "-timeout", "60"], tmp_path)


@pytest.fixture(params=[0, 1], ids=["in-process", "one-worker"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SipServer]:
    toml = f'[sip]\nmediaProcesses = {request.param}\n\n[[applications]]\nappId = "{OTHER}"\n'
    server = SipServer(tmp_path / "server", extra_toml=toml)
    yield server
    server.close()


@pytest.mark.skipif(SIPP is None, reason="sipp (apt sip-tester) is not installed")
def test_a_sip_calls_rtp_is_live_then_final_and_only_its_application_sees_it(server: SipServer,
                                                                               tmp_path: Path) -> None:
    url = server.live.url
    sipp = _caller(server, tmp_path)
    try:
        call_id = wait_for(lambda: server.glue.lines[0].data.get("call_id") if server.glue.lines else None, 30,
                           "the call to arrive")
        first = wait_for(lambda: (r := _live_rtp(url, call_id)) and r["packetsReceived"] > 0 and r, 30,
                         "the live call's first packets")  # (carried from the INVITE: 0 until sipp streams)
        assert first["codec"] == "PCMU"
        grown = wait_for(lambda: (r := _live_rtp(url, call_id)) and r["packetsReceived"] > first["packetsReceived"]
                         and r, 30, "the received packets to grow")
        assert grown["packetsSent"] >= first["packetsSent"] and grown["packetsLost"] == 0
        workers = server.glue.workers
        if workers is not None:  # a worker that does not answer in time: its figures are said unavailable
            pid = workers.workers[0].pid
            os.kill(pid, signal.SIGSTOP)
            try:
                [entry] = [c for c in _listing(url)["live"] if c["callId"] == call_id]
            finally:
                os.kill(pid, signal.SIGCONT)
            assert entry["rtp"] == {"available": False}
        other = _listing(url, OTHER)
        assert other == {"live": [], "liveCount": 0, "finished": []}  # another application sees none of it
        result = sipp.finish(60)
    finally:
        sipp.kill()
    assert result.successful == 1 and result.failed == 0, result.output[-2000:]
    entry = wait_for(lambda: next((c for c in _listing(url)["finished"] if c["callId"] == call_id), None), 30,
                     "the finished call")
    rtp = entry["rtp"]
    assert rtp["available"] and rtp["codec"] == "PCMU"
    assert STREAM_PACKETS - 5 <= rtp["packetsReceived"] <= STREAM_PACKETS  # what sipp sent, on loopback
    assert rtp["packetsLost"] == 0 and rtp["packetsSent"] > grown["packetsSent"]  # (none while a worker stops)
    final = server.app.state.web_book.finished_call(DEMO_APP_ID, call_id).rtp
    assert rtp["jitterMs"] == samples_to_ms(final["jitter_samples"])
    assert _listing(url, OTHER)["finished"] == []
    for path in ("recording.wav", "picture.png"):
        refused = httpx.get(f"{url}/web/calls/{call_id}/{path}", params={"appId": OTHER}, timeout=10)
        assert refused.status_code == 404
    assert httpx.get(f"{url}/web/calls", params={"appId": "nobody"}, timeout=10).status_code == 403
    if server.glue.workers is None and chromium_available():  # the page's one line (once: the page is the same)
        line = _page_line(url, call_id)
        assert line.startswith(f"RTP PCMU: sent {rtp['packetsSent']}, received {rtp['packetsReceived']}, lost 0, "
                               "jitter "), line

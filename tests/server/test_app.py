"""The HTTP API against a real server (uvicorn on a free loopback port) with a real client (httpx).

The media thread runs on a clock 25× faster than real time, speech is a fake tone generator, and event
timestamps come from a fixed wall clock, so the tests are fast and deterministic.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from engine.config import DEMO_APP_ID, Application, Config
from engine.dtmf.channel import detect_keys
from engine.format import SAMPLE_RATE_HZ
from engine.media.pacer import ScaledClock
from engine.server.app import ServerSettings, create_app
from engine.server.delivery import RetryPolicy
from engine.testing.server import FakeSpeaker, LiveServer, call_events, wait_events, wait_for

SMALL_APP = "small-queue-app"
ENDPOINTS = {"/ipcc/call/multOrders", "/ipcc/call/play", "/ipcc/call/outCall", "/ipcc/call/stoPlay",
             "/ipcc/call/disConnect", "/ipcc/events", "/ipcc/status", "/ipcc/call/callNotifyV2",
             "/ipcc/call/transfer", "/ipcc/call/reply", "/ipcc/call/message", "/ipcc/manager/file"}


def _order(text: str = "tone:0.5", **fields: object) -> dict[str, object]:
    return {"playFlag": 0, "voiceStr": text, **fields}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("server")
    config = Config({DEMO_APP_ID: Application(DEMO_APP_ID), SMALL_APP: Application(SMALL_APP, queue_limit=1)})
    settings = ServerSettings(config=config, voices=repo_root / "voices", recordings=root / "recordings",
                              state_dir=root / "state", retry=RetryPolicy(0.01, 2, 0.05, 1.0))
    live = LiveServer(create_app(settings, speaker=FakeSpeaker(), clock=ScaledClock(25)))
    yield live
    live.close()


def _out_call(client: httpx.Client, called: str = "null", app: str = DEMO_APP_ID, **fields: object) -> str:
    answer = client.post("/ipcc/call/outCall", json={"appId": app, "called": called, **fields}).json()
    assert answer["code"] == "000000", answer
    assert answer["callId"] == answer["callid"] and answer["appid"] == app
    return answer["callId"]


def _mult(client: httpx.Client, call_id: str, *orders: dict[str, object], app: str = DEMO_APP_ID,
          **fields: object) -> dict[str, object]:
    body = {"appId": app, "callId": call_id, "orders": list(orders or [_order()]), **fields}
    return client.post("/ipcc/call/multOrders", json=body).json()


def test_openapi_lists_every_endpoint_with_its_body(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    assert ENDPOINTS <= set(doc["paths"])
    mult = doc["paths"]["/ipcc/call/multOrders"]["post"]
    schema = mult["requestBody"]["content"]["application/json"]["schema"]
    assert {"appId", "callId", "orders", "playtime"} <= set(schema["properties"])
    assert "voiceStr" in schema["properties"]["orders"]["items"]["properties"]
    assert mult["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("IpccResponse")
    assert {"code", "msg", "appid", "callid"} <= set(doc["components"]["schemas"]["IpccResponse"]["properties"])


def test_bad_bodies_answer_108100_with_http_200(client: httpx.Client) -> None:
    call_id = _out_call(client)
    for raw in (b"{not json", b"[1, 2]", b"", "\u00ff".encode("latin-1")):
        answer = client.post("/ipcc/call/multOrders", content=raw)
        assert answer.status_code == 200 and answer.json()["code"] == "108100", raw
    bad = _mult(client, call_id, _order(playFlag=7))
    assert bad["code"] == "108100" and "orders[0].playFlag" in bad["msg"] and bad["callid"] == call_id
    quirky = client.post("/ipcc/call/multOrders", content=json.dumps(
        {" appId ": DEMO_APP_ID, "callId": call_id, "orders": [{"playFlag": "0", " voiceStr": "tone:0.1"}]}))
    assert quirky.json()["code"] == "000000"


def test_bodies_over_one_mib_are_refused_unread(client: httpx.Client) -> None:
    big = b'{"appId": "' + b"x" * (1 << 20) + b'"}'
    assert client.post("/ipcc/call/multOrders", content=big).json()["code"] == "108100"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        yield b'{"appId": "'
        for _ in range(200):
            yield b"y" * 8192
    answer = client.post("/ipcc/call/multOrders", content=chunks())
    assert answer.status_code == 200 and answer.json()["code"] == "108100" and "bytes" in answer.json()["msg"]
    assert client.get("/ipcc/status").status_code == 200


def test_unknown_application_and_unknown_call(client: httpx.Client) -> None:
    call_id = _out_call(client)
    assert _mult(client, call_id, app="nope")["code"] == "108101"
    assert _mult(client, "no-such-call")["code"] == "108105"
    assert client.post("/ipcc/call/outCall", json={"appId": "nope", "called": "null"}).json()["code"] == "108101"
    for path in ("/ipcc/call/stoPlay", "/ipcc/call/disConnect"):
        assert client.post(path, json={"appId": DEMO_APP_ID, "callId": "x"}).json()["code"] == "108105"
    other = _out_call(client, app=SMALL_APP)
    assert _mult(client, other)["code"] == "108105"  # a live call, of another application
    assert client.get("/ipcc/events", params={"callId": "never", "appId": DEMO_APP_ID}).json()["code"] == "108105"


def test_hung_up_call_answers_108105(client: httpx.Client) -> None:
    call_id = _out_call(client)
    assert client.post("/ipcc/call/disConnect", json={"appId": DEMO_APP_ID, "callId": call_id}).json()[
        "code"] == "000000"
    assert _mult(client, call_id)["code"] == "108105"
    assert client.post("/ipcc/call/play", json={"appId": DEMO_APP_ID, "callId": call_id, **_order()}).json()[
        "code"] == "108105"


def test_queue_full_answers_108102(client: httpx.Client) -> None:
    call_id = _out_call(client, app=SMALL_APP)  # queueLimit 1: one playing and one waiting
    long = _order("tone:1", playTime=1000)
    assert _mult(client, call_id, long, app=SMALL_APP)["code"] == "000000"
    assert _mult(client, call_id, long, app=SMALL_APP)["code"] == "000000"
    full = _mult(client, call_id, long, app=SMALL_APP)
    assert full["code"] == "108102" and "queue" in full["msg"]
    client.post("/ipcc/call/stoPlay", json={"appId": SMALL_APP, "callId": call_id})
    wait_events(client, call_id, 1, app_id=SMALL_APP)
    assert _mult(client, call_id, long, app=SMALL_APP)["code"] == "000000"  # the stopped one made room
    client.post("/ipcc/call/disConnect", json={"appId": SMALL_APP, "callId": call_id})


def test_internal_failure_answers_108104_and_the_server_keeps_serving(
        client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    call_id = _out_call(client)
    with caplog.at_level(logging.ERROR, logger="engine.server.app"):
        failed = _mult(client, call_id, _order("boom"))
    assert failed["code"] == "108104" and failed["callId"] == call_id
    assert any(r.exc_info and "synthesizer broke" in str(r.exc_info[1]) for r in caplog.records)
    assert _mult(client, call_id, _order("tone:0.1"))["code"] == "000000"
    assert wait_events(client, call_id, 1)[0]["result"] == "complete"


def test_recorded_call_has_the_prompt_and_the_callers_keys(client: httpx.Client, server: LiveServer) -> None:
    call_id = _out_call(client, "wav:keys-test", keys="7@0.8,3@1.2")
    prompt = FakeSpeaker().synthesize("tone:0.6")
    getkey = _order("tone:2", getkey=1, maxRevCnt=2, totalTime=5, data="menu")
    assert _mult(client, call_id, _order("tone:0.6"), getkey)["code"] == "000000"
    events = wait_events(client, call_id, 2)
    assert events[0] == {"event": "ivrreportdtmf", "appId": DEMO_APP_ID, "callId": call_id, "dtmfCode": "73",
                         "endReason": "maxRevCnt", "data": "menu", "timeStamp": events[0]["timeStamp"]}
    assert events[1]["event"] == "multrpt" and events[1]["result"] == "complete" and events[1]["dtmfCode"] == "73"
    assert client.post("/ipcc/call/disConnect", json={"appId": DEMO_APP_ID, "callId": call_id}).json()[
        "code"] == "000000"
    path = server.app.state.engine.settings.recordings / DEMO_APP_ID / "keys-test.wav"  # the app's own folder
    in_use = server.app.state.engine.endpoints.names_in_use
    wait_for(lambda: f"{DEMO_APP_ID}/keys-test.wav" not in in_use, what="the recording to be closed")
    audio, rate = sf.read(path, dtype="int16")
    assert rate == SAMPLE_RATE_HZ and audio.shape[1] == 2
    played, heard = audio[:, 0], audio[:, 1]
    start = int(np.flatnonzero(played)[0]) - 1  # the tone starts at phase 0
    assert start % 160 == 0  # requests start on a frame boundary
    np.testing.assert_array_equal(played[start : start + len(prompt)], prompt)
    keys = detect_keys(heard)
    assert "".join(k.key for k in keys) == "73"
    assert abs((keys[0].start_sample - start) / SAMPLE_RATE_HZ - 0.8) < 0.03  # seconds from the request start


def test_stoplay_stops_the_request_in_progress(client: httpx.Client) -> None:
    call_id = _out_call(client)
    assert _mult(client, call_id, _order("tone:1", playTime=1000))["code"] == "000000"
    assert _mult(client, call_id, _order("tone:0.1"))["code"] == "000000"
    assert client.post("/ipcc/call/stoPlay", json={"appId": DEMO_APP_ID, "callId": call_id}).json()[
        "code"] == "000000"
    events = wait_events(client, call_id, 2)
    assert [e["result"] for e in events] == ["stopped", "complete"]  # the queue goes on


def test_disconnect_hangs_up_current_and_pending(client: httpx.Client) -> None:
    call_id = _out_call(client)
    getkey = _order("tone:1", playTime=1000, getkey=1, data="d")
    assert _mult(client, call_id, getkey)["code"] == "000000"
    assert _mult(client, call_id, _order())["code"] == "000000"
    wait_for(lambda: client.get("/ipcc/status").json()["calls"]["commands"] == 0 or None)
    client.post("/ipcc/call/disConnect", json={"appId": DEMO_APP_ID, "callId": call_id})
    events = wait_events(client, call_id, 3)
    assert [(e["event"], e.get("endReason", e.get("result"))) for e in events] == [
        ("ivrreportdtmf", "hangup"), ("multrpt", "hangup"), ("multrpt", "hangup")]


def test_play_is_a_one_order_request(client: httpx.Client) -> None:
    call_id = _out_call(client)
    answer = client.post("/ipcc/call/play", json={"appId": DEMO_APP_ID, "callId": call_id,
                                                  **_order("tone:0.2", playTime="2")}).json()
    assert answer["code"] == "000000"
    assert wait_events(client, call_id, 1)[0]["result"] == "complete"


def test_out_call_refuses_bad_endpoints(client: httpx.Client) -> None:
    cases = {"fax:1": "called", "speaker": "speaker endpoint not available", "wav:../x": "called",
             "wav:a/b": "called", "wav:": "called", "null:x": "called"}
    for called, words in cases.items():
        answer = client.post("/ipcc/call/outCall", json={"appId": DEMO_APP_ID, "called": called}).json()
        assert answer["code"] == "108100" and words in answer["msg"], (called, answer)
    for fields, field in (({"keys": "x@1"}, "keys"), ({"callerWav": "../etc/passwd"}, "callerWav"),
                          ({"callerWav": "/etc/passwd"}, "callerWav"), ({"called": 5}, "called"),
                          ({"keys": "1@1", "callerWav": "welcome.wav"}, "keys")):
        answer = client.post("/ipcc/call/outCall", json={"appId": DEMO_APP_ID, "called": "null", **fields}).json()
        assert answer["code"] == "108100" and answer["msg"].startswith(field), (fields, answer)


def test_unknown_calls_leave_no_state(client: httpx.Client, server: LiveServer) -> None:
    """300 posts here; the volume (10,000 posts, with the server's memory) is ``benchmarks/bench_ghosts.py``."""
    engine = server.app.state.engine
    before = (engine.board.sizes(), engine.delivery.stats()["calls_kept"], engine.attempts.ringing())
    body = {"appId": DEMO_APP_ID, "orders": [_order()]}
    paths = ("/ipcc/call/multOrders", "/ipcc/call/play", "/ipcc/call/stoPlay", "/ipcc/call/disConnect",
             "/ipcc/call/transfer", "/ipcc/call/message")
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for i in range(300):
            extra = {"called": "null", "playFlag": 0, "voiceStr": "tone:0.1"}
            answer = http.post(paths[i % len(paths)], json={**body, **extra, "callId": f"ghost-{i}"}).json()
            assert answer["code"] == "108105" and answer["callId"] == f"ghost-{i}", answer
        assert http.get("/ipcc/events", params={"callId": "ghost-7"}).json()["code"] == "108105"
    assert (engine.board.sizes(), engine.delivery.stats()["calls_kept"], engine.attempts.ringing()) == before


def test_client_disconnecting_mid_request_does_not_hurt_the_server(client: httpx.Client,
                                                                    server: LiveServer) -> None:
    for sent in (b"POST /ipcc/call/multOrders HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{\"appId\"",
                 b"POST /ipcc/call/multOrders HTTP/1.1\r\nHost: x\r\nContent-Len",
                 b"POST /ipcc/call/outCall HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n"
                 b'{"appId": "x", "called": "null"}       '):
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.sendall(sent)
    call_id = _out_call(client)
    assert _mult(client, call_id, _order("tone:0.1"))["code"] == "000000"
    assert wait_events(client, call_id, 1)[0]["result"] == "complete"
    assert call_events(client, call_id)[0]["timeStamp"].isdigit()

"""The page's WebSocket: bad messages close that socket with a reason; the call and every other call go on.

A real WebSocket client (``websockets``) against a live server; the limits themselves are checked on
:class:`~engine.web.socket.PageInput` with an injected time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import websockets

from engine.testing.alsa import APP
from engine.testing.server import LiveServer
from engine.testing.web_server import OTHER, two_app_server
from engine.web.phone import FRAME_HEADER
from engine.web.socket import (
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_UNSUPPORTED,
    MAX_BINARY_BYTES,
    PageInput,
    SocketClose,
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with two_app_server(tmp_path) as live:
        yield live


def browser_call(server: LiveServer, app_id: str = APP) -> str:
    answer = httpx.post(f"{server.url}/ipcc/call/outCall", json={"appId": app_id, "called": "browser"}).json()
    assert answer["code"] == "000000", answer
    return answer["callId"]


def ws_url(server: LiveServer, call_id: str, app_id: str = APP) -> str:
    return f"ws://127.0.0.1:{server.port}/phone/ws?appId={app_id}&callId={call_id}"


async def frames_then(url: str, send: list[str | bytes], count: int = 5) -> tuple[int, int, str]:
    """Receive ``count`` frames, send ``send``, wait for the close: (frames, close code, reason)."""
    async with websockets.connect(url) as ws:
        frames = 0
        while frames < count:
            message = await asyncio.wait_for(ws.recv(), 10)
            frames += isinstance(message, bytes)
        for message in send:
            try:
                await ws.send(message)
            except websockets.ConnectionClosed:
                break
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as closed:
            return frames, closed.rcvd.code if closed.rcvd else 1006, closed.rcvd.reason if closed.rcvd else ""


def seq_after_reattach(url: str) -> int:
    async def first_seq() -> int:
        async with websockets.connect(url) as ws:
            while True:
                message = await asyncio.wait_for(ws.recv(), 10)
                if isinstance(message, bytes):
                    return FRAME_HEADER.unpack_from(message)[0]

    return asyncio.run(first_seq())


@pytest.mark.parametrize(("messages", "code", "reason"), [
    (["not json"], CLOSE_UNSUPPORTED, "malformed: not JSON"),
    ([json.dumps({"type": "key", "key": "X"})], CLOSE_UNSUPPORTED, "key: must be one of 0-9 * # A-D"),
    ([json.dumps([1, 2])], CLOSE_UNSUPPORTED, "type: expected"),
    ([b"\x00" * (MAX_BINARY_BYTES + 2)], CLOSE_TOO_BIG, "microphone: 3202 bytes; at most 3200"),
    ([b"\x00\x01\x02"], CLOSE_UNSUPPORTED, "microphone: an odd number of bytes"),
    (["x" * 300], CLOSE_TOO_BIG, "message: over 256 bytes"),
    ([json.dumps({"type": "key", "key": "1"})] * 40, CLOSE_POLICY, "flooding: more than 10 keys per second"),
    ([b"\x00" * 3200] * 30, CLOSE_POLICY, "flooding: microphone audio faster than real time"),
])
def test_a_bad_message_closes_that_socket_and_the_calls_go_on(server: LiveServer, messages: list, code: int,
                                                              reason: str) -> None:
    call_id, other_id = browser_call(server), browser_call(server)
    frames, got_code, got_reason = asyncio.run(frames_then(ws_url(server, call_id), messages))
    assert frames == 5
    assert (got_code, got_reason[: len(reason)]) == (code, reason)
    assert httpx.get(f"{server.url}/ipcc/status").json()["calls"]["live_calls"] == 2  # both calls go on
    assert seq_after_reattach(ws_url(server, call_id)) > 5  # a page attaches again: the call kept ticking
    assert seq_after_reattach(ws_url(server, other_id)) > 0


def test_a_page_cannot_attach_to_a_call_of_another_application(server: LiveServer) -> None:
    call_id = browser_call(server, APP)
    for url, reason in ((ws_url(server, call_id, OTHER), "callId: not a live browser call of this application"),
                        (ws_url(server, call_id, "nobody"), "appId: unknown application or wrong secret"),
                        (ws_url(server, "f" * 32), "callId: not a live browser call of this application")):
        _, code, got = asyncio.run(frames_then(url, [], count=0))
        assert (code, got) == (CLOSE_POLICY, reason)
    nothing = {"live": [], "liveCount": 0, "finished": []}
    assert httpx.get(f"{server.url}/web/calls", params={"appId": OTHER}).json() == nothing
    live = httpx.get(f"{server.url}/web/calls", params={"appId": APP}).json()["live"]
    assert [c["callId"] for c in live] == [call_id]
    assert httpx.get(f"{server.url}/web/calls", params={"appId": "nobody"}).status_code == 403


def test_a_second_page_on_the_same_call_is_refused(server: LiveServer) -> None:
    call_id = browser_call(server)

    async def two() -> tuple[int, str]:
        async with websockets.connect(ws_url(server, call_id)) as first:
            await asyncio.wait_for(first.recv(), 10)
            _, code, reason = await frames_then(ws_url(server, call_id), [], count=0)
            return code, reason

    assert asyncio.run(two()) == (CLOSE_POLICY, "callId: a page is attached to this call already")


def test_limits_of_page_input_by_the_numbers() -> None:
    page = PageInput()
    key = {"type": "websocket.receive", "text": json.dumps({"type": "key", "key": "5"})}
    assert [page.take(key, 0.0) for _ in range(20)] == [("key", "5")] * 20  # the burst
    with pytest.raises(SocketClose, match="10 keys per second"):
        page.take(key, 0.0)
    assert page.take(key, 0.1) == ("key", "5")  # 0.1 s later: one more key
    mic = PageInput()
    chunk = {"type": "websocket.receive", "bytes": np.arange(160, dtype="<i2").tobytes()}
    kind, samples = mic.take(chunk, 0.0)
    assert kind == "mic" and samples.tolist() == list(range(160))
    # real time (50 chunks of 20 ms per second) is sustained for a minute
    for n in range(1, 3000):
        mic.take(chunk, n * 0.02)

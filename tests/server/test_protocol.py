"""The read deadlines of the guarded HTTP protocol: one timer per connection, moved lazily, never late.

A deadline is a number each request moves; the connection's timer, when it fires, closes the connection only
if the deadline it finds has passed (else it waits for that deadline). Shown with real connections: a
kept-alive connection busy for several header deadlines stays open, a body deadline shorter than the header
deadline still applies.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.server.app import ServerSettings, create_app
from engine.server.limits import GuardSettings
from engine.server.protocol import uvicorn_options
from engine.testing.guard import closed_by_peer
from engine.testing.server import FakeSpeaker, LiveServer

HEADER_TIMEOUT_S = 4.0
BODY_TIMEOUT_S = 0.3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("protocol")
    guard = GuardSettings(header_timeout_s=HEADER_TIMEOUT_S, body_timeout_s=BODY_TIMEOUT_S)
    settings = ServerSettings(voices=repo_root / "voices", recordings=root / "rec", state_dir=root / "state",
                              guard=guard)
    live = LiveServer(create_app(settings, speaker=FakeSpeaker()), **uvicorn_options(guard))
    yield live
    live.close()


def test_a_body_deadline_shorter_than_the_header_deadline_closes_first(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /ipcc/call/stoPlay HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{")
        assert closed_by_peer(sock, HEADER_TIMEOUT_S / 2)  # the body's deadline, not the header's


def test_a_busy_kept_alive_connection_outlives_many_body_deadlines(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        first = client.get("/ipcc/status")
        start = time.monotonic()
        answers = 0
        while time.monotonic() - start < 4 * BODY_TIMEOUT_S or answers < 20:  # requests back to back on it
            answer = client.post("/ipcc/call/stoPlay", json={"appId": "x", "callId": "y"})
            assert answer.status_code == 200 and answer.json()["code"]
            answers += 1
        last = client.get("/ipcc/status")
    assert first.status_code == last.status_code == 200
    assert first.extensions["network_stream"] is last.extensions["network_stream"]  # the one connection

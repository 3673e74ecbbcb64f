"""Nobody in who does not belong: signatures, allow-lists, events, read deadlines, the connection cap.

Events go only to their application; slowloris and trickling bodies are closed; ``serve`` refuses an open
non-loopback address.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from engine.config import DEMO_APP_ID, Application, Config
from engine.media.pacer import ScaledClock
from engine.server.app import ServerSettings, create_app
from engine.server.auth import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Authenticator,
    AuthSettings,
    Credential,
    signed_headers,
)
from engine.server.limits import GuardSettings
from engine.server.protocol import uvicorn_options
from engine.testing.guard import closed_by_peer
from engine.testing.server import REQUEST_EVENTS, FakeSpeaker, LiveServer, wait_events

SIGNED = "signed-app"
SECRET = b"0123456789abcdef-secret"
FENCED = "fenced-app"  # allowed from 10.0.0.0/8 only
LOCAL = "local-app"  # allowed from loopback only
HEADER_TIMEOUT_S = 1.0
MAX_CONNECTIONS = 6


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("access")
    apps = {app: Application(app) for app in (DEMO_APP_ID, SIGNED, FENCED, LOCAL)}
    auth = AuthSettings({SIGNED: Credential.of(SECRET), FENCED: Credential.of(allow=["10.0.0.0/8"]),
                         LOCAL: Credential.of(allow=["127.0.0.0/8", "::1/128"])})
    guard = GuardSettings(header_timeout_s=HEADER_TIMEOUT_S, body_timeout_s=HEADER_TIMEOUT_S,
                          max_connections=MAX_CONNECTIONS)
    settings = ServerSettings(config=Config(apps), voices=repo_root / "voices", recordings=root / "rec",
                              state_dir=root / "state", guard=guard, auth=auth)
    live = LiveServer(create_app(settings, speaker=FakeSpeaker(), clock=ScaledClock(25)), **uvicorn_options(guard))
    yield live
    live.close()


def _post(client: httpx.Client, path: str, body: dict, headers: dict[str, str] | None = None) -> dict:
    raw = json.dumps(body).encode()
    return client.post(path, content=raw, headers=headers or {}).json()


def _signed_post(client: httpx.Client, path: str, body: dict, now_s: float | None = None) -> dict:
    raw = json.dumps(body).encode()
    return client.post(path, content=raw, headers=signed_headers(SECRET, raw, now_s)).json()


def test_a_signed_application_needs_a_fresh_signature_of_its_body(client: httpx.Client) -> None:
    body = {"appId": SIGNED, "called": "null"}
    unsigned = _post(client, "/ipcc/call/outCall", body)
    assert unsigned["code"] == "108101" and SIGNATURE_HEADER in unsigned["msg"]
    stale = _signed_post(client, "/ipcc/call/outCall", body, now_s=time.time() - 3600)
    assert stale["code"] == "108101" and TIMESTAMP_HEADER in stale["msg"]
    raw = json.dumps(body).encode()
    forged = signed_headers(SECRET, raw)
    tampered = client.post("/ipcc/call/outCall", content=raw.replace(b"null", b"wav:x"), headers=forged).json()
    assert tampered["code"] == "108101" and "does not match" in tampered["msg"]
    wrong_key = signed_headers(b"another-secret-of-16+", raw)
    assert client.post("/ipcc/call/outCall", content=raw, headers=wrong_key).json()["code"] == "108101"
    good = _signed_post(client, "/ipcc/call/outCall", body)
    assert good["code"] == "000000", good
    assert SECRET.decode() not in json.dumps([unsigned, stale, tampered])  # messages never show the secret
    stop = _signed_post(client, "/ipcc/call/disConnect", {"appId": SIGNED, "callId": good["callId"]})
    assert stop["code"] == "000000"


def test_the_ip_allow_list_admits_its_networks_only(client: httpx.Client) -> None:
    fenced = _post(client, "/ipcc/call/outCall", {"appId": FENCED, "called": "null"})
    assert fenced["code"] == "108101" and "127.0.0.1 is not in" in fenced["msg"]
    local = _post(client, "/ipcc/call/outCall", {"appId": LOCAL, "called": "null"})
    assert local["code"] == "000000"
    assert _post(client, "/ipcc/call/outCall", {"appId": DEMO_APP_ID, "called": "null"})["code"] == "000000"


def test_events_answer_only_the_calls_application(client: httpx.Client) -> None:
    # issue 10: "GET /ipcc/events?callId= answers any caller (collected PINs and data included)"
    call_id = _post(client, "/ipcc/call/outCall", {"appId": DEMO_APP_ID, "called": "null", "keys": "1@0.1"})["callId"]
    order = {"playFlag": 0, "voiceStr": "tone:0.5", "getkey": 1, "maxRevCnt": 1, "data": "secret-pin-context"}
    assert _post(client, "/ipcc/call/multOrders", {"appId": DEMO_APP_ID, "callId": call_id,
                                                   "orders": [order]})["code"] == "000000"
    events = wait_events(client, call_id, 2)
    assert any(e.get("dtmfCode") == "1" for e in events)
    for params in ({"callId": call_id}, {"callId": call_id, "appId": LOCAL}, {"callId": call_id, "appId": ""}):
        answer = client.get("/ipcc/events", params=params)
        assert answer.json()["code"] == "108105" and answer.json()["events"] == [], params
        assert "secret-pin-context" not in answer.text and '"1"' not in answer.text
    own = client.get("/ipcc/events", params={"callId": call_id, "appId": DEMO_APP_ID}).json()
    assert own["code"] == "000000" and [e for e in own["events"] if e["event"] in REQUEST_EVENTS] == events


def test_events_of_a_signed_application_need_the_signature_of_the_query(client: httpx.Client) -> None:
    call_id = _signed_post(client, "/ipcc/call/outCall", {"appId": SIGNED, "called": "null"})["callId"]
    query = urlencode({"callId": call_id, "appId": SIGNED})
    unsigned = client.get(f"/ipcc/events?{query}").json()
    assert unsigned["code"] == "108101" and unsigned["events"] == []
    signed = client.get(f"/ipcc/events?{query}", headers=signed_headers(SECRET, query.encode())).json()
    assert signed["code"] == "000000", signed


def _raw_connection(server: LiveServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def test_slowloris_header_connection_is_closed_within_seconds(server: LiveServer, client: httpx.Client) -> None:
    # issue 10: "no header or body read timeout (slowloris connections are held for ever)"
    request = b"POST /ipcc/call/stoPlay HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100
    with _raw_connection(server) as sock:
        sent = 0
        closed = False
        while sent < 20 and not closed:  # a header byte a second, as the attack does
            sock.sendall(request[sent : sent + 1])
            sent += 1
            closed = closed_by_peer(sock, 1.0)
        assert closed and sent <= 10, f"still open after {sent} bytes"
    assert client.get("/ipcc/status").status_code == 200  # the server still serves


def test_a_body_that_trickles_is_cut_off(server: LiveServer) -> None:
    head = (b"POST /ipcc/call/stoPlay HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200\r\n\r\n")
    with _raw_connection(server) as sock:
        sock.sendall(head + b'{"appId"')
        assert closed_by_peer(sock, 10 * HEADER_TIMEOUT_S)


def test_a_silent_connection_is_closed(server: LiveServer) -> None:
    with _raw_connection(server) as sock:
        assert closed_by_peer(sock, 10 * HEADER_TIMEOUT_S)


def test_connections_over_the_cap_are_closed_at_once(server: LiveServer, client: httpx.Client) -> None:
    held = [_raw_connection(server) for _ in range(MAX_CONNECTIONS)]
    try:
        with _raw_connection(server) as extra:
            assert closed_by_peer(extra, HEADER_TIMEOUT_S / 2)  # well before any read deadline
    finally:
        for sock in held:
            sock.close()
    with httpx.Client(base_url=server.url, timeout=10) as fresh:
        assert fresh.get("/ipcc/status").status_code == 200


def test_serve_refuses_a_non_loopback_host_without_authentication(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--host", "0.0.0.0", "--port", "9",
                           "--state", str(tmp_path / "state")], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode != 0
    assert "not a loopback address" in done.stderr and DEMO_APP_ID in done.stderr


def test_serve_starts_beyond_loopback_when_every_application_is_authenticated() -> None:
    auth = AuthSettings({DEMO_APP_ID: Credential.of(SECRET)})
    from engine.server.auth import require_auth_off_loopback

    require_auth_off_loopback("0.0.0.0", auth, [DEMO_APP_ID])  # no error: the check passes
    with pytest.raises(ValueError, match="other-app"):
        require_auth_off_loopback("0.0.0.0", auth, [DEMO_APP_ID, "other-app"])
    require_auth_off_loopback("127.0.0.2", AuthSettings(), [DEMO_APP_ID])  # any loopback address is fine


def test_signature_checks_use_the_injected_clock_and_reject_short_secrets() -> None:
    auth = Authenticator(AuthSettings({SIGNED: Credential.of(SECRET)}, max_skew_s=10), wall=lambda: 1_000.0)
    auth.check(SIGNED, "127.0.0.1", signed_headers(SECRET, b"{}", now_s=995), b"{}")
    with pytest.raises(PermissionError, match=TIMESTAMP_HEADER):
        auth.check(SIGNED, "127.0.0.1", signed_headers(SECRET, b"{}", now_s=989), b"{}")
    with pytest.raises(ValueError, match="16 bytes"):
        Credential.of("short")

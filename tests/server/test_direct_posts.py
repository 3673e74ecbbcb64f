"""The contract's POST routes are served without FastAPI's router and middleware stack, with the same answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.config import DEMO_APP_ID
from engine.errors import BAD_REQUEST, INTERNAL, OK, UNKNOWN_CALL
from engine.media.pacer import ScaledClock
from engine.server.app import ServerSettings, create_app
from engine.server.http import IpccApp
from engine.testing.server import FakeSpeaker, LiveServer

POSTS = ("/ipcc/call/multOrders", "/ipcc/call/play", "/ipcc/call/outCall", "/ipcc/call/stoPlay",
         "/ipcc/call/disConnect", "/ipcc/call/callNotifyV2", "/ipcc/call/transfer", "/ipcc/call/reply",
         "/ipcc/call/message")


class CountingStack:
    """FastAPI's middleware stack, counting the requests that go through it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests.append(scope["path"])
        await self.app(scope, receive, send)


@pytest.fixture()
def served(tmp_path: Path, repo_root: Path) -> Iterator[tuple[IpccApp, CountingStack, httpx.Client]]:
    settings = ServerSettings(voices=repo_root / "voices", recordings=tmp_path / "rec", state_dir=tmp_path / "state")
    app = create_app(settings, speaker=FakeSpeaker(), clock=ScaledClock(25))
    assert isinstance(app, IpccApp)
    stack = CountingStack(app.build_middleware_stack())
    app.middleware_stack = stack
    live = LiveServer(app)
    try:
        with httpx.Client(base_url=live.url, timeout=10) as http:
            yield app, stack, http
    finally:
        live.close()


def _answers(http: httpx.Client, call_id: str) -> list[dict[str, Any]]:
    """A multOrders accepted, one refused (unknown call), one malformed, on ``call_id``."""
    order = {"playFlag": 0, "voiceStr": "tone:0.1"}
    return [http.post("/ipcc/call/multOrders", json={"appId": DEMO_APP_ID, "callId": cid, "orders": [order]}).json()
            for cid in (call_id, "no-such-call")] + [
        http.post("/ipcc/call/multOrders", content=b'{"appId": "' + DEMO_APP_ID.encode() + b'", "callId": [').json()]


def test_the_posts_skip_the_stack_and_answer_as_through_it(served: tuple[IpccApp, CountingStack, httpx.Client],
                                                           ) -> None:
    app, stack, http = served
    assert set(app.direct_posts) == set(POSTS)
    call_id = http.post("/ipcc/call/outCall", json={"appId": DEMO_APP_ID, "called": "null"}).json()["callId"]
    direct = _answers(http, call_id)
    assert [a["code"] for a in direct] == [OK, UNKNOWN_CALL, BAD_REQUEST]
    assert stack.requests == []  # none of them went through FastAPI's stack
    assert http.get("/ipcc/status").status_code == 200
    assert stack.requests == ["/ipcc/status"]  # everything else does
    app.direct_posts.clear()  # the same routes through FastAPI: the same answers
    assert _answers(http, call_id) == direct
    assert stack.requests == ["/ipcc/status", *["/ipcc/call/multOrders"] * 3]


def test_an_unexpected_failure_is_108104_on_both_paths(served: tuple[IpccApp, CountingStack, httpx.Client],
                                                       monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    app, stack, http = served

    def broken(*_args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(app.state.engine.guard, "admit_post", broken)
    body = {"appId": DEMO_APP_ID, "callId": "x"}
    direct = http.post("/ipcc/call/stoPlay", json=body)
    app.direct_posts.clear()
    routed = http.post("/ipcc/call/stoPlay", json=body)
    for answer in (direct, routed):
        assert answer.status_code == 200
        assert answer.json() == {"code": INTERNAL, "msg": "internal failure: RuntimeError", "appId": "", "callId": "",
                                 "appid": "", "callid": ""}
    assert stack.requests == ["/ipcc/call/stoPlay"]
    assert sum("internal failure on POST /ipcc/call/stoPlay" in r.getMessage() for r in caplog.records) == 2

"""A sweep of hostile values through every field of every endpoint: always HTTP 200, JSON, a contract code.

Deterministic (no randomness): each endpoint's valid body, then each of its fields replaced by each hostile
value in turn, on one call per field (dialled again when a value ended it). No answer may be a 5xx, non-JSON,
``{"detail": ...}`` or ``108104`` (an engine failure) or show an absolute path the client did not send, and the
media thread must still tick afterwards.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.config import DEMO_APP_ID
from engine.testing.platform import Platform, platform_server
from engine.testing.server import wait_for

HOSTILE: list[Any] = [None, True, -1, 0, 2**31, 2**63, 1.5, 1e308, "", " ", "\udc80", "x" * 5000, "9" * 5000,
                      "../../etc/passwd", "/etc/passwd", "\x00", [], [[[]]], {}, {"a": {"b": {}}}, "wav:../x",
                      "sip:someone@example.invalid", "13800138000", "#", "apps/other-app/x.wav"]
ALLOWED = {"000000", "108100", "108101", "108102", "108105"}
#: An absolute path in a message (what the engine must never show unless the client sent it).
ABSOLUTE = re.compile(r"(?<![\w.~-])/(?:[^\s/'\"(),:;]+/)+[^\s/'\"(),:;]*")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Platform]:
    with platform_server(tmp_path_factory.mktemp("sweep"), repo_root / "voices") as live:
        yield live


def _bodies(call_id: str) -> dict[str, dict[str, Any]]:
    order = {"playFlag": 0, "voiceStr": "tone:0.05", "playTime": 1, "spaceTime": 0, "getkey": 0, "maxRevCnt": 0,
             "key2End": "", "totalTime": 0, "data": "d"}
    ids = {"appId": DEMO_APP_ID, "callId": call_id}
    return {
        "outCall": {"appId": DEMO_APP_ID, "called": "null", "caller": "1", "data": "d", "timeout": 30, "AiFlag": 0},
        "callNotifyV2": {"appId": DEMO_APP_ID, "called": "null", "caller": "1",
                         "voices": [{"voice": "tone:0.05", "flag": 0}], "data": "d"},
        "multOrders": {**ids, "playtime": 1, "orders": [order]},
        "play": {**ids, **order},
        "stoPlay": ids, "disConnect": ids, "reply": {**ids, "ansCode": 0},
        "transfer": {**ids, "called": "null", "fileName": "beep.wav", "data": "d"},
        "message": {**ids, "playFlag": 0, "voiceStr": "tone:0.05", "key2Stop": "#", "maxTime": 1, "data": "d"},
    }


def test_hostile_values_in_every_field_get_a_contract_code(platform: Platform) -> None:
    answers = 0
    codes: Counter[str] = Counter()
    board = platform.engine.board
    for name in _bodies("x"):
        for field in _bodies("x")[name]:
            call_id = platform.dial("null")
            for value in HOSTILE:
                if not board.is_live(call_id):  # the last value hung it up, transferred it or left a message
                    call_id = platform.dial("null")
                body = _bodies(call_id)[name]
                body[field] = value
                sent = json.dumps(body)  # \u escapes
                response = platform.client.post(f"/ipcc/call/{name}", content=sent,
                                                headers={"Content-Type": "application/json"})
                assert response.status_code == 200, (name, field, value)
                answer = response.json()
                assert answer.get("code") in ALLOWED, (name, field, repr(value)[:40], answer)
                assert isinstance(answer.get("msg"), str) and "detail" not in answer
                shown = [path for path in ABSOLUTE.findall(answer["msg"]) if path not in json.loads(sent).values()]
                assert not shown, (name, field, answer)  # only the client's own paths are quoted
                answers += 1
                codes[answer["code"]] += 1
            platform.client.post("/ipcc/call/disConnect", json={"appId": DEMO_APP_ID, "callId": call_id})
    assert answers == sum(len(b) for b in _bodies("x").values()) * len(HOSTILE)
    assert codes["108105"] < answers // 4, codes  # the values reached live calls, not a call that was gone
    ticks = platform.engine.board.media.ticks
    wait_for(lambda: platform.engine.board.media.ticks > ticks, what="the media thread to tick on")

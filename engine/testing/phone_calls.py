"""The end of an ``outCall`` to a real phone, as the baresip tests check it: a prompt, disConnect, what it heard."""

from __future__ import annotations

from typing import Any

import soundfile as sf

from engine.config import DEMO_APP_ID
from engine.net import g711
from engine.testing.correlation import best_correlation
from engine.testing.server import wait_for

HELLO = "Hello Bob."


def say_hello_and_disconnect(server: Any, client: Any, phone: Any, call_id: str) -> dict[str, Any]:
    """``multOrders`` :data:`HELLO` on ``call_id``, ``disConnect`` after its ``multrpt``; the phone's CALL_CLOSED."""
    body = {"appId": DEMO_APP_ID, "callId": call_id, "orders": [{"playFlag": 0, "voiceStr": HELLO}]}

    def reports() -> int:
        return sum(e["event"] == "multrpt" for e in server.events(call_id))

    before = reports()
    assert client.post("/ipcc/call/multOrders", json=body).json()["code"] == "000000"
    wait_for(lambda: reports() > before or None, 20, "the hello's multrpt")
    answer = client.post("/ipcc/call/disConnect", json={"appId": DEMO_APP_ID, "callId": call_id}).json()
    assert answer["code"] == "000000", answer
    return phone.wait_event("CALL_CLOSED")


def check_hello_heard(server: Any, phone: Any, call_id: str) -> None:
    """The application got the answered call's events, ended by ``disConnect``; the phone heard :data:`HELLO`."""
    events = server.wait_received(call_id, "callbillrpt")
    calls = [(e["event"], e.get("ansCode"), e.get("reason")) for e in events if e["event"] != "multrpt"]
    assert calls == [("callstatrpt", 0, None), ("calldisconnectrpt", None, "disconnect"), ("callbillrpt", None, None)]
    heard, _ = sf.read(str(phone.recording("dec")), dtype="int16")
    hello = server.engine.speaker.synthesize(HELLO)
    assert best_correlation(heard, g711.decode(g711.encode(hello, g711.PCMU), g711.PCMU)[:4000]) > 0.9

"""A live server with SIP: uvicorn (HTTP API) and ``serve --sip``'s glue on free loopback ports, real TTS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.config import DEMO_APP_ID, load_config
from engine.server.app import ServerSettings, create_app
from engine.server.limits import GuardSettings
from engine.server.sip_glue import SipGlue, attach_sip
from engine.testing.server import CALM_GUARD, LiveServer, Receiver, wait_for

WELCOME = {"appId": DEMO_APP_ID, "callId": "replaced", "orders": [
    {"playFlag": 0, "voiceStr": "Welcome to the engine. Please press two keys.", "getkey": 1, "maxRevCnt": 2,
     "playTime": 1, "spaceTime": 4}]}


class SipServer:
    """The HTTP server and its SIP glue; number ``10086`` answers and plays :data:`WELCOME`.

    Its guard is ``guard``, by default :data:`~engine.testing.server.CALM_GUARD` (SIP is tested here, not admission).

    The demo application's events go to :attr:`receiver` (a callback receiver) as well as the event log.
    """

    def __init__(self, folder: Path, welcome: dict[str, Any] | None = None, extra_toml: str = "",
                 guard: GuardSettings = CALM_GUARD) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "welcome.json").write_text(json.dumps(welcome or WELCOME))
        config = folder / "engine.toml"
        self.receiver = Receiver()
        config.write_text(f'[[applications]]\nappId = "{DEMO_APP_ID}"\ncallbackUrl = "{self.receiver.url}"\n\n'
                          f'[[numbers]]\nnumber = "10086"\nappId = "{DEMO_APP_ID}"\nautoAnswer = true\n'
                          f'welcome = "welcome.json"\n\n{extra_toml}')
        settings = ServerSettings(config=load_config(config), recordings=folder / "recordings",
                                  state_dir=folder / "state", cache=folder / "cache", guard=guard)
        self.app = create_app(settings)
        self.engine = self.app.state.engine
        self.live = LiveServer(self.app)
        self.glue: SipGlue = attach_sip(self.engine, "127.0.0.1:0")
        self.sip_port = self.glue.phone.address[1]
        wait_for(lambda: self.glue.welcomes_ready or None, 60, "the welcome prompt to be synthesised")

    def events(self, call_id: str) -> list[dict[str, Any]]:
        """The events kept for ``call_id``."""
        return self.engine.delivery.events(call_id) or []

    def received(self, call_id: str) -> list[dict[str, Any]]:
        """The events the application's receiver acknowledged for ``call_id``, in arrival order."""
        with self.receiver.lock:
            return [event for event in self.receiver.acked if event.get("callId") == call_id]

    def wait_received(self, call_id: str, event: str, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        """Wait until the receiver has ``event`` of ``call_id``; all the call's events so far."""
        def arrived() -> list[dict[str, Any]] | None:
            got = self.received(call_id)
            return got if any(e["event"] == event for e in got) else None

        return wait_for(arrived, timeout_s, f"{event} of {call_id}")

    def close(self) -> None:
        """Stop SIP, the server and the receiver."""
        self.glue.close()
        self.live.close()
        self.receiver.close()

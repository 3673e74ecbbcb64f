"""The platform's clients in tests: a live server with a route table, a callback receiver, SDK-style posts.

The server runs its media 25× faster than real time with :class:`~engine.testing.server.FakeSpeaker`; every
application's callback URL is one :class:`~engine.testing.server.Receiver`, which answers
``{"code": "0", "message": "0"}`` as platform samples do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from engine.config import DEMO_APP_ID, Application, Config, Outcome, Route
from engine.media.pacer import ScaledClock
from engine.server.app import ServerSettings, create_app
from engine.server.delivery import RetryPolicy
from engine.testing.server import FakeSpeaker, LiveServer, Receiver, wait_for

OTHER_APP = "other-app"
NUMERIC_APP = "20240506"
#: ``555*`` goes to the ``probe`` scheme, which a test registers (as the SIP work registers ``sip``).
ROUTES = (Route("10086", "null"), Route("555*", "probe:{called}/{caller}", keys="9@0.2"),
          Route("1390000*", "wav:{called}", outcome=Outcome.BUSY),
          Route("1370000*", "null", outcome=Outcome.NO_ANSWER), Route("*", "wav:{called}-{callId}"))


@dataclass
class Platform:
    """A live server, its receiver and a client, as one application's SDK sees them."""

    server: LiveServer
    receiver: Receiver
    client: httpx.Client
    root: Path

    @property
    def engine(self) -> Any:
        """The server's :class:`~engine.server.app.Engine`."""
        return self.server.app.state.engine

    def post(self, path: str, **body: Any) -> dict[str, Any]:
        """POST ``body`` as JSON to ``/ipcc/call/<path>`` (the demo application unless ``appId`` is given)."""
        body.setdefault("appId", DEMO_APP_ID)
        return self.client.post(f"/ipcc/call/{path}", json=body).json()

    def dial(self, called: str = "13800138000", **fields: Any) -> str:
        """``outCall`` ``called``; returns the ``callId`` (asserting ``000000``)."""
        answer = self.post("outCall", called=called, **fields)
        assert answer["code"] == "000000", answer
        return answer["callId"]

    def events(self, *call_ids: str) -> list[dict[str, Any]]:
        """The events the receiver acknowledged for ``call_ids``, in arrival order."""
        with self.receiver.lock:
            return [event for event in self.receiver.acked if event.get("callId") in call_ids]

    def wait(self, call_id: str, event: str, count: int = 1, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        """Wait until the receiver has ``count`` events named ``event`` of ``call_id``; all of the call's events."""
        def enough() -> list[dict[str, Any]] | None:
            events = self.events(call_id)
            return events if sum(e.get("event") == event for e in events) >= count else None

        return wait_for(enough, timeout_s, f"{count} {event} of {call_id}")


@contextmanager
def platform_server(root: Path, voices: Path, **settings: Any) -> Iterator[Platform]:
    """A :class:`Platform` with the demo application, :data:`OTHER_APP`, :data:`NUMERIC_APP` and :data:`ROUTES`."""
    receiver = Receiver(ack={"code": "0", "message": "0"})
    apps = {app_id: Application(app_id, callback_url=receiver.url) for app_id in (DEMO_APP_ID, OTHER_APP,
                                                                                  NUMERIC_APP)}
    options = {"voices": voices, "recordings": root / "recordings", "state_dir": root / "state",
               "retry": RetryPolicy(0.01, 2, 0.05, 2.0), **settings}
    config = options.pop("config", Config(apps, ROUTES))
    server = LiveServer(create_app(ServerSettings(config=config, **options), speaker=FakeSpeaker(),
                                   clock=ScaledClock(25)))
    try:
        with httpx.Client(base_url=server.url, timeout=15) as client:
            yield Platform(server, receiver, client, root)
    finally:
        server.close()
        receiver.close()


def markdown_tables(text: str) -> dict[str, dict[str, str]]:
    """The README's event tables: ``#### `name``` headings, each followed by a field | type | meaning table."""
    tables: dict[str, dict[str, str]] = {}
    for match in re.finditer(r"^#### `(\w+)`\n\n((?:\|.*\n)+)", text, re.MULTILINE):
        rows = [line.split("|")[1:-1] for line in match.group(2).splitlines()[2:]]
        tables[match.group(1)] = {cells[0].strip().strip("`"): cells[1].strip() for cells in rows}
    return tables


JSON_TYPES = {"string": str, "int": int, "bool": bool}


def check_against_table(event: dict[str, Any], tables: dict[str, dict[str, str]]) -> bool:
    """Assert ``event`` has exactly its README table's fields, of their types; False when it has no table."""
    table = tables.get(event.get("event", ""))
    if table is None:
        return False
    assert set(event) == set(table), (event["event"], sorted(set(event) ^ set(table)))
    for name, kind in table.items():
        assert type(event[name]) is JSON_TYPES[kind], (event["event"], name, event[name])
    return True

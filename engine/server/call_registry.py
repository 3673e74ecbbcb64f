"""The registry of live calls, as the HTTP side sees them: which call ids are live for which application.

Kept under one lock (:attr:`CallRegistry.lock`): the :class:`~engine.server.switchboard.Switchboard` holds it
while it checks, changes the registry and posts the matching command to the media thread, so commands arrive
in the order the registry accepted them. The methods marked "lock held" expect the caller to hold it; the
read-only lookups do not need it (one dict read).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from engine.errors import BusyError, QueueFullError, UnknownCallError


@dataclass
class _Live:
    app_id: str
    limit: int
    held: int = 0
    info: Any = None  # the endpoint's CallInfo (what the call events say), when it has one
    on_worker: bool = False  # its media plays on a media worker (whose headroom admitted it)


class CallRegistry:
    """Live calls by id (application, requests held, call info) and live calls per application."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._live: dict[str, _Live] = {}
        self._per_app: dict[str, int] = {}

    def check(self, app_id: str, call_id: str) -> None:
        """:class:`UnknownCallError` (``108105``) unless ``call_id`` is a live call of ``app_id``."""
        live = self._live.get(call_id)
        if live is None or live.app_id != app_id:
            raise UnknownCallError(f"callId: {call_id[:64]!r} is not a live call of this application")

    def admit(self, app_id: str, max_calls: int, app_calls: int) -> None:
        """(Lock held.) ``108102`` beyond ``max_calls`` live calls, ``BusyError`` beyond ``app_calls`` of ``app_id``."""
        if len(self._live) >= max_calls:
            raise QueueFullError(f"called: the engine already holds {max_calls} live calls")
        if self._per_app.get(app_id, 0) >= app_calls:
            raise BusyError(f"appId: the application already holds {app_calls} live calls")

    def add(self, app_id: str, call_id: str, limit: int, info: Any, on_worker: bool = False) -> None:
        """(Lock held.) A new live call holding at most ``limit + 1`` requests."""
        self._live[call_id] = _Live(app_id, limit, info=info, on_worker=on_worker)
        self._per_app[app_id] = self._per_app.get(app_id, 0) + 1

    def forget(self, call_id: str) -> bool:
        """(Lock held.) Take ``call_id`` out of the registry; False when it was not there."""
        live = self._live.pop(call_id, None)
        if live is None:
            return False
        left = self._per_app[live.app_id] - 1
        if left:
            self._per_app[live.app_id] = left
        else:
            del self._per_app[live.app_id]
        return True

    def hold(self, app_id: str, call_id: str) -> None:
        """(Lock held.) Check that a request may be queued on the call (``108105``, ``108102``), without taking it."""
        self.check(app_id, call_id)
        live = self._live[call_id]
        if live.held > live.limit:
            raise QueueFullError(f"callId: the call's queue is full ({live.limit} requests waiting)")

    def take(self, call_id: str) -> None:
        """(Lock held, after :meth:`hold`.) The call holds one more request."""
        self._live[call_id].held += 1

    def release(self, call_id: str) -> bool | None:
        """(Lock held.) A request of ``call_id`` ended: True when the call holds none now (None: not live)."""
        live = self._live.get(call_id)
        if live is None:
            return None
        live.held -= 1
        return not live.held

    def holds_requests(self, call_id: str) -> bool:
        """True when the live call ``call_id`` holds a request (posted, waiting or playing)."""
        live = self._live.get(call_id)
        return live is not None and bool(live.held)

    def on_worker(self, call_id: str) -> bool:
        """True when the live call ``call_id`` plays on a media worker."""
        live = self._live.get(call_id)
        return live is not None and live.on_worker

    def count(self) -> int:
        """Live calls."""
        return len(self._live)

    def held_total(self) -> int:
        """Requests held by all live calls."""
        return sum(live.held for live in self._live.values())

    def ids(self, app_id: str | None = None) -> list[str]:
        """The live call ids (of ``app_id``, or all)."""
        return [cid for cid, live in self._live.items() if app_id is None or live.app_id == app_id]

    def per_app(self) -> dict[str, int]:
        """Live calls per application (a copy)."""
        return dict(self._per_app)

    def info(self, call_id: str) -> Any:
        """The live call's call info (None: not live, or none)."""
        live = self._live.get(call_id)
        return live.info if live is not None else None

    def is_live(self, call_id: str) -> bool:
        """True while ``call_id`` is a live call (of any application)."""
        return call_id in self._live

    def app_of(self, call_id: str) -> str | None:
        """The application of the live call ``call_id`` (None when it is not live)."""
        live = self._live.get(call_id)
        return live.app_id if live is not None else None

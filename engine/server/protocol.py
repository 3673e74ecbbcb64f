"""uvicorn's HTTP protocol with read deadlines and a cap on open connections (slowloris is closed within seconds).

uvicorn reads headers and bodies without a deadline: a client sending a header byte a second holds its
connection for ever. :func:`guarded_protocol` makes a subclass of uvicorn's httptools protocol that

* closes a connection whose request headers are not complete ``header_timeout_s`` after it opened, or after the
  first byte of a request on a kept-alive connection (uvicorn's own keep-alive timeout covers the quiet time
  between requests);
* closes a connection whose body is not complete ``body_timeout_s`` after its headers;
* closes a new connection at once when ``max_connections`` are open.

:func:`uvicorn_options` gives the keyword arguments of ``uvicorn.run`` / ``uvicorn.Config`` for these settings.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from engine.server.limits import GuardSettings

log = logging.getLogger(__name__)
KEEP_ALIVE_S = 5  # uvicorn's own default: a quiet kept-alive connection is closed after this


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the read deadlines and the connection cap of the class attributes."""

    header_timeout_s: float = 5.0
    body_timeout_s: float = 10.0
    max_connections: int = 1000
    closed_slow = 0  # connections closed for a missed deadline (all instances of the class)
    refused = 0  # connections closed for the cap

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept the connection (or close it over the cap) and start the header deadline."""
        self._deadline_s: float | None = None  # on the loop's clock; None: no deadline now
        self._deadline_what = ""
        self._timer: asyncio.TimerHandle | None = None  # fires at ``_timer_at_s``, no later than the deadline
        self._timer_at_s = 0.0
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            type(self).refused += 1
            log.warning("connection refused: %d connections open (at most %d)", len(self.connections) - 1,
                        self.max_connections)
            transport.close()
            return
        self._arm(self.header_timeout_s, "headers")

    def _arm(self, seconds: float, what: str) -> None:
        """Set the deadline; a timer is made only when none fires by then (not two per request)."""
        deadline_s = self.loop.time() + seconds
        self._deadline_s, self._deadline_what = deadline_s, what
        if self._timer is None or self._timer_at_s > deadline_s:
            self._schedule(deadline_s)

    def _schedule(self, at_s: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at_s = at_s
        self._timer = self.loop.call_at(at_s, self._check)

    def _disarm(self) -> None:
        self._deadline_s = None  # the pending timer finds no deadline and lapses

    def _check(self) -> None:
        """The timer: close the connection if its deadline passed, else wait for the deadline it has now."""
        self._timer = None
        deadline_s = self._deadline_s
        if deadline_s is None:
            return
        if deadline_s > self.loop.time():
            self._schedule(deadline_s)
            return
        self._deadline_s = None
        if not self.transport.is_closing():
            type(self).closed_slow += 1
            log.info("connection from %s closed: %s not received in time", self.client and self.client[0],
                     self._deadline_what)
            self.transport.close()

    def on_message_begin(self) -> None:
        """A request starts: its headers must come within the header deadline."""
        super().on_message_begin()
        if self._deadline_s is None:
            self._arm(self.header_timeout_s, "headers")

    def on_headers_complete(self) -> None:
        """Headers in: the body must come within the body deadline."""
        self._arm(self.body_timeout_s, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The request is read: no deadline until the next one starts."""
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadline and its timer with the connection."""
        self._deadline_s = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)


def guarded_protocol(settings: GuardSettings) -> type[GuardedProtocol]:
    """A :class:`GuardedProtocol` subclass with ``settings``' timeouts and connection cap."""
    return type("GuardedHttpProtocol", (GuardedProtocol,), {
        "header_timeout_s": settings.header_timeout_s, "body_timeout_s": settings.body_timeout_s,
        "max_connections": settings.max_connections})


def uvicorn_options(settings: GuardSettings) -> dict[str, Any]:
    """``uvicorn.run`` keyword arguments: the guarded protocol, keep-alive, and graceful-shutdown bounds."""
    return {"http": guarded_protocol(settings), "timeout_keep_alive": KEEP_ALIVE_S,
            "timeout_graceful_shutdown": 10}

"""The SIP transport: a UDP socket on its own thread's asyncio loop, feeding the user agent, firing timers.

Everything of the SIP layer runs on this one thread (``ipcc-sip``); other threads hand it work with
:meth:`SipTransport.call_soon`. Timers fire every :data:`TIMER_PERIOD_S` against the injected clock's time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from engine.media.pacer import Clock, MonotonicClock
from engine.net.timers import Timers

log = logging.getLogger(__name__)
TIMER_PERIOD_S = 0.01
Address = tuple[str, int]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.on_datagram(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP socket error: %s", exc)


class SipTransport:
    """UDP on ``host:port`` (0: any free port); ``on_datagram(data, source)`` runs on the SIP thread."""

    def __init__(self, host: str, port: int, clock: Clock | None = None) -> None:
        self.host = host
        self.port = port
        self.clock = clock or MonotonicClock()
        self.timers = Timers(self.clock.now())
        self.on_datagram: Callable[[bytes, Address], None] = lambda data, source: None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        """Bind and start the SIP thread (raises ``OSError`` when the address cannot be bound)."""
        self._thread = threading.Thread(target=self._run, name="ipcc-sip", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            transport, _ = loop.run_until_complete(loop.create_datagram_endpoint(
                lambda: _Protocol(self._receive), local_addr=(self.host, self.port)))
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]
        loop.call_soon(self._fire_timers)
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            transport.close()
            loop.close()

    def _receive(self, data: bytes, source: Address) -> None:
        try:
            self.on_datagram(data, source)
        except Exception:
            log.exception("SIP datagram handling failed")

    def _fire_timers(self) -> None:
        try:
            self.timers.run_due(self.clock.now())
        except Exception:
            log.exception("SIP timers failed")
        assert self._loop is not None
        self._loop.call_later(TIMER_PERIOD_S, self._fire_timers)

    def send(self, data: bytes, address: Address) -> None:
        """Send a datagram (SIP thread)."""
        if self._transport is not None:
            self._transport.sendto(data, address)

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the SIP thread (from any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn)

    def close(self) -> None:
        """Stop the SIP thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

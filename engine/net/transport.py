"""The SIP transport: UDP and TCP on one address, on its own thread's asyncio loop, feeding the user agent.

Everything of the SIP layer runs on this one thread (``ipcc-sip``); other threads hand it work with
:meth:`SipTransport.call_soon`. Timers fire every :data:`TIMER_PERIOD_S` against the injected clock's time.
With ``tcp`` (the default) a TCP listener (:class:`~engine.net.sip_tcp.TcpConnections`) shares the UDP
socket's port; messages from either reach ``on_message(data, peer)`` with the :class:`~engine.net.sip_peer.Peer`
they came from, and :meth:`SipTransport.send` picks the transport by the peer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from engine.media.pacer import Clock, MonotonicClock
from engine.net.sip_peer import Peer, as_peer
from engine.net.sip_tcp import DEFAULT_IDLE_S, DEFAULT_MAX_CONNECTIONS, TcpConnections
from engine.net.timers import Timers

log = logging.getLogger(__name__)
TIMER_PERIOD_S = 0.01
#: Tries at a port free for both UDP and TCP when any port will do.
_BIND_TRIES = 8


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Peer], None]) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.on_datagram(data, Peer(addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP socket error: %s", exc)


class SipTransport:
    """UDP (and TCP) on ``host:port`` (0: any port free for both); ``on_message`` runs on the SIP thread.

    ``tcp_idle_s`` (default 300) and ``tcp_max_connections`` (default 1024): see
    :class:`~engine.net.sip_tcp.TcpConnections`.
    """

    def __init__(self, host: str, port: int, clock: Clock | None = None, tcp: bool = True,
                 tcp_idle_s: float = DEFAULT_IDLE_S, tcp_max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        self.host = host
        self.port = port
        self.clock = clock or MonotonicClock()
        self.timers = Timers(self.clock.now())
        self.on_message: Callable[[bytes, Peer], None] = lambda data, source: None
        self.tcp = TcpConnections(self.timers, self._receive, tcp_max_connections, tcp_idle_s) if tcp else None
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

    async def _bind(self) -> asyncio.DatagramTransport:
        """TCP then UDP on one port (any free one when ``port`` is 0: a few tries)."""
        loop = asyncio.get_running_loop()
        for attempt in range(_BIND_TRIES):
            port = self.port
            if self.tcp is not None:
                port = await self.tcp.start(self.host, port)
            try:
                transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self._receive),
                                                                   local_addr=(self.host, port))
            except OSError:
                if self.tcp is not None:
                    self.tcp.close()
                if self.port or attempt == _BIND_TRIES - 1:
                    raise
                continue
            self.port = transport.get_extra_info("sockname")[1]
            return transport
        raise OSError("no port free for both UDP and TCP")  # not reached

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            transport = loop.run_until_complete(self._bind())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._transport = transport
        loop.call_soon(self._fire_timers)
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            if self.tcp is not None:
                self.tcp.close()
            transport.close()
            loop.run_until_complete(asyncio.sleep(0))  # let the closes happen
            loop.close()

    def _receive(self, data: bytes, source: Peer) -> None:
        try:
            self.on_message(data, source)
        except Exception:
            log.exception("SIP message handling failed")

    def _fire_timers(self) -> None:
        try:
            self.timers.run_due(self.clock.now())
        except Exception:
            log.exception("SIP timers failed")
        assert self._loop is not None
        self._loop.call_later(TIMER_PERIOD_S, self._fire_timers)

    def send(self, data: bytes, address: Peer | tuple[str, int]) -> None:
        """Send a message to ``address`` over its transport (SIP thread; ``OSError`` when it cannot)."""
        peer = as_peer(address)
        if peer.reliable:
            if self.tcp is None:
                raise OSError("SIP over TCP is off")
            self.tcp.send(data, peer)
        elif self._transport is not None:
            self._transport.sendto(data, (peer.host, peer.port))

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

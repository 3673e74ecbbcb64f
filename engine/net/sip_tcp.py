"""SIP over TCP (RFC 3261 §18): a listener beside the UDP socket, connections reused both ways, capped.

Runs on the SIP thread's asyncio loop (:class:`~engine.net.transport.SipTransport` owns it). Each connection
frames its stream with a :class:`~engine.net.sip_stream.StreamFramer`; messages go to ``on_message(data, peer)``
with ``peer`` = ``Peer(host, port, "tcp")`` of the connection's far end, and whatever is sent to that peer
leaves on the same connection (responses and in-dialog requests reuse it). Sending to a peer with no connection
opens one (outbound ``;transport=tcp``), the message queued until it is up. Limits: at most
``max_connections`` (more are closed at once), at most ``max_bytes`` buffered each way per connection, and a
connection silent for ``idle_s`` seconds of the injected clock is closed unless ``in_use(peer)`` (a live call
still needs it); a source ``allow`` refuses is closed when it connects. A broken stream is answered ``400``
when its header can be (``on_broken``) and closed. Every drop is counted in :attr:`TcpConnections.counters`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from engine.net.sip_peer import TCP, Peer
from engine.net.sip_stream import MAX_STREAM_BYTES, FramingError, StreamFramer
from engine.net.timers import Timers

log = logging.getLogger(__name__)
DEFAULT_IDLE_S = 300.0
DEFAULT_MAX_CONNECTIONS = 1024
#: How often idle connections are looked for (seconds of the injected clock).
SWEEP_S = 1.0
OnMessage = Callable[[bytes, Peer], None]


class _Connection(asyncio.Protocol):
    """One TCP connection (accepted or opened); sends before it is up wait in ``pending``."""

    def __init__(self, owner: TcpConnections, peer: Peer | None = None) -> None:
        self.owner = owner
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self.framer = StreamFramer(owner.max_bytes)
        self.pending: list[bytes] = []
        self.last_active = owner.timers.now

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.peer is None:  # accepted: the far end's address (dialled: the peer it was dialled as)
            name = transport.get_extra_info("peername")
            self.peer = Peer(name[0], name[1], TCP)
        if not self.owner.opened(self):
            transport.abort()
            return
        for data in self.pending:
            self.write(data)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        self.last_active = self.owner.timers.now
        self.owner.received(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.closed(self)

    def write(self, data: bytes) -> None:
        """Send ``data`` now, or once connected; a peer that does not read past the cap is dropped."""
        if self.transport is None:
            if sum(map(len, self.pending)) + len(data) > self.owner.max_bytes:
                self.owner.counters["tcp_write_overflow"] += 1  # still connecting: no more than the cap waits
                return
            self.pending.append(data)
            return
        self.last_active = self.owner.timers.now
        self.transport.write(data)
        if self.transport.get_write_buffer_size() > self.owner.max_bytes:
            self.owner.counters["tcp_write_overflow"] += 1
            self.transport.abort()

    def close(self) -> None:
        """Close (what was written still leaves)."""
        if self.transport is not None:
            self.transport.close()


class TcpConnections:
    """The TCP side of the SIP transport: ``start(loop, host, port)`` listens; :meth:`send` writes."""

    def __init__(self, timers: Timers, on_message: OnMessage, max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 idle_s: float = DEFAULT_IDLE_S, max_bytes: int = MAX_STREAM_BYTES) -> None:
        self.timers = timers
        self.on_message = on_message
        self.on_broken: Callable[[bytes, str, Peer], bytes | None] = lambda head, reason, peer: None
        #: A connection we dialled could not be opened (the user agent fails what waited for it).
        self.on_unreachable: Callable[[Peer], None] = lambda peer: None
        self.in_use: Callable[[], set[Peer]] = set
        #: Which sources may connect (``[sip] allow``; None: any): others are closed at once and counted.
        self.allow: Callable[[Peer], bool] | None = None
        self.max_connections = max_connections
        self.idle_s = idle_s
        self.max_bytes = max_bytes
        self.counters: Counter[str] = Counter()
        self._connections: dict[Peer, _Connection] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._sweeping = False

    def __len__(self) -> int:
        return len(self._connections)

    def connected(self, peer: Peer) -> bool:
        """True while a connection to or from ``peer`` is open (or opening)."""
        return peer in self._connections

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (on the SIP loop); returns the port."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(lambda: _Connection(self), host, port)
        if not self._sweeping:
            self._sweeping = True
            self.timers.after(SWEEP_S, self._sweep)
        return self._server.sockets[0].getsockname()[1]

    def opened(self, connection: _Connection) -> bool:
        """A connection is up; False (closed, counted) past ``max_connections``."""
        assert connection.peer is not None
        known = self._connections.get(connection.peer)
        if known is not connection and self.allow is not None and not self.allow(connection.peer):
            self.counters["tcp_refused_source"] += 1
            return False
        if known is not connection and len(self._connections) >= self.max_connections:
            self.counters["tcp_refused"] += 1
            return False
        self._connections[connection.peer] = connection
        self.counters["tcp_opened"] += 1
        return True

    def received(self, connection: _Connection, data: bytes) -> None:
        """Bytes read: each complete message to ``on_message``; a broken stream answered and closed."""
        assert connection.peer is not None
        try:
            messages = connection.framer.feed(data)
        except FramingError as exc:
            self.counters["tcp_broken"] += 1
            log.info("SIP over TCP from %s:%d: %s; closing", connection.peer[0], connection.peer[1], exc.reason)
            answer = self.on_broken(exc.head, exc.reason, connection.peer) if exc.head else None
            if answer:
                connection.write(answer)
            connection.close()
            return
        for message in messages:
            self.counters["tcp_messages"] += 1
            try:
                self.on_message(message, connection.peer)
            except Exception:
                log.exception("SIP message over TCP failed")
        for _ in range(connection.framer.pings):
            connection.write(b"\r\n")  # the pong of a keep-alive ping
        connection.framer.pings = 0

    def closed(self, connection: _Connection) -> None:
        """A connection went away (either side)."""
        if connection.peer is not None and self._connections.get(connection.peer) is connection:
            del self._connections[connection.peer]

    def send(self, data: bytes, peer: Peer) -> None:
        """Write ``data`` to ``peer`` on its connection, opening one when there is none (SIP thread)."""
        connection = self._connections.get(peer)
        if connection is None:
            connection = self._connect(peer)
        connection.write(data)

    def _connect(self, peer: Peer) -> _Connection:
        assert self._loop is not None
        if len(self._connections) >= self.max_connections:
            self.counters["tcp_refused"] += 1
            raise OSError(f"at most {self.max_connections} SIP connections")
        connection = _Connection(self, peer)
        self._connections[peer] = connection
        self.counters["tcp_dialled"] += 1

        async def connect() -> None:
            try:
                await self._loop.create_connection(lambda: connection, peer.host, peer.port)  # type: ignore[union-attr]
            except OSError as exc:
                self.counters["tcp_connect_failed"] += 1
                log.warning("SIP over TCP to %s:%d failed: %s", peer.host, peer.port, exc)
                self.closed(connection)
                self.on_unreachable(peer)

        self._loop.create_task(connect())
        return connection

    def _sweep(self) -> None:
        """Close the connections silent for ``idle_s`` that no live call needs."""
        try:
            now, busy = self.timers.now, self.in_use()
            for peer, connection in list(self._connections.items()):
                if now - connection.last_active >= self.idle_s and peer not in busy:
                    self.counters["tcp_idle_closed"] += 1
                    connection.close()
                    self.closed(connection)
        finally:
            self.timers.after(SWEEP_S, self._sweep)

    def close(self) -> None:
        """Stop listening and close every connection (SIP thread)."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections.values()):
            connection.close()
        self._connections.clear()

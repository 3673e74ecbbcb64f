"""Where a SIP message comes from or goes to: a host, a port and the transport (RFC 3261 §18).

A :class:`Peer` is a tuple, so code that only needs ``(host, port)`` reads ``peer[0]`` and ``peer[1]``; a plain
``(host, port)`` pair means UDP (:func:`as_peer`).
"""

from __future__ import annotations

from typing import NamedTuple

UDP = "udp"
TCP = "tcp"
TRANSPORTS = (UDP, TCP)


class Peer(NamedTuple):
    """``host``, ``port`` and ``transport`` (``udp`` or ``tcp``: over TCP, the connection to or from there)."""

    host: str
    port: int
    transport: str = UDP

    @property
    def reliable(self) -> bool:
        """True over a stream transport: no retransmissions (RFC 3261 §17.1.2.2, §17.2.2)."""
        return self.transport != UDP

    @property
    def via_token(self) -> str:
        """The Via's transport: ``UDP`` or ``TCP``."""
        return self.transport.upper()

    @property
    def uri_param(self) -> str:
        """``;transport=tcp`` for a Contact over TCP, "" over UDP (the default of a SIP URI)."""
        return "" if self.transport == UDP else f";transport={self.transport}"


def as_peer(address: tuple[str, int] | Peer) -> Peer:
    """``address`` as a :class:`Peer` (a plain pair: UDP)."""
    if isinstance(address, Peer):
        return address
    return Peer(address[0], address[1])

"""RTP ports: the hub's shared socket pair (:func:`bind_pair`), or a socket pair per call drained through one epoll.

The alternative to the hub's one shared socket, for peers that send every call's RTP from one address (sipp
does) so that only the port they send *to* tells calls apart. :meth:`PortPool.drain` copies what is waiting on
the ready sockets into the hub's receive buffer (at most ``per_socket`` datagrams per socket per tick, so a
flood at one call's port costs a bounded amount and delays no other call); sending is one ``sendto`` per call.
"""

from __future__ import annotations

import random
import select
import socket
import threading
from typing import Any

import numpy as np

from engine.net.mmsg import sockaddr

PER_SOCKET = 4
SO_RCVBUFFORCE, SO_SNDBUFFORCE = 33, 32  # Linux; not exported by the socket module
IP_MTU_DISCOVER, IP_PMTUDISC_DO = 10, 2  # Linux; neither exported by the socket module (Python 3.11)


def set_buffers(sock: socket.socket, size: int) -> None:
    """Receive and send buffers of ``size`` bytes: past the system's maximum when allowed (root), else capped."""
    for forced, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, forced, size)
        except OSError:  # not permitted: the kernel caps the size at net.core.rmem_max / wmem_max
            sock.setsockopt(socket.SOL_SOCKET, plain, size)


def dont_fragment(sock: socket.socket) -> None:
    """Send with the IP header's don't-fragment bit (RTP packets are far below any MTU).

    On an unconnected socket the kernel then leaves the IP identification 0 instead of drawing one from its
    shared generator for every packet (``__ip_select_ident``: a hash and an atomic per datagram sent).
    """
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
    except OSError:  # not Linux: the system's default
        pass


def bind_pair(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """RTP on an even ``port`` (0: any) and RTCP on the next one, both sending with don't-fragment."""
    for _ in range(64):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for sock in (rtp, rtcp):
            dont_fragment(sock)
        try:
            rtp.bind((host, port or random.randrange(20000, 60000, 2)))
            rtcp.bind((host, rtp.getsockname()[1] + 1))
            return rtp, rtcp
        except OSError:
            rtp.close()
            rtcp.close()
            if port:
                raise
    raise OSError("no free RTP/RTCP port pair")


class PortPool:
    """Socket pairs on ``host`` with even RTP ports in ``[first, last)`` (``first`` 0: the kernel chooses)."""

    def __init__(self, host: str, first: int = 0, last: int = 0) -> None:
        if first and (first % 2 or last <= first + 1):
            raise ValueError(f"RTP port range {first}-{last}: need an even first port and room for a pair")
        self.host = host
        self.first, self.last = first, last
        self._next = first
        self._lock = threading.Lock()
        self._epoll = select.epoll()
        self._owners: dict[int, tuple[Any, bool]] = {}  # fd → (session, is_rtcp)

    def open(self) -> tuple[socket.socket, socket.socket]:
        """A bound, non-blocking (RTP, RTCP) pair; ``OSError`` when the range is exhausted (any thread)."""
        with self._lock:
            tries = max((self.last - self.first) // 2, 1) if self.first else 64
            for _ in range(tries):
                rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                port = 0
                if self.first:
                    port = self._next
                    self._next = self.first if self._next + 2 >= self.last else self._next + 2
                try:
                    rtp.bind((self.host, port))
                    if not port and rtp.getsockname()[1] % 2:
                        raise OSError("odd port")
                    rtcp.bind((self.host, rtp.getsockname()[1] + 1))
                except OSError:
                    rtp.close()
                    rtcp.close()
                    continue
                for sock in (rtp, rtcp):
                    sock.setblocking(False)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 << 10)
                return rtp, rtcp
        raise OSError(f"no free RTP port pair in {self.first}-{self.last}")

    def register(self, session: Any) -> None:
        """Listen on ``session.sockets`` (media thread)."""
        for sock, is_rtcp in ((session.sockets[0], False), (session.sockets[1], True)):
            self._owners[sock.fileno()] = (session, is_rtcp)
            self._epoll.register(sock.fileno(), select.EPOLLIN)

    def unregister(self, session: Any) -> None:
        """Stop listening and close ``session.sockets``."""
        for sock in session.sockets:
            self._owners.pop(sock.fileno(), None)
            try:
                self._epoll.unregister(sock.fileno())
            except (OSError, ValueError):
                pass
            sock.close()

    def drain(self, data: np.ndarray, names: np.ndarray) -> tuple[int, np.ndarray, list[Any], list[tuple[bytes, Any]]]:
        """Read the ready sockets into ``data``/``names`` rows: (count, lengths, session per row, RTCP packets)."""
        count = 0
        lengths = np.zeros(len(data), dtype=np.int64)
        sessions: list[Any] = []
        rtcp: list[tuple[bytes, Any]] = []
        for fd, _ in self._epoll.poll(0):
            owner = self._owners.get(fd)
            if owner is None:
                continue
            session, is_rtcp = owner
            sock = session.sockets[1 if is_rtcp else 0]
            for _ in range(PER_SOCKET):
                if count == len(data):
                    return count, lengths[:count], sessions, rtcp
                try:
                    if is_rtcp:
                        rtcp.append((sock.recv(2048), session))
                        continue
                    n, (host, port) = sock.recvfrom_into(data[count])
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                names[count] = np.frombuffer(sockaddr(host, port), dtype=np.uint8)
                lengths[count] = n
                sessions.append(session)
                count += 1
        return count, lengths[:count], sessions, rtcp

    def close(self) -> None:
        """Close the epoll."""
        self._epoll.close()

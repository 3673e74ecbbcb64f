"""The RTP hub's outgoing side: each tick's packets built at once into a frame, then sent group by group.

:meth:`Outbound.build` (media thread, after the media loop's tick) encodes every sending call's played frame
to G.711 in one table look-up and writes every header in one pass into a :class:`PacketFrame`, the rows in
send order: by the call's send *group* (0 to ``groups - 1``), so that each group is one run of rows, one
``sendmmsg`` (or one ``sendto`` per call with per-call ports). A group is a phase of the 20 ms period: group
``g`` of a tick is due ``g * period / groups`` after the tick's deadline (see :mod:`engine.net.rtp_sender`),
each call keeping its group for life, so that every stream's packets stay exactly one period apart while the
kernel's cost of the sends is spread over the period instead of piling up at its start.

A ring of :data:`FRAMES` frames lets the media thread build the next tick's packets while a sender still sends
earlier ticks'; :meth:`Outbound.build` waits for a frame to be free (never overwrites one waiting to be sent).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.format import SAMPLES_PER_FRAME
from engine.net import g711
from engine.net.mmsg import message_array, send_batch
from engine.net.rtp import HEADER_BYTES, write_headers

if TYPE_CHECKING:
    from engine.net.rtp_hub import RtpHub

log = logging.getLogger(__name__)
PACKET_BYTES = HEADER_BYTES + SAMPLES_PER_FRAME
FRAMES = 6  # frames in the ring: one being built, the others waiting or being sent
FREE_WAIT_S = 5.0  # how long build waits for a frame still being sent (a sender gone) before taking it anyway


class PacketFrame:
    """One tick's outgoing packets in send order: row ``i`` of ``data`` goes to the address in ``names[i]``.

    ``bounds[g]:bounds[g + 1]`` are the rows of group ``g``; ``targets`` (per-call ports only) the (socket,
    address) of each row. ``free`` is set once every group is sent.
    """

    def __init__(self, capacity: int, groups: int) -> None:
        self.data = np.zeros((capacity, PACKET_BYTES), dtype=np.uint8)
        self.names = np.zeros((capacity, 16), dtype=np.uint8)
        self._iovs, self.msgs, _ = message_array(capacity, self.data, self.names)
        self.count = 0
        self.bounds = np.zeros(groups + 1, dtype=np.int64)
        self.targets: list[tuple[Any, tuple[str, int]]] = []
        self.free = threading.Event()
        self.free.set()

    def group(self, g: int) -> tuple[int, int]:
        """The rows ``(start, count)`` of group ``g``."""
        start = int(self.bounds[g])
        return start, int(self.bounds[g + 1]) - start


class Outbound:
    """The packet frames of a hub of ``capacity`` calls, in ``groups`` send groups."""

    def __init__(self, capacity: int, groups: int = 1) -> None:
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        self.groups = groups
        self.frames = [PacketFrame(capacity, groups) for _ in range(FRAMES)]
        self._next = 0
        self.load = np.zeros(groups, dtype=np.int64)  # calls in each group
        self.waits = 0  # builds that found their frame still being sent
        self._order: tuple[np.ndarray, np.ndarray] | None = None  # the sending slots in send order, group bounds

    def assign(self) -> int:
        """A group for a new call: the least loaded one."""
        g = int(np.argmin(self.load))
        self.load[g] += 1
        return g

    def release(self, group: int) -> None:
        """A call of ``group`` left."""
        self.load[group] -= 1

    def reorder(self) -> None:
        """A call came, left, or started or stopped sending: the send order is found again at the next build."""
        self._order = None

    def _send_order(self, hub: RtpHub, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The sending slots in send order (by group, then slot) and each group's first row (one more: the end)."""
        if self._order is None:
            rows = np.flatnonzero(hub.sending[:n])
            if self.groups > 1:
                order = rows[np.argsort(hub.group[rows], kind="stable")]
                bounds = np.searchsorted(hub.group[order], np.arange(self.groups + 1))
            else:
                order, bounds = rows, np.array([0, len(rows)])
            self._order = order, bounds
        return self._order

    def build(self, hub: RtpHub) -> PacketFrame:
        """Every sending call's packet of this tick, from ``hub.played``; advances sequence and timestamp."""
        frame = self.frames[self._next]
        self._next = (self._next + 1) % len(self.frames)
        if not frame.free.is_set():  # the sender is behind: the media loop waits for it (backpressure)
            self.waits += 1
            if not frame.free.wait(FREE_WAIT_S):
                log.error("RTP: a frame was not sent in %g s; reused unsent", FREE_WAIT_S)
        n = len(hub.sessions)
        sending = hub.sending[:n]
        order, bounds = self._send_order(hub, n)
        m = len(order)
        frame.count = m
        frame.bounds[:] = bounds
        frame.targets = []
        if m:
            self._encode(hub, order, frame.data[:m])
            frame.names[:m] = hub.remote_name[order]
            if hub.pool is not None:
                frame.targets = [(hub.sessions[slot].sockets[0], hub.sessions[slot].remote) for slot in order.tolist()]
            frame.free.clear()
        hub.seq[:n] += sending
        hub.packets_sent[:n] += sending
        hub.octets[:n] += sending * SAMPLES_PER_FRAME
        hub.ts[:n] += SAMPLES_PER_FRAME
        hub.marker[:n] &= ~sending
        return frame

    @staticmethod
    def _encode(hub: RtpHub, order: np.ndarray, out: np.ndarray) -> None:
        pt = hub.pt_out[order]
        if (pt == g711.PCMU).all():  # the usual: every call's frame encoded in slot order, the codes then put in order
            n = len(hub.sessions)
            out[:, HEADER_BYTES:] = np.take(g711.ULAW_ENCODE, hub.played[:n].view(np.uint16)).take(order, axis=0)
        else:
            played = hub.played[order]
            for law in (g711.PCMU, g711.PCMA):
                rows = np.flatnonzero(pt == law)
                out[rows, HEADER_BYTES:] = g711.encode(played[rows], law)
        write_headers(out, pt, hub.marker[order], hub.seq[order], hub.ts[order], hub.ssrc[order])

    @staticmethod
    def send_group(frame: PacketFrame, g: int, fd: int) -> tuple[int, int]:
        """Send group ``g`` of ``frame`` (``fd``: the shared socket, unused with per-call ports): (sent, failed)."""
        start, count = frame.group(g)
        if not count:
            return 0, 0
        if not frame.targets:
            return send_batch(fd, frame.msgs, start, count)
        sent = 0
        data = frame.data
        for i, (sock, remote) in enumerate(frame.targets[start : start + count], start):
            try:
                sock.sendto(data[i], remote)
                sent += 1
            except OSError:
                pass
        return sent, count - sent

"""One call's RTP: the media loop's Sink (frames to send) and CallerSource (frames heard), carried by the hub.

The session is a row of the :class:`~engine.net.rtp_hub.RtpHub` (its ``slot``); :meth:`read` and :meth:`write`
are a row copy each, on the media thread. Its remote address, payload types and direction come from SDP
(:meth:`update`, any thread; applied at the next tick). :meth:`ended` is true after ``inactivity_ticks``
without a packet (default 30 s of frames), for the switchboard's hang-up poll.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np

from engine.format import SAMPLE_DTYPE, SAMPLES_PER_FRAME
from engine.net.g711 import PCMU
from engine.net.rtcp import ReportBlock
from engine.net.sdp import Negotiated
from engine.net.telephone_event import ToneEvents

if TYPE_CHECKING:
    from engine.net.rtp_hub import RtpHub
    from engine.net.rtp_rows import HubRows

DEFAULT_INACTIVITY_TICKS = 1500  # 30 s
_SILENT = np.zeros(SAMPLES_PER_FRAME, dtype=SAMPLE_DTYPE)
_SILENT.setflags(write=False)


class RtpSession:
    """One call's media on ``hub``; ``negotiated`` is None until SDP says where to send (offerless INVITE)."""

    def __init__(self, hub: RtpHub, negotiated: Negotiated | None = None,
                 inactivity_ticks: int = DEFAULT_INACTIVITY_TICKS) -> None:
        self.hub = hub
        self.slot = -1
        self.ssrc = random.getrandbits(32)
        self.cname = f"ipcc-{self.ssrc:08x}@{hub.host}"
        self.events = ToneEvents()
        self.quiet_ticks = 0
        self.info_free_ts = 0  # extended RTP timestamp from which the next SIP INFO key may sound
        self.remote_report: ReportBlock | None = None
        self.inactivity_ticks = inactivity_ticks
        self.closed = False
        #: :meth:`stats` as they were when the call closed.
        self.final_stats: dict[str, object] = {}
        self.remote: tuple[str, int] | None = None
        self.payload_type = PCMU
        self.event_payload_type: int | None = None
        self.sends = True
        self.on_hold = False
        #: The media loop's rows hearing and playing this session (-1: none), kept by the hub's row port.
        self.loop_rows = (-1, -1)
        #: Its own (RTP, RTCP) sockets when the hub gives each call a port; None when calls share its socket.
        self.sockets = hub.open_ports()
        self.local_port = self.sockets[0].getsockname()[1] if self.sockets is not None else hub.port
        self._apply(negotiated)
        hub.attach(self)

    def _apply(self, negotiated: Negotiated | None) -> None:
        if negotiated is None:
            return
        self.payload_type = negotiated.payload_type
        self.event_payload_type = negotiated.event_payload_type
        self.on_hold = negotiated.direction in ("sendonly", "inactive") or negotiated.remote_address in ("0.0.0.0",)
        self.sends = negotiated.direction in ("sendrecv", "recvonly") and not self.on_hold
        self.remote = (negotiated.remote_address, negotiated.remote_port)

    def update(self, negotiated: Negotiated) -> None:
        """New SDP from the remote (an answer, a re-INVITE: hold, unhold, another address)."""
        self._apply(negotiated)
        self.hub.retarget(self)

    def latch(self, remote: tuple[str, int]) -> None:
        """Symmetric RTP: the remote sends from ``remote``; send there from now on (media thread)."""
        self.remote = remote

    # -- the media loop's side --------------------------------------------------------------------------

    def read(self, count: int) -> np.ndarray:
        """The caller's next frame (silence before the session is carried)."""
        slot = self.slot
        return self.hub.heard[slot] if slot >= 0 else _SILENT

    def row_port(self) -> HubRows:
        """The hub's row port: the media loop hears and plays every session of the hub at once through it."""
        return self.hub.rows

    def request_started(self) -> None:
        """The caller's audio runs on regardless of requests."""

    def write(self, played: np.ndarray, heard: np.ndarray) -> None:
        """The frame played to the caller in this tick: sent by the hub after the tick."""
        slot = self.slot
        if slot >= 0:
            self.hub.played[slot] = played

    def close(self) -> None:
        """The call is over: the hub stops carrying it."""
        if not self.closed:
            self.closed = True
            self.final_stats = self.stats()
            self.hub.detach(self)

    # -- state ----------------------------------------------------------------------------------------------

    def ended(self) -> bool:
        """True after ``inactivity_ticks`` frames without a packet from the remote (not while on hold)."""
        slot = self.slot
        if slot < 0 or self.on_hold:
            return False
        return self.hub.ticks - int(self.hub.last_rx_tick[slot]) > self.inactivity_ticks

    def stats(self) -> dict[str, object]:
        """Packets sent and received, loss and jitter (both ways when the remote reports), jitter buffer, codec.

        ``jitter_samples``: RFC 3550 interarrival jitter in timestamp units (samples at 8 kHz); the ``remote_``
        figures are None until the remote's RTCP reports; ``payload_type``: the codec's (0 PCMU, 8 PCMA).
        Empty before the hub carries the session.
        """
        slot = self.slot
        if slot < 0:
            return {}
        hub = self.hub
        block = hub.report_block(slot)
        return {"sent": int(hub.packets_sent[slot]), "received": int(hub.received[slot]),
                "lost": block.cumulative_lost if block else 0, "jitter_samples": block.jitter if block else 0,
                "remote_lost": self.remote_report.cumulative_lost if self.remote_report else None,
                "remote_jitter_samples": self.remote_report.jitter if self.remote_report else None,
                "events": self.events.count, "buffer": hub.bank.stats(slot), "payload_type": self.payload_type}

"""A SIP call's signalling state (one INVITE dialog, in or out), and what the user agent tells its owner.

:class:`CallHandler` is the owner's side (the phone service): the user agent calls it on the SIP thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.net.dialog import Dialog
from engine.net.sip_message import SipMessage
from engine.net.sip_peer import Peer
from engine.net.timers import Timer
from engine.net.transaction import Transaction


@dataclass(eq=False)
class SipCall:
    """One INVITE dialog: ``incoming`` (we are the UAS) or not; ``state``: ``early``, ``confirmed``, ``ended``.

    ``remote_sdp``: the remote's latest description (the INVITE's offer, the 2xx's or ACK's answer);
    ``number``: the dialled user part (incoming) or the target (outgoing); ``owner``: the handler's own data;
    ``remote``: the peer the call's messages go to (over TCP: the connection the INVITE came on or went out on).
    """

    incoming: bool
    dialog: Dialog
    invite: SipMessage
    remote: Peer
    number: str
    caller: str
    state: str = "early"
    remote_sdp: bytes = b""
    local_sdp: bytes = b""
    end_reason: str = ""
    owner: Any = None
    transaction: Transaction | None = None
    retransmit: Timer | None = None
    give_up: Timer | None = None
    final: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def call_id(self) -> str:
        """The dialog's Call-ID."""
        return self.dialog.call_id

    @property
    def ended(self) -> bool:
        """True once the call is over."""
        return self.state == "ended"


class CallHandler(Protocol):
    """What the user agent reports about calls (all on the SIP thread)."""

    def incoming(self, call: SipCall) -> None:
        """A new INVITE (100 Trying already sent): answer, ring or reject it through the user agent."""

    def confirmed(self, call: SipCall) -> None:
        """The call is up (incoming: the ACK came; outgoing: the 2xx came and was ACKed)."""

    def ended(self, call: SipCall, reason: str) -> None:
        """The call is over: ``bye`` (remote hung up), ``cancel``, ``local``, ``timeout``, or a status code."""

    def reoffer(self, call: SipCall, sdp: bytes) -> bytes:
        """A re-INVITE's offer; returns the answer (``SdpError``: 488)."""

    def dtmf(self, call: SipCall, key: str, duration_ms: int) -> None:
        """A key sent by SIP INFO ``application/dtmf-relay``."""

    def progress(self, call: SipCall, status: int) -> None:
        """An outgoing call's provisional (18x) or final (≥ 200) status."""

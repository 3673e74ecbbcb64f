"""The state and helpers the user agent's parts share (declarations, provided by the user agent).

:class:`~engine.net.user_agent.UserAgent` is made of parts mixed in: incoming calls, in-dialog requests,
outgoing calls; each reads and calls what is declared here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from engine.net.registrar import Registrar
from engine.net.sip_call import CallHandler, SipCall
from engine.net.sip_message import SipMessage
from engine.net.sip_peer import Peer
from engine.net.timers import Timers
from engine.net.transaction import Transaction


class AgentParts:
    """Declarations only: the user agent's state and helpers, as its parts use them."""

    calls: dict[tuple[str, str], SipCall]
    pending: dict[str, SipCall]
    invites: dict[str, SipCall]
    server_tx: dict[tuple[str, str], Transaction]
    counters: Counter[str]
    handler: CallHandler
    registrar: Registrar
    timers: Timers
    sent_by: str
    send: Callable[[bytes, Peer], None]
    connected: Callable[[Peer], bool]
    contact: Callable[..., str]
    hang_up: Callable[..., Any]
    _respond: Callable[..., SipMessage]
    _client: Callable[..., Transaction]
    _end: Callable[..., Any]
    _dialog_call: Callable[[SipMessage], SipCall | None]
    _dialog_peer: Callable[[SipCall], Peer]

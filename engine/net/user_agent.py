"""The SIP user agent: requests and responses in, transactions and dialogs, calls reported to a handler.

Pure of I/O: messages come in through :meth:`UserAgent.datagram` (a UDP datagram, or one message framed from a
TCP stream) with the :class:`~engine.net.sip_peer.Peer` they came from, and go out through ``send(data, peer)``
over the same transport; time is the injected :class:`~engine.net.timers.Timers`. Served: INVITE (100, then
the handler's 180/200 or a rejection; the 2xx retransmitted until the ACK), ACK (an offerless INVITE's answer
in it), BYE, CANCEL (200, and 487 for the INVITE), OPTIONS, REGISTER
(:class:`~engine.net.registrar.Registrar`), INFO ``application/dtmf-relay``, re-INVITE, NOTIFY; a request in
an unknown dialog ``481``; an unknown method ``501``; a malformed request ``400`` when it can be answered, else
dropped (both counted in ``counters``). Over TCP the transactions retransmit nothing (see
:mod:`engine.net.transaction`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from engine.net.dialog import new_tag
from engine.net.digest import DigestAuth
from engine.net.outgoing import OutgoingCalls, address_of
from engine.net.registrar import Registrar
from engine.net.sip_call import CallHandler, SipCall
from engine.net.sip_in_dialog import DialogRequests
from engine.net.sip_incoming import IncomingCalls
from engine.net.sip_message import ALLOW, REASONS, SipMessage, parse_or_partial, response_to
from engine.net.sip_peer import Peer, as_peer
from engine.net.sip_uri import parse_name_addr, via_sent_by
from engine.net.timers import Timers
from engine.net.transaction import Transaction

log = logging.getLogger(__name__)
KNOWN = set(ALLOW.replace(",", " ").split())
Send = Callable[[bytes, Peer], None]


class UserAgent(IncomingCalls, DialogRequests, OutgoingCalls):
    """SIP on one listening address ``host:port``; ``send(data, peer)`` writes a message."""

    def __init__(self, host: str, port: int, send: Send, timers: Timers, handler: CallHandler,
                 registrar: Registrar | None = None, allow: Callable[[Peer], bool] | None = None,
                 auth: DigestAuth | None = None) -> None:
        self.host = host
        self.port = port
        self._send = send
        self.timers = timers
        self.handler = handler
        self.registrar = registrar or Registrar()
        self.allow = allow
        #: When set, REGISTER and new INVITEs must carry digest credentials (401 with a challenge otherwise).
        self.auth = auth
        self.counters: Counter[str] = Counter()
        self.server_tx: dict[tuple[str, str], Transaction] = {}
        self.client_tx: dict[tuple[str, str], Transaction] = {}
        self.calls: dict[tuple[str, str], SipCall] = {}  # (Call-ID, local tag)
        self.pending: dict[str, SipCall] = {}  # INVITE branch → incoming call not yet answered
        self.invites: dict[str, SipCall] = {}  # INVITE branch → incoming call (kept 32 s after it ends)
        #: Whether the TCP connection to a peer is open (the phone service sets it; without TCP: always).
        self.connected: Callable[[Peer], bool] = lambda peer: True

    @property
    def sent_by(self) -> str:
        """Our Via sent-by."""
        return f"{self.host}:{self.port}"

    def contact(self, user: str = "ipcc", peer: Peer | None = None) -> str:
        """Our Contact header value (``;transport=tcp`` when the dialog runs over TCP with ``peer``)."""
        return f"<sip:{user}@{self.sent_by}{peer.uri_param if peer is not None else ''}>"

    def send(self, data: bytes, address: Peer) -> None:
        """Write a message (errors logged and counted)."""
        try:
            self._send(data, address)
        except OSError as exc:
            self.counters["send_errors"] += 1
            log.warning("SIP send to %s failed: %s", address, exc)

    def peers_in_use(self) -> set[Peer]:
        """The peers of the calls not over and the phones' registered connections (they must stay open)."""
        return {call.remote for call in self.calls.values() if not call.ended} | self.registrar.flows(self.timers.now)

    def unreachable(self, peer: Peer) -> None:
        """No connection to ``peer`` could be opened: our calls still dialling it fail ``503`` (RFC 3261 §8.1.3.1)."""
        for call in [c for c in self.calls.values() if c.remote == peer and not c.incoming and c.state == "early"]:
            self.counters["unreachable"] += 1
            self.handler.progress(call, 503)
            self._end(call, "503")

    # -- input ----------------------------------------------------------------------------------------------

    def datagram(self, data: bytes, source: Peer | tuple[str, int]) -> None:
        """One message from ``source`` (a plain pair: UDP); nothing raises out of here."""
        try:
            self._datagram(data, as_peer(source))
        except Exception:
            self.counters["errors"] += 1
            log.exception("SIP message from %s failed", source)

    def _datagram(self, data: bytes, source: Peer) -> None:
        if not data.strip():
            return  # a keep-alive (CRLF)
        if self.allow is not None and not self.allow(source):
            self.counters["refused_source"] += 1
            return
        message, error = parse_or_partial(data)
        if message is None:
            assert error is not None
            answer = self._refusal(error.reason, error.partial)
            if answer is not None:
                self.send(answer, source)
            return
        if message.is_request:
            self.counters[f"in_{message.method}"] += 1
            self._request(message, source)
        else:
            self._response(message)

    def refusal(self, head: bytes, reason: str) -> bytes | None:
        """A stream's unframable message (its header ``head``), counted: the ``400`` to send, if answerable."""
        message, error = parse_or_partial(head + b"\r\n\r\n")
        return self._refusal(reason, message if message is not None else error.partial if error else None)

    def _refusal(self, reason: str, partial: SipMessage | None) -> bytes | None:
        self.counters["malformed"] += 1
        if partial is None or not partial.is_request or partial.method == "ACK":
            return None
        return response_to(partial, 400, f"Bad Request ({reason[:60]})", new_tag()).to_bytes()

    def _respond(self, tx: Transaction | None, request: SipMessage, source: Peer, status: int,
                 to_tag: str = "", headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> SipMessage:
        response = response_to(request, status, REASONS.get(status, "Unknown"), to_tag, headers, body)
        if tx is not None:
            tx.respond(response)
        else:
            self.send(response.to_bytes(), self._reply_peer(request, source))
        return response

    def _reply_peer(self, request: SipMessage, source: Peer) -> Peer:
        """Where a response goes: ``source`` (its connection over TCP), or that connection closed, the sent-by.

        The top Via's sent-by, port 5060 when it gives none (RFC 3261 §18.2.2).
        """
        if not source.reliable or self.connected(source):
            return source
        host, port = via_sent_by(request.get_all("via")[0])
        return Peer(host, port or 5060, source.transport)

    def _server_tx(self, request: SipMessage, source: Peer) -> Transaction:
        tx = Transaction(request, lambda data: self.send(data, self._reply_peer(request, source)), self.timers,
                         server=True,
                         on_terminated=lambda t: self.server_tx.pop(t.key, None), reliable=source.reliable)
        self.server_tx[tx.key] = tx
        return tx

    def _request(self, request: SipMessage, source: Peer) -> None:
        existing = self.server_tx.get((request.branch, "INVITE" if request.method == "ACK" else request.method))
        if existing is not None:
            existing.receive_request(request)
            return
        if request.method == "ACK":
            self._ack(request)
            return
        tx = self._server_tx(request, source)
        max_forwards = request.get("max-forwards", "70")
        if not max_forwards.isdigit() or int(max_forwards) == 0:
            self._respond(tx, request, source, 483 if max_forwards == "0" else 400, new_tag())
        elif not self._authorised(tx, request, source):
            return
        elif request.method not in KNOWN:
            self._respond(tx, request, source, 501, new_tag(), [("allow", ALLOW)])
        elif request.method == "OPTIONS":
            self._respond(tx, request, source, 200, new_tag(), [("allow", ALLOW), ("accept", "application/sdp")])
        elif request.method == "REGISTER":
            self._register(tx, request, source)
        elif request.method == "CANCEL":
            self._cancel(tx, request, source)
        elif request.method == "INVITE" and not parse_name_addr(request.get("to")).tag:
            self._new_invite(tx, request, source)
        else:
            self._in_dialog(tx, request, source)

    def _authorised(self, tx: Transaction, request: SipMessage, source: Peer) -> bool:
        """With digest on, REGISTER and a new INVITE need credentials: False (401 sent) without good ones."""
        method = request.method
        if self.auth is None or not (method == "REGISTER" or (method == "INVITE" and not
                                                              parse_name_addr(request.get("to")).tag)):
            return True
        if self.auth.check(request) is not None:
            return True
        self.counters["unauthorised"] += 1
        self._respond(tx, request, source, 401, new_tag(), self.auth.challenges())
        return False

    def _dialog_call(self, request: SipMessage) -> SipCall | None:
        return self.calls.get((request.call_id, parse_name_addr(request.get("to")).tag))

    # -- ending ----------------------------------------------------------------------------------------------

    def _end(self, call: SipCall, reason: str, notify: bool = True) -> None:
        if call.ended:
            return
        call.state = "ended"
        call.end_reason = reason
        for timer in (call.retransmit, call.give_up):
            if timer is not None:
                timer.cancel()

        def forget() -> None:  # late retransmissions get 481 from now on
            self.calls.pop(call.dialog.key, None)
            self.invites.pop(call.invite.branch, None)

        self.timers.after(32.0, forget)
        if notify:
            self.handler.ended(call, reason)

    def hang_up(self, call: SipCall, reason: str = "local") -> None:
        """Hang up: BYE when answered, CANCEL for our unanswered INVITE, 603 for an unanswered incoming one."""
        if call.ended:
            return
        if call.state == "early":
            if call.incoming:
                self.reject(call, 603)
                self._end(call, reason)
            else:
                self._cancel_outgoing(call, reason)
            return
        self._client(call.dialog.request("BYE"), self._dialog_peer(call))
        self._end(call, reason)

    def _dialog_peer(self, call: SipCall) -> Peer:
        """Where our in-dialog request goes: the first route, else the call's peer (its connection over TCP).

        A TCP connection that closed: the remote target instead (the Contact, RFC 3261 §12.2.1.1).
        """
        if call.dialog.route_set:
            return address_of(call.dialog.route_set[0].strip("<>").split(">")[0])
        if call.remote.reliable and not self.connected(call.remote):
            return address_of(call.dialog.remote_target)
        return call.remote

    # -- client transactions ------------------------------------------------------------------------------------

    def _client(self, request: SipMessage, address: Peer, on_response: Callable[[SipMessage], None] | None = None,
                on_timeout: Callable[[], None] | None = None) -> Transaction:
        tx = Transaction(request, lambda data: self.send(data, address), self.timers, server=False,
                         on_response=on_response, on_timeout=on_timeout,
                         on_terminated=lambda t: self.client_tx.pop(t.key, None), reliable=address.reliable)
        self.client_tx[tx.key] = tx
        return tx

    def _response(self, response: SipMessage) -> None:
        if response.branch:
            tx = self.client_tx.get((response.branch, response.cseq[1]))
            if tx is not None:
                tx.receive_response(response)
                return
        if response.cseq[1] == "INVITE" and 200 <= response.status < 300:  # a retransmitted 2xx: ACK again
            call = self.calls.get((response.call_id, parse_name_addr(response.get("from")).tag))
            if call is not None and "ack" in call.extra:
                self.send(call.extra["ack"], call.remote)
        self.counters["stray_responses"] += 1

"""SIP calls on the server: ``serve --sip HOST:PORT`` (or ``[sip] listen``) — inbound numbers, ``outCall`` to ``sip:``.

The glue between :class:`~engine.net.phone.PhoneService` and the switchboard, kept small: the telephony is in
:mod:`engine.net`, the settings in the configuration (:class:`~engine.config.Number`,
:class:`~engine.config.SipSettings`). Inbound, the dialled number is looked up in ``[[numbers]]`` (without
tables every number goes to the first application, answered at once; an unknown number is refused ``404``).
Every inbound call sends ``incomingcall``; with ``autoAnswer`` the engine answers (``callstatrpt`` ansCode 0,
then the number's ``welcome``), without it the phone rings until the application's ``reply`` (accept:
answered as above; reject: ``603`` and the not-connected events; the caller hanging up first, or no
``reply`` within ``ringTimeoutS``: the same with ansCode 2). The caller's BYE ends the call
(``calldisconnectrpt`` reason ``remote``); RTP inactivity (``inactivityS``) hangs it up with reason
``timeout``; the engine's hang-up sends BYE. ``outCall`` with ``called`` = ``sip:user@host:port`` (or
``sip:NAME``, the softphone registered as NAME; also through a route's ``endpoint`` template) dials when the
attempt starts; the final status becomes ``callstatrpt`` (:data:`ANS_CODES`); unanswered within ``timeout``
(default ``ringTimeoutS``) it is cancelled (ansCode 2). ``transfer`` to a ``sip:`` target REFERs the phone
(:meth:`SipGlue.referable`). With ``[sip] record`` a call is recorded to ``<recordings>/<app>/sip-<id>.wav``
(an incoming call's id is its ``callId``; played audio on channel 1, the caller on channel 2).
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import EndpointError, EngineError, UnknownCallError
from engine.media.sinks import WavSink
from engine.net.digest import DigestAuth
from engine.net.phone import Line, PhoneService, with_rtp
from engine.net.rtp_hub import RtpHub
from engine.net.sip_uri import SipParseError, parse_uri
from engine.server.endpoints import Endpoint, EndpointContext, OutCallSpec, register_endpoint
from engine.server.routes import app_folder
from engine.server.sip_welcome import Welcomes
from engine.sip_config import Number, parse_listen
from engine.wire.call_events import (
    ANSWERED,
    BUSY,
    FAILED,
    NO_ANSWER,
    REASON_TIMEOUT,
    REJECTED,
    UNREACHABLE,
    CallInfo,
    incoming_call_report,
)

log = logging.getLogger(__name__)
#: ``callstatrpt`` ``ansCode`` of an outgoing INVITE's final status (others ≥ 300: failed).
ANS_CODES = {200: ANSWERED, 486: BUSY, 600: BUSY, 408: NO_ANSWER, 480: NO_ANSWER, 487: NO_ANSWER,
             403: REJECTED, 488: REJECTED, 603: REJECTED, 404: UNREACHABLE, 410: UNREACHABLE,
             484: UNREACHABLE, 503: UNREACHABLE}
#: ``ended`` reasons of an unanswered outgoing line: cancelled at the ring timeout.
_NO_ANSWER_REASONS = ("cancel", "timeout", "408")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host == "localhost"
    return True


def _allow_list(networks: tuple[str, ...]) -> Callable[[tuple[str, int]], bool] | None:
    """``[sip] allow = ["127.0.0.0/8", ...]``: a check of source addresses (None: everyone)."""
    if not networks:
        return None
    parsed = [ipaddress.ip_network(n, strict=False) for n in networks]

    def allowed(source: tuple[str, int]) -> bool:
        address = ipaddress.ip_address(source[0])
        return any(address in network for network in parsed)

    return allowed


class _Tee:
    """The RTP session, and a recording of both directions."""

    def __init__(self, first: Any, second: WavSink) -> None:
        self.first, self.second = first, second

    def write(self, played: np.ndarray, heard: np.ndarray) -> None:
        self.first.write(played, heard)
        self.second.write(played, heard)

    def close(self) -> None:
        self.first.close()
        self.second.close()


class _SipEndpoint(Endpoint):
    """An outgoing line's endpoint: :meth:`ring` dials when the attempt starts (``Engine.start_call``)."""

    dial: Callable[[float, Callable[[int], None]], None] = lambda _s, _outcome: None

    def ring(self, timeout_s: int, outcome: Callable[[int], None]) -> None:
        """Dial; ``outcome(ans_code)`` is called once (SIP thread): ``ANSWERED`` on 200, else the failure."""
        self.dial(timeout_s, outcome)


class SipGlue:
    """The phone service wired to ``engine`` (an :class:`~engine.server.app.Engine`), on ``listen`` (HOST:PORT).

    ``listen`` defaults to the configuration's ``[sip] listen``.
    """

    def __init__(self, engine: Any, listen: str | None = None) -> None:
        self.engine = engine
        sip = engine.config.sip
        host, port = parse_listen(listen or sip.listen)
        self.default_app = next(iter(engine.config.applications))
        self.numbers: dict[str, Number] = {entry.number: entry for entry in engine.config.numbers}
        self.settings = sip
        self.hub = RtpHub(host, sip.rtp_port, sip.max_calls, per_call_ports=sip.rtp_ports)
        self.phone = PhoneService(host, port, self.hub, self, inactivity_ticks=int(sip.inactivity_s * 50),
                                  allow=_allow_list(sip.allow))
        if not ipaddress.ip_address(host).is_loopback or sip.auth:
            if not sip.users:
                raise ValueError("[sip] users (name = password) is required: SIP off loopback needs digest auth")
            timers = self.phone.transport.timers
            self.phone.agent.auth = DigestAuth(sip.realm, dict(sip.users), lambda: timers.now)
        self.welcomes = Welcomes(engine)
        self.lines: list[Line] = []  # every incoming line seen (tests and status read it)
        self._by_call: dict[str, Line] = {}  # engine call id → its line, until the engine call ends
        board = engine.board
        board.pacer.tick = with_rtp(self.hub, board.pacer.tick)
        register_endpoint("sip", self._out_call)
        engine.call_api.referrer = self  # transfer: REFER instead of a new leg

    def start(self) -> None:
        """Prepare the numbers' welcomes (on the pool: speech is synthesised once), listen for SIP."""
        for entry in self.numbers.values():
            if entry.welcome is not None:
                self.engine.pool.submit(self.welcomes.program, entry.welcome, entry.app_id)
        self.phone.start()
        log.info("SIP on %s:%d, RTP on %s:%d", *self.phone.address, self.hub.host, self.hub.port)

    @property
    def welcomes_ready(self) -> int:
        """How many welcome programs are prepared."""
        return self.welcomes.ready

    def close(self) -> None:
        """Stop listening."""
        self.phone.close()

    # -- lines ----------------------------------------------------------------------------------------------

    def _endpoint(self, line: Line, app_id: str, call_id: str, kind: type[Endpoint] = Endpoint) -> Endpoint:
        sink: Any = line.session
        recording = ""
        if self.settings.record:
            recording = f"{app_folder(app_id)}/sip-{call_id}.wav"
            path = Path(self.engine.settings.recordings) / recording
            path.parent.mkdir(parents=True, exist_ok=True)
            sink = _Tee(line.session, WavSink(path))
        line.data.update(app_id=app_id, call_id=call_id)
        self._by_call[call_id] = line
        return kind(line.session, sink, f"sip:{line.number}", ended=lambda: self._line_over(line),
                    on_close=lambda: self._engine_hung_up(line), recording=recording)

    def _line_over(self, line: Line) -> bool:
        """Polled by the media thread: the far end hung up (True), or RTP went quiet (hung up, reason timeout)."""
        if line.data.get("gone"):
            return True
        if line.session.ended() and not line.data.get("inactive"):
            line.data["inactive"] = True
            try:
                self.engine.board.hang_up(line.data["app_id"], line.data["call_id"], REASON_TIMEOUT)
            except UnknownCallError:
                pass
        return False

    def _info(self, line: Line, app_id: str, call_id: str, direction: str) -> CallInfo:
        return CallInfo(app_id, call_id, line.caller, line.number, self.engine.wall_clock(), direction=direction)

    def incoming(self, line: Line) -> str:
        """A call to one of our numbers: ``incomingcall``, then answered, or ringing until ``reply``."""
        entry = self.numbers.get(line.number) if self.numbers else Number(line.number, self.default_app)
        if entry is None:
            return "404"
        call_id = uuid.uuid4().hex
        endpoint = self._endpoint(line, entry.app_id, call_id)
        info = endpoint.info = self._info(line, entry.app_id, call_id, "in")
        info.recording = endpoint.recording
        line.data.update(welcome=entry.welcome, info=info, endpoint=endpoint)
        self.lines.append(line)
        if not entry.auto_answer:
            self.engine.call_api.inbound.offer(info, lambda accept: self._replied(line, accept))
            self.phone.agent.timers.after(self.settings.ring_timeout_s, lambda: self._unanswered(line))
            return "ring"
        self.engine.delivery.publish(info.app_id, call_id, incoming_call_report(info, self.engine.wall_clock()))
        return "answer" if self._go_live(line) else "503"

    def _go_live(self, line: Line) -> bool:
        """The line's engine call (``callstatrpt`` ansCode 0); False (and the failure's events) if refused."""
        endpoint: Endpoint = line.data["endpoint"]
        try:
            self.engine.board.create(line.data["app_id"], endpoint, line.data["call_id"])
        except EngineError as exc:
            log.warning("incoming call to %s refused: %s", line.number, exc)
            line.data["gone"] = True
            endpoint.discard()
            self.engine.not_connected(line.data["info"], FAILED)
            return False
        return True

    def _replied(self, line: Line, accept: bool) -> None:
        """The application's ``reply`` (HTTP thread)."""
        if line.data.get("gone"):
            return
        if accept and self._go_live(line):
            self.phone.answer(line)
            return
        line.data["gone"] = True
        self.phone.hang_up(line)  # 603 to the ringing call
        if not accept:
            line.data["endpoint"].discard()
            self.engine.not_connected(line.data["info"], REJECTED)

    def _unanswered(self, line: Line) -> None:
        """No ``reply`` within ``ringTimeoutS`` (SIP thread): 603 to the caller, the events of no answer."""
        if self.engine.call_api.inbound.withdraw(line.data["call_id"]):
            line.data["gone"] = True
            self.phone.hang_up(line)
            line.data["endpoint"].discard()
            self.engine.not_connected(line.data["info"], NO_ANSWER)

    def connected(self, line: Line) -> None:
        """Play the number's welcome (prepared on the pool: speech synthesis may take a while)."""
        welcome = line.data.get("welcome")
        if welcome is not None:
            self.engine.pool.submit(self.welcomes.play, welcome, line.data["app_id"], line.data["call_id"])

    def status(self, line: Line, status: int) -> None:
        """An outgoing call's SIP status: the final one decides the attempt (``callstatrpt``)."""
        line.data["status"] = status
        if status >= 300:
            line.data["gone"] = True
        if status >= 200:
            self._decide(line, ANS_CODES.get(status, FAILED))

    def _decide(self, line: Line, ans_code: int) -> None:
        outcome = line.data.pop("outcome", None)  # once: the first final status or end wins
        if outcome is None:
            return
        try:
            outcome(ans_code)
        except EngineError as exc:  # answered, but no room for the call: the endpoint was discarded (BYE)
            log.warning("outgoing call to %s dropped: %s", line.number, exc)
            self.engine.not_connected(line.data["endpoint"].info, FAILED)

    def ended(self, line: Line, reason: str) -> None:
        """The SIP call is over (the far end hung up, or the call failed): the engine call ends at the next poll."""
        line.data["gone"] = True
        line.data["reason"] = reason
        if not self.engine.board.is_live(line.data.get("call_id", "")):
            self._by_call.pop(line.data.get("call_id", ""), None)
        if line.incoming and "info" in line.data:
            if self.engine.call_api.inbound.withdraw(line.data["call_id"]):  # hung up while waiting for reply
                line.data["endpoint"].discard()
                self.engine.not_connected(line.data["info"], NO_ANSWER)
        elif not line.incoming:
            self._decide(line, NO_ANSWER if reason in _NO_ANSWER_REASONS else ANS_CODES.get(
                int(reason) if reason.isdigit() else 0, FAILED))

    def _engine_hung_up(self, line: Line) -> None:
        self._by_call.pop(line.data.get("call_id", ""), None)
        if line.data.get("gone"):
            return
        if "refer_to" in line.data:  # transfer: the phone calls the target, then we hang up (blind transfer)
            self.phone.transfer(line, line.data["refer_to"], hang_up=True)
        else:
            self.phone.hang_up(line)

    # -- transfer -----------------------------------------------------------------------------------------------

    def referable(self, call_id: str, called: str) -> str | None:
        """The REFER target of a transfer of ``call_id`` to ``called`` (None: not a SIP call, or not ``sip:``)."""
        line = self._by_call.get(call_id)
        if line is None or not called.startswith("sip:"):
            return None
        return self._target(called.removeprefix("sip:"))

    def refer(self, call_id: str, target: str) -> None:
        """Make the engine's hang-up of ``call_id`` a REFER to ``target`` (media thread, before the hang-up)."""
        line = self._by_call.get(call_id)
        if line is not None:
            line.data["refer_to"] = target

    # -- outCall ------------------------------------------------------------------------------------------------

    def _target(self, rest: str) -> str:
        """``sip:REST`` as a URI to send to: as given, or ``sip:NAME`` the contact registered as NAME."""
        target = "sip:" + rest
        try:
            uri = parse_uri(target)
        except SipParseError as exc:
            raise EndpointError("called", f"not a SIP URI ({exc.reason})") from None
        if not uri.user and not _is_address(uri.host):  # sip:NUMBER: a softphone registered under it
            bindings = self.phone.agent.registrar.lookup(uri.host, self.phone.transport.timers.now)
            if not bindings:
                raise EndpointError("called", f"{rest[:40]!r} is not registered here")
            target = bindings[-1].contact
        return target

    def _out_call(self, rest: str, spec: OutCallSpec, context: EndpointContext) -> Endpoint:
        line = self.phone.line(self._target(rest), spec.caller or "ipcc")
        endpoint = self._endpoint(line, spec.app_id, uuid.uuid4().hex, _SipEndpoint)
        line.data["endpoint"] = endpoint

        def dial(timeout_s: float, outcome: Callable[[int], None]) -> None:
            assert endpoint.info is not None
            self._by_call.pop(line.data["call_id"], None)
            line.data.update(call_id=endpoint.info.call_id, outcome=outcome)
            self._by_call[endpoint.info.call_id] = line
            self.phone.dial_line(line, ring_timeout_s=timeout_s or self.settings.ring_timeout_s)

        endpoint.dial = dial  # type: ignore[method-assign]
        return endpoint


def attach_sip(engine: Any, listen: str | None = None) -> SipGlue:
    """Start SIP for ``engine`` on ``listen`` (``HOST:PORT``; default the configuration's ``[sip] listen``)."""
    glue = SipGlue(engine, listen)
    glue.start()
    return glue

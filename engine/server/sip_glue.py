"""SIP calls on the server: ``serve --sip HOST:PORT`` (or ``[sip] listen``) — inbound numbers, ``outCall`` to ``sip:``.

The glue between :class:`~engine.net.phone.PhoneService` and the switchboard, kept small: the telephony is in
:mod:`engine.net`, the settings in the configuration (:class:`~engine.sip_config.Number`,
:class:`~engine.sip_config.SipSettings`). SIP listens on UDP and (unless ``[sip] tcp = false``) TCP at the
same address. Inbound, the dialled number is looked up in ``[[numbers]]`` (without
tables every number goes to the first application, answered at once; an unknown number is refused ``404``).
Every inbound call sends ``incomingcall``; with ``autoAnswer`` the engine answers (``callstatrpt`` ansCode 0,
then the number's ``welcome``), without it the phone rings until the application's ``reply`` (accept:
answered as above; reject: ``603`` and the not-connected events; the caller hanging up first, or no
``reply`` within ``ringTimeoutS``: the same with ansCode 2). The caller's BYE ends the call
(``calldisconnectrpt`` reason ``remote``); RTP inactivity (``inactivityS``) hangs it up with reason
``timeout``; the engine's hang-up sends BYE. Outgoing calls and transfer: :mod:`engine.server.sip_outbound`.
With ``[sip] record`` a call is recorded to ``<recordings>/<app>/sip-<id>.wav`` (an incoming call's id is its
``callId``; played audio on channel 1, the caller on channel 2).

With ``[sip] mediaProcesses = N`` (or ``media_processes``) the calls' media plays in N worker processes
(:mod:`engine.server.media_workers`): each SIP call's session is placed on the least loaded worker and its SDP
carries that worker's RTP port; signalling, events, hooks and timers stay here (:mod:`engine.server.media_remote`).
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

from engine.errors import EngineError, UnknownCallError
from engine.net.phone import Line, PhoneService
from engine.net.rtp_hub import RtpHub
from engine.net.rtp_sender import LIVE_SEND_GROUPS, carry
from engine.net.transport import SipTransport
from engine.server.endpoints import Endpoint, register_endpoint
from engine.server.media_remote import WorkerHub
from engine.server.media_workers import MediaWorkers
from engine.server.sip_outbound import OutboundCalls
from engine.server.sip_policy import allow_list, require_auth
from engine.server.sip_recording import recorded, recording_path
from engine.server.sip_welcome import Welcomes
from engine.server.worker_pool import start_workers
from engine.sip_config import Number, parse_listen
from engine.wire.call_events import FAILED, NO_ANSWER, REASON_TIMEOUT, REJECTED, CallInfo, incoming_call_report

log = logging.getLogger(__name__)


class SipGlue(OutboundCalls):
    """The phone service wired to ``engine`` (an :class:`~engine.server.app.Engine`), on ``listen`` (HOST:PORT).

    ``listen`` defaults to the configuration's ``[sip] listen``; ``media_processes`` to its ``[sip]
    mediaProcesses`` (0: the media plays in the server's media thread).
    """

    def __init__(self, engine: Any, listen: str | None = None, media_processes: int | None = None) -> None:
        self.engine = engine
        sip = engine.config.sip
        host, port = parse_listen(listen or sip.listen)
        self.default_app = next(iter(engine.config.applications))
        self.numbers: dict[str, Number] = {entry.number: entry for entry in engine.config.numbers}
        self.settings = sip
        count = sip.media_processes if media_processes is None else media_processes
        self.workers: MediaWorkers | None = None
        self.hub: Any
        if count:
            self.workers = start_workers(engine, count, host)
            self.hub = WorkerHub(self.workers, host, sip.rtp_ports)
        else:
            self.hub = RtpHub(host, sip.rtp_port, sip.max_calls, per_call_ports=sip.rtp_ports,
                              send_groups=LIVE_SEND_GROUPS)
        transport = SipTransport(host, port, tcp=sip.tcp, tcp_idle_s=sip.tcp_idle_s,
                                 tcp_max_connections=sip.tcp_max_connections)
        self.phone = PhoneService(host, port, self.hub, self, inactivity_ticks=int(sip.inactivity_s * 50),
                                  allow=allow_list(sip.allow), transport=transport)
        require_auth(self.phone.agent, host, sip)
        self.welcomes = Welcomes(engine)
        self.lines: list[Line] = []  # every incoming line seen (tests and status read it)
        self._by_call: dict[str, Line] = {}  # engine call id → its line, until the engine call ends
        board = engine.board
        # each tick's packets sent one period on, in groups (by each worker's own sender with workers)
        self.rtp_sender = carry(self.hub, board.pacer) if self.workers is None else None
        register_endpoint("sip", self._out_call)
        engine.call_api.referrer = self  # transfer: REFER instead of a new leg

    def start(self) -> None:
        """Prepare the numbers' welcomes (on the pool: speech is synthesised once), listen for SIP."""
        for entry in self.numbers.values():
            if entry.welcome is not None:
                self.engine.pool.submit(self.welcomes.program, entry.welcome, entry.app_id)
        self.phone.start()
        ports = [w.port for w in self.workers.workers] if self.workers is not None else [self.hub.port]
        log.info("SIP on %s:%d (%s), RTP on %s port %s", *self.phone.address,
                 "UDP" if self.phone.transport.tcp is None else "UDP and TCP", self.hub.host,
                 ", ".join(map(str, ports)))

    @property
    def welcomes_ready(self) -> int:
        """How many welcome programs are prepared."""
        return self.welcomes.ready

    def close(self) -> None:
        """Stop listening and sending."""
        self.phone.close()
        if self.rtp_sender is not None:
            self.rtp_sender.stop()
        if self.workers is not None:
            self.workers.close()

    # -- lines ----------------------------------------------------------------------------------------------

    def _endpoint(self, line: Line, app_id: str, call_id: str, kind: type[Endpoint] = Endpoint) -> Endpoint:
        sink: Any = line.session
        recording = ""
        if self.settings.record and self.workers is not None:  # recorded by the call's worker
            path, recording = recording_path(Path(self.engine.settings.recordings), app_id, call_id)
            line.session.recording = str(path.resolve())
        elif self.settings.record:
            sink, recording = recorded(line.session, Path(self.engine.settings.recordings), app_id, call_id)
        line.data.update(app_id=app_id, call_id=call_id)
        self._by_call[call_id] = line
        return kind(line.session, sink, f"sip:{line.number}", ended=lambda: self._line_over(line),
                    on_close=lambda: self._engine_hung_up(line), recording=recording)

    def _line_over(self, line: Line) -> bool:
        """Polled by the media thread: the far end hung up (True), or RTP went quiet (hung up, reason timeout)."""
        if line.data.get("gone"):
            return True
        quiet = line.session.ended() or getattr(line.session, "quiet", False)  # a worker's session: it says so
        if quiet and not line.data.get("inactive"):
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
            self._outgoing_ended(line, reason)

    def _engine_hung_up(self, line: Line) -> None:
        self._by_call.pop(line.data.get("call_id", ""), None)
        if line.data.get("gone"):
            return
        if "refer_to" in line.data:  # transfer: the phone calls the target, then we hang up (blind transfer)
            self.phone.transfer(line, line.data["refer_to"], hang_up=True)
        else:
            self.phone.hang_up(line)


def attach_sip(engine: Any, listen: str | None = None, media_processes: int | None = None) -> SipGlue:
    """Start SIP for ``engine`` on ``listen`` (``HOST:PORT``; default the configuration's ``[sip] listen``).

    ``media_processes``: media worker processes (default the configuration's ``[sip] mediaProcesses``).
    """
    glue = SipGlue(engine, listen, media_processes)
    glue.start()
    return glue

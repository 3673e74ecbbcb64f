"""SIP calls on the server: ``serve --sip HOST:PORT`` — inbound numbers, ``outCall`` to ``sip:`` URIs.

The glue between :class:`~engine.net.phone.PhoneService` and the switchboard, kept small: the telephony is in
:mod:`engine.net`. Inbound, the dialled number is looked up in the configuration's ``[[numbers]]`` tables
(``number``, ``appId``, ``autoAnswer`` default true, ``welcome``: a multOrders JSON file relative to the
configuration file, played on answer with its ``callId`` replaced by the call's); without tables every number
goes to the first configured application. Unknown numbers are refused ``404``. ``[sip]``: ``rtpPorts``
(``[first, last]``, default ``[20000, 30000]``: a port pair per call; ``"shared"``: one port for every call),
``rtpTimeout`` (seconds without RTP before hanging up, default 30), ``ringTimeout`` (an ``outCall`` not answered
within it is cancelled, default 60 s), ``record``, ``allow`` (source networks
allowed to send SIP, default all), ``users`` (name → password; digest authentication of REGISTER and INVITE,
required when SIP listens off loopback, or with ``auth = true``), ``realm``. The engine call's caller and
sink are the line's RTP session (and a two-channel WAV recording when ``[sip] record = true``: what is played
on channel 1, the caller on channel 2, under the recordings folder). The far end's BYE hangs the engine call
up; the engine's hang-up (``disConnect``, RTP inactivity) sends BYE. ``outCall`` with ``called`` =
``sip:user@host:port`` dials it; ``sip:NAME`` dials the softphone registered as ``NAME`` (REGISTER).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.admission import check_request, prepare
from engine.core.timeline import Program
from engine.errors import EndpointError, EngineError
from engine.media.sinks import WavSink
from engine.net.digest import DigestAuth
from engine.net.phone import Line, PhoneService, with_rtp
from engine.net.rtp_hub import RtpHub
from engine.net.rtp_session import DEFAULT_INACTIVITY_TICKS
from engine.net.sip_message import SipParseError, parse_uri
from engine.server.endpoints import Endpoint, EndpointContext, OutCallSpec, register_endpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Number:
    """An inbound number: which application gets its calls, whether the engine answers, what it plays."""

    number: str
    app_id: str
    auto_answer: bool = True
    welcome: Path | None = None


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port); ``ValueError`` naming the problem."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"--sip: expected HOST:PORT, got {text!r}")
    return host, int(port)


def load_numbers(config_path: Path | None, default_app: str) -> tuple[dict[str, Number], dict[str, Any]]:
    """The ``[[numbers]]`` tables and the ``[sip]`` table of the configuration file (TOML)."""
    if config_path is None:
        return {}, {}
    raw = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
    numbers = {}
    for i, entry in enumerate(raw.get("numbers", [])):
        number, app_id = str(entry.get("number", "")), str(entry.get("appId", default_app))
        if not number:
            raise ValueError(f"numbers[{i}].number is required")
        welcome = entry.get("welcome")
        path = (Path(config_path).parent / welcome) if welcome else None
        numbers[number] = Number(number, app_id, bool(entry.get("autoAnswer", True)), path)
    return numbers, dict(raw.get("sip", {}))


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host == "localhost"
    return True


def _allow_list(networks: Any) -> Any:
    """``[sip] allow = ["127.0.0.0/8", ...]``: a check of source addresses (None: everyone)."""
    if not networks:
        return None
    parsed = [ipaddress.ip_network(str(n), strict=False) for n in networks]

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


class SipGlue:
    """The phone service wired to ``engine`` (an :class:`~engine.server.app.Engine`)."""

    def __init__(self, engine: Any, listen: str, config_path: Path | None = None, rtp_port: int = 0) -> None:
        self.engine = engine
        host, port = parse_listen(listen)
        default_app = next(iter(engine.config.applications))
        self.numbers, sip = load_numbers(config_path, default_app)
        self.default_app = default_app
        self.record = bool(sip.get("record", False))
        self.ring_timeout_s = float(sip.get("ringTimeout", 60))
        inactivity_s = float(sip.get("rtpTimeout", DEFAULT_INACTIVITY_TICKS / 50))
        ports = sip.get("rtpPorts", [20000, 30000])  # per-call ports by default; "shared": one port for all
        per_call = None if ports == "shared" else (int(ports[0]), int(ports[1]))
        self.hub = RtpHub(host, int(sip.get("rtpPort", rtp_port)), int(sip.get("maxCalls", 4096)),
                          per_call_ports=per_call)
        self.phone = PhoneService(host, port, self.hub, self, inactivity_ticks=int(inactivity_s * 50),
                                  allow=_allow_list(sip.get("allow")))
        users = {str(k): str(v) for k, v in dict(sip.get("users", {})).items()}
        if not ipaddress.ip_address(host).is_loopback or sip.get("auth", False):
            if not users:
                raise ValueError("[sip] users (name = password) is required: SIP off loopback needs digest auth")
            timers = self.phone.transport.timers
            self.phone.agent.auth = DigestAuth(str(sip.get("realm", "ipcc-engine")), users, lambda: timers.now)
        self._welcome: dict[str, Program] = {}
        self.lines: list[Line] = []  # every line seen (tests and status read it)
        board = engine.board
        board.pacer.tick = with_rtp(self.hub, board.pacer.tick)
        register_endpoint("sip", self._out_call)

    def start(self) -> None:
        """Prepare the numbers' welcomes (on the pool: speech is synthesised once), listen for SIP."""
        for entry in self.numbers.values():
            if entry.welcome is not None:
                self.engine.pool.submit(self._welcome_program, entry.welcome, entry.app_id, "welcome")
        self.phone.start()
        log.info("SIP on %s:%d, RTP on %s:%d", *self.phone.address, self.hub.host, self.hub.port)

    @property
    def welcomes_ready(self) -> int:
        """How many welcome programs are prepared."""
        return len(self._welcome)

    def close(self) -> None:
        """Stop listening."""
        self.phone.close()

    # -- lines ----------------------------------------------------------------------------------------------

    def _endpoint(self, line: Line) -> Endpoint:
        sink: Any = line.session
        if self.record:
            folder = Path(self.engine.settings.recordings)
            folder.mkdir(parents=True, exist_ok=True)
            sink = _Tee(line.session, WavSink(folder / f"sip-{line.session.ssrc:08x}.wav"))
        return Endpoint(line.session, sink, f"sip:{line.number}", ended=lambda: line.session.ended()
                        or line.data.get("gone", False), on_close=lambda: self._engine_hung_up(line))

    def incoming(self, line: Line) -> str:
        """A call to one of our numbers: an engine call of its application, answered (or ringing)."""
        entry = self.numbers.get(line.number) if self.numbers else Number(line.number, self.default_app)
        if entry is None:
            return "404"
        try:
            call_id = self.engine.board.create(entry.app_id, self._endpoint(line))
        except EngineError as exc:
            log.warning("incoming call to %s refused: %s", line.number, exc)
            return "503"
        line.data.update(app_id=entry.app_id, call_id=call_id, welcome=entry.welcome)
        self.lines.append(line)
        return "answer" if entry.auto_answer else "ring"

    def connected(self, line: Line) -> None:
        """Play the number's welcome (prepared on the pool: speech synthesis may take a while)."""
        welcome = line.data.get("welcome")
        if welcome is not None:
            self.engine.pool.submit(self._play_welcome, line, welcome)

    def _welcome_program(self, path: Path, app_id: str, call_id: str) -> Program | None:
        """The welcome's program (prepared once per file: it does not depend on the call), None if unusable."""
        try:
            program = self._welcome.get(str(path))
            if program is None:
                body = json.loads(path.read_text(encoding="utf-8"))
                body.update(appId=app_id, callId=call_id)
                request, application = check_request(body, self.engine.config, self.engine.library)
                program = self._welcome[str(path)] = prepare(request, self.engine.library, self.engine.speaker,
                                                             application.voice)
            return program
        except Exception:
            log.exception("welcome %s is unusable", path.name)
            return None

    def _play_welcome(self, line: Line, path: Path) -> None:
        app_id, call_id = line.data["app_id"], line.data["call_id"]
        program = self._welcome_program(path, app_id, call_id)
        if program is not None:
            try:
                self.engine.board.submit(app_id, call_id, program)
            except EngineError as exc:  # the call ended meanwhile
                log.info("welcome for %s not played: %s", line.number, exc)

    def status(self, line: Line, status: int) -> None:
        """An outgoing call's SIP status: a failure hangs the engine call up."""
        line.data["status"] = status
        if status >= 300:
            line.data["gone"] = True

    def ended(self, line: Line, reason: str) -> None:
        """The far end hung up (or the call failed): the engine call ends at the next poll."""
        line.data["gone"] = True
        line.data["reason"] = reason

    def _engine_hung_up(self, line: Line) -> None:
        if not line.data.get("gone"):
            self.phone.hang_up(line)

    # -- outCall ------------------------------------------------------------------------------------------------

    def _out_call(self, rest: str, spec: OutCallSpec, context: EndpointContext) -> Endpoint:
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
        line = self.phone.dial(target, spec.caller or "ipcc", ring_timeout_s=self.ring_timeout_s)
        return self._endpoint(line)


def attach_sip(engine: Any, listen: str, config_path: Path | None = None) -> SipGlue:
    """Start SIP for ``engine`` on ``listen`` (``HOST:PORT``)."""
    glue = SipGlue(engine, listen, config_path)
    glue.start()
    return glue

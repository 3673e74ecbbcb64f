"""A media worker process: its own media loop, RTP hub and sender, paced by its own pacer (``[sip] mediaProcesses``).

Started by :class:`~engine.server.media_workers.MediaWorkers` as ``python -m engine.server.media_worker FD FDS
HOST PORT CAPACITY PER_CALL PRIORITY`` (a new interpreter: never a fork of the server, whose speech engine must
not cross a fork); ``FD`` is its end of a socket pair carrying pickled tuples
(:class:`multiprocessing.connection.Connection` framing), ``FDS`` of one carrying the calls' own RTP sockets
(``[sip] rtpPorts``; the server binds them). It binds its shared RTP socket on ``HOST:PORT`` (0: any;
``PER_CALL`` 1: the calls have their own sockets instead; ``PRIORITY`` > 0: its RTP sender thread
``SCHED_FIFO``), answers ``("ready", port, pid)``, then runs.

Commands (applied at the start of the next tick, in arrival order): ``open`` (a session id, the RTP session's state
from SDP, its inactivity ticks: the hub carries it from the INVITE on, as the server's own hub would), ``retarget``
(new SDP state), ``key`` (a SIP INFO key), ``close`` (the session ends), ``add`` (call id, app id, queue limit,
session id, a recording path or ""), ``adopt`` (call id, app id, queue limit, a key script, the token of the caller's
audio or None, whether its recording's file descriptor came just before: a portable call,
:mod:`engine.server.worker_pool`), ``submit`` (call id, request, prompt tokens: :mod:`engine.server.media_prompts`,
a message's silence span and level or None), ``prompt``/``forget``, ``stop``, ``hangup``, ``rtpstats`` (a token,
call ids: answered ``rtp``), ``exit``. Reports, sent after each tick by a writer thread, so the media thread never
waits on the pipe: ``event`` (call id, player event, at sample, call position, its request's start), ``silenced``
(call id, the index of its message watched for silence: stopped on the caller's silence), ``ended`` (call id,
position, RTP stats: after ``hangup``), ``failed`` (the loop failed on the call), ``quiet`` (no RTP for the
inactivity time), ``stats`` (every :data:`STATS_TICKS`), ``rtp`` (token, each asked call's RTP stats). The worker
exits when the server's end closes. Speech is never synthesised here: programs arrive with their audio.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
import threading
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from engine.audio.caller import make_caller
from engine.audio.silence import SilenceWatch
from engine.core.reports import PlayerEvent
from engine.media.call import Call
from engine.media.loop import MediaLoop
from engine.media.pacer import MonotonicClock, Pacer
from engine.media.sinks import NullSink, WavSink
from engine.net.rtp_hub import RtpHub
from engine.net.rtp_sender import LIVE_LEAD_PERIODS, LIVE_SEND_GROUPS, RtpSender
from engine.net.rtp_session import RtpSession
from engine.server.media_prompts import PromptStore
from engine.server.message import SilenceStop
from engine.server.realtime import RealTimeProcess
from engine.server.rtp_queries import session_stats
from engine.server.sip_recording import Tee
from engine.server.vault import create_private
from engine.server.watchdog import RECENT_TICKS, recent_lateness
from engine.server.worker_outbox import Outbox

log = logging.getLogger(__name__)
STATS_TICKS = 50  # a stats report every second
POLL_TICKS = 25  # the sessions' inactivity is checked twice a second
RECORDING_TAG = -1  # the tag of a portable call's recording file (the fd before its ``adopt``)
SESSION_FIELDS = ("remote", "payload_type", "event_payload_type", "sends", "on_hold")


def session_state(session: Any) -> dict[str, Any]:
    """What the worker's session takes from the server's (SDP: address, payload types, direction)."""
    return {name: getattr(session, name) for name in SESSION_FIELDS}


class WorkerHub(RtpHub):
    """The worker's hub: a session's own sockets are the ones the server handed over (none: the shared socket)."""

    given: tuple[socket.socket, socket.socket] | None = None

    def open_ports(self) -> tuple[socket.socket, socket.socket] | None:
        """The sockets handed over for the session being made."""
        given, self.given = self.given, None
        return given


class Worker:
    """The worker's media: calls by id on one loop and hub (the media thread only, but for :meth:`post`)."""

    def __init__(self, conn: Connection, host: str, port: int, capacity: int, per_call: bool,
                 priority: int = 0) -> None:
        self.hub = WorkerHub(host, port, capacity, per_call_ports=(0, 0) if per_call else None,
                             send_groups=LIVE_SEND_GROUPS)
        self.media = MediaLoop()
        self.pacer = Pacer(MonotonicClock(), self._tick)
        self.sender = RtpSender(self.hub, self.pacer.clock, self.pacer.period_s, realtime_priority=priority,
                                lead_periods=LIVE_LEAD_PERIODS)
        self.pacer.tick = self.sender.driving(self.pacer.tick)  # hub receive, _tick, hub send
        carried = self.pacer.tick

        def tick() -> None:  # commands first: a session opened now is carried from this tick's receive
            self._apply_commands()
            carried()

        self.pacer.tick = tick
        self.process = RealTimeProcess()
        self.outbox = Outbox(conn)
        self.prompts = PromptStore()
        self.calls: dict[str, tuple[Call, RtpSession | None]] = {}  # None: a portable call's
        self.sessions: dict[int, RtpSession] = {}  # by the server's session id, from open to close
        self._quiet: set[str] = set()
        self._watched: dict[str, int] = {}  # call id → the index of its last message watched for silence
        self._commands: deque[tuple[Any, ...]] = deque()
        self._marks = {"missed": 0, "cpu_s": 0.0}  # at the last clear()

    def post(self, command: tuple[Any, ...]) -> None:
        """A command from the server (reader thread)."""
        self._commands.append(command)

    def run(self) -> None:
        """Tick until ``exit``."""
        self.process.start()
        self.pacer.run()
        self.sender.stop()

    def _apply_commands(self) -> None:
        while self._commands:
            command = self._commands.popleft()
            try:
                self._apply(*command)
            except Exception:
                log.exception("worker command %s failed", command[0])

    def _tick(self) -> None:
        self.media.tick()
        for call in self.media.failed:
            self.outbox.add(("failed", call.call_id))
        ticks = self.media.ticks
        if ticks % POLL_TICKS == 0:
            self._poll_quiet()
        if ticks % STATS_TICKS == 0:
            self.outbox.add(("stats", self.stats()))
        self.outbox.flush()
        self.process.on_tick(ticks, len(self.calls))

    def _apply(self, kind: str, *args: Any) -> None:
        if kind == "submit":
            self._submit(*args)
        elif kind == "prompt":
            self.prompts.keep(*args)
        elif kind == "forget":
            self.prompts.forget(*args)
        elif kind == "add":
            self._add(*args)
        elif kind == "adopt":
            self._adopt(*args)
        elif kind == "stop":
            self.calls[args[0]][0].stop()
        elif kind == "hangup":
            self._hang_up(args[0])
        elif kind == "open":
            sid, state, inactivity_ticks, sockets = args
            self.hub.given = sockets or None
            session = self.sessions[sid] = RtpSession(self.hub, None, inactivity_ticks)
            vars(session).update(state)  # before the hub applies the attach (next receive): configured from these
        elif kind == "retarget":
            session = self.sessions[args[0]]
            vars(session).update(args[1])
            self.hub.retarget(session)
        elif kind == "key":
            sid, key, samples = args
            self.hub.post_key(self.sessions[sid], key, samples)
        elif kind == "close":
            session = self.sessions.pop(args[0], None)
            if session is not None:
                session.close()
        elif kind == "rtpstats":  # (token, call ids): answered with this tick's reports
            carried = {cid: entry[1] for cid in args[1] if (entry := self.calls.get(cid)) and entry[1] is not None}
            self.outbox.add(("rtp", args[0], session_stats(carried, args[1])))
        elif kind == "exit":
            self.pacer.stop()

    def _submit(self, call_id: str, request: Any, tokens: tuple[int, ...], silence: tuple[int, float] | None) -> None:
        program = self.prompts.program(request, tokens)
        self.calls[call_id][0].pending.append(program)
        if silence is not None:  # a message: its caller's silence stops it here, and the server is told which
            index = self._watched[call_id] = self._watched.get(call_id, -1) + 1
            watch = SilenceStop(program, SilenceWatch(*silence), lambda: self.outbox.add(("silenced", call_id, index)))
            self.media.listen(call_id, watch.hear)

    def _add(self, call_id: str, app_id: str, queue_limit: int, sid: int, recording: str) -> None:
        session = self.sessions[sid]
        sink: Any = Tee(session, WavSink(create_private(Path(recording)))) if recording else session
        call = Call(app_id, call_id, session, sink, self._on_event, queue_limit)
        self.calls[call_id] = (call, session)
        self.media.add(call)

    def _adopt(self, call_id: str, app_id: str, queue_limit: int, keys: str, audio_token: int | None,
               recording: BinaryIO | None) -> None:
        """A portable call (:mod:`engine.server.worker_pool`): its caller rebuilt here, its recording written here."""
        audio = self.prompts.array(audio_token) if audio_token is not None else None
        caller = make_caller(keys, "caller" if audio is not None else None, load=lambda _name: audio)
        sink = WavSink(recording) if recording is not None else NullSink()
        call = Call(app_id, call_id, caller, sink, self._on_event, queue_limit)
        self.calls[call_id] = (call, None)
        self.media.add(call)

    def _hang_up(self, call_id: str) -> None:
        entry = self.calls.pop(call_id, None)
        if entry is None:
            return
        call, session = entry
        call.hang_up()
        self.media.remove(call)  # closes the sink: the session (its final stats) and the recording
        self._quiet.discard(call_id)
        self._watched.pop(call_id, None)
        self.outbox.add(("ended", call_id, call.position_samples, session.final_stats if session else {}))

    def _on_event(self, call: Call, event: PlayerEvent, at_sample: int) -> None:
        self.outbox.add(("event", call.call_id, event, at_sample, call.position_samples, call.request_start_sample))

    def _poll_quiet(self) -> None:
        for call_id, (_call, session) in self.calls.items():
            if session is not None and call_id not in self._quiet and session.ended():
                self._quiet.add(call_id)
                self.outbox.add(("quiet", call_id))

    def clear(self) -> None:
        """Count lateness, missed frames and CPU from now on (any thread: a benchmark's warm-up is over)."""
        self.sender.clear_lateness()
        times = os.times()
        self._marks = {"missed": self.pacer.missed, "cpu_s": times.user + times.system}

    def stats(self) -> dict[str, Any]:
        """The pacer's and the sender's timing, the hub's counters, this process's CPU seconds."""
        pacer = self.pacer.stats()
        lateness = self.sender.lateness()
        n = len(self.hub.sessions)
        times = os.times()
        bank = self.hub.bank.counters
        recent = recent_lateness(self.pacer, RECENT_TICKS)
        return {"calls": len(self.calls), "ticks": pacer.ticks, "missed": pacer.missed, "fifo": self.sender.realtime,
                "p99_lateness_s": pacer.p99_lateness_s, "max_lateness_s": pacer.max_lateness_s,
                "recent_p99_lateness_s": float(np.percentile(recent, 99)) if len(recent) else 0.0,
                "send_p99_s": float(np.percentile(lateness, 99)) if len(lateness) else 0.0,
                "send_max_s": float(lateness.max()) if len(lateness) else 0.0, "send_samples": len(lateness),
                "rtp_lost": self.hub.stats.lost(n), "rtp_late": int(bank["late"][:n].sum()),
                **{f"rtp_{name}": value for name, value in self.hub.counters.items()},
                "cpu_user_s": times.user, "cpu_system_s": times.system, "prompts": len(self.prompts),
                "missed_since_clear": pacer.missed - self._marks["missed"],
                "cpu_since_clear_s": times.user + times.system - self._marks["cpu_s"]}


def _received(fds: socket.socket, tag: int, count: int) -> list[int]:
    """The ``count`` file descriptors the server sent tagged ``tag`` (just before the command that uses them)."""
    data, received, _flags, _address = socket.recv_fds(fds, 8, count)
    if struct.unpack("q", data)[0] != tag or len(received) != count:
        raise OSError(f"media worker: {count} descriptors tagged {tag} expected")
    return received


def _sockets(fds: socket.socket, sid: int) -> tuple[socket.socket, socket.socket]:
    """The (RTP, RTCP) sockets the server sent for session ``sid`` (just before its ``open``)."""
    pair = tuple(socket.socket(fileno=fd) for fd in _received(fds, sid, 2))
    for sock in pair:
        sock.setblocking(False)
    return pair  # type: ignore[return-value]


def _read(conn: Connection, fds: socket.socket, worker: Worker) -> None:
    try:
        while True:
            message = conn.recv()
            if message[0] == "clear":  # a benchmark's warm-up is over: lateness, misses and CPU from now on
                worker.clear()
                continue
            if message[0] == "open" and message[4]:
                message = (*message[:4], _sockets(fds, message[1]))
            elif message[0] == "adopt":  # its recording's file (0600, opened by the server) came just before
                file = os.fdopen(_received(fds, RECORDING_TAG, 1)[0], "w+b") if message[6] else None
                message = (*message[:6], file)
            worker.post(message)
    except (EOFError, OSError):
        os._exit(0)  # the server closed its end (or died): nothing to play for


def main(argv: list[str]) -> int:
    """``FD FDS HOST PORT CAPACITY PER_CALL PRIORITY``: serve the server at the other end of ``FD``."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s media-worker: %(message)s")
    fd, fds, host, port, capacity = int(argv[0]), int(argv[1]), argv[2], int(argv[3]), int(argv[4])
    conn = Connection(fd)
    worker = Worker(conn, host, port, capacity, argv[5] == "1", int(argv[6]))
    conn.send(("ready", worker.hub.port, os.getpid()))
    fd_socket = socket.socket(fileno=fds)
    threading.Thread(target=_read, args=(conn, fd_socket, worker), name="worker-reader", daemon=True).start()
    worker.run()
    worker.hub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Calls whose media plays in a worker process: the server's RTP sessions placed on workers, and their calls.

(The calls of portable endpoints, placed by :mod:`engine.server.worker_pool`, are rebuilt on their worker by
an ``adopt`` command instead of ``add``; the rest is the same.)

:class:`WorkerHub` stands where the :class:`~engine.net.rtp_hub.RtpHub` stands for the phone service
(:class:`~engine.net.phone.PhoneService` makes every line's :class:`~engine.net.rtp_session.RtpSession` on it):
a new session is placed on the least loaded worker (:meth:`open_ports`, then :attr:`port` is that worker's
RTP port for the session's SDP, then :meth:`attach`: the same thread, in the session's constructor). The
server's session is the description of the call's media (address, payload types, direction: SDP); the
worker opens its own session at once (so its hub carries the caller's packets from the first one, as the
server's hub would), and is told of changes (re-INVITE), SIP INFO keys and the close.

:class:`RemoteCalls` is the media thread's side (:class:`~engine.server.media_thread.MediaThread`): a call
whose endpoint's caller is such a session is added on its worker instead of the local loop; its requests,
``stoPlay`` and hang-up are forwarded; the worker's reports come back as media-thread commands, so its
events are published, its requests' places given back and its hooks run exactly as for a local call, in the
order the call produced them. A hang-up is two-phase: the worker hangs the call up (its requests end with
``hangup``) and reports ``ended``; then the call's ``calldisconnectrpt`` follows. A worker that dies: each of
its calls' requests ends with ``multrpt`` ``error`` and the call with reason ``error``.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
from typing import TYPE_CHECKING, Any

from engine.core.reports import RequestReport, Result
from engine.core.timeline import Program
from engine.media.call import Call
from engine.media.sinks import NullSink
from engine.net.rtp_ports import PortPool
from engine.server.media_worker import RECORDING_TAG, session_state
from engine.server.media_workers import MediaWorker, MediaWorkers
from engine.wire.call_events import REASON_ERROR

if TYPE_CHECKING:
    from engine.server.media_thread import MediaThread

log = logging.getLogger(__name__)


class WorkerHub:
    """The phone service's hub when the media plays in ``workers`` (RTP host ``host``)."""

    def __init__(self, workers: MediaWorkers, host: str, ports: tuple[int, int] | None = None) -> None:
        self.workers = workers
        self.host = host
        #: ``[sip] rtpPorts``: each session's own socket pair, bound here, carried to its worker (None: shared).
        self.pool = PortPool(host, *ports) if ports is not None else None
        self.ticks = 0
        self._chosen = threading.local()
        self._sids = itertools.count(1)

    @property
    def port(self) -> int:
        """The RTP port of the worker the session being made is placed on (worker 0's otherwise)."""
        worker = getattr(self._chosen, "worker", None)
        return (worker or self.workers.workers[0]).port

    def open_ports(self) -> tuple[socket.socket, socket.socket] | None:
        """Place the session being made; its own sockets with ``rtpPorts`` (None: its worker's shared one)."""
        sockets = self.pool.open() if self.pool is not None else None
        self._chosen.worker = self.workers.place()
        return sockets

    def attach(self, session: Any) -> None:
        """The session is made: it belongs to the worker chosen by :meth:`open_ports`."""
        worker: MediaWorker = self._chosen.worker
        self._chosen.worker = None
        session.worker, session.sid, session.recording, session.quiet = worker, next(self._sids), "", False
        session.placed_on = worker.index
        sockets = session.sockets
        with worker.lock:
            session.generation = worker.generation
            given = sockets is not None and worker.send_sockets_locked(session.sid, sockets)
            worker.send_locked(("open", session.sid, session_state(session), session.inactivity_ticks, given))
        for sock in sockets or ():
            sock.close()  # the worker has its own copies

    def _tell(self, session: Any, *message: Any) -> None:
        worker = getattr(session, "worker", None)
        if worker is not None:
            with worker.lock:
                if worker.generation == session.generation:
                    worker.send_locked((message[0], session.sid, *message[1:]))

    def detach(self, session: Any) -> None:
        """The session is closed: its worker closes its own, its load is one less."""
        self._tell(session, "close")
        worker = session.__dict__.pop("worker", None)
        if worker is not None:
            self.workers.unplace(worker)

    def retarget(self, session: Any) -> None:
        """New SDP (hold, unhold, a new address): the worker's session takes it."""
        self._tell(session, "retarget", session_state(session))

    def post_key(self, session: Any, key: str, duration_samples: int) -> None:
        """A key by SIP INFO: sounded into the caller's audio on the worker."""
        self._tell(session, "key", key, duration_samples)


def _adopt_locked(worker: MediaWorker, call: Call, endpoint: Any) -> bool:
    """Send a portable call to ``worker`` (its lock held); its recording's file goes with it, unwritten."""
    media = endpoint.portable
    recording = media.recording
    if recording is not None and not worker.send_fds_locked(RECORDING_TAG, [recording.fileno()]):
        return False
    audio = media.caller_audio  # by reference, as prompts are: one copy per worker of a file many calls hear
    token = worker.prompts.token(audio, worker.send_locked) if audio is not None else None
    if not worker.send_locked(("adopt", call.call_id, call.app_id, call.queue_limit, media.keys, token,
                               recording is not None)):
        return False
    if recording is not None:  # the worker writes the WAV now: this process never does
        recording.close()
        endpoint.sink = NullSink()
    return True


class RemoteCalls:
    """The calls of ``thread`` (the media thread) that play on workers (its methods run on the media thread)."""

    def __init__(self, thread: MediaThread) -> None:
        self.thread = thread
        self._workers: dict[str, MediaWorker] = {}  # call id → its worker
        self._ending: dict[str, str] = {}  # call id → the hang-up's reason, until the worker says ended
        self._watches: dict[str, list[Any]] = {}  # call id → its messages whose silence its worker watches
        #: Calls ended because their worker died.
        self.lost = 0

    def __contains__(self, call_id: str) -> bool:
        return call_id in self._workers

    def __len__(self) -> int:
        return len(self._workers)

    def add(self, call: Call, endpoint: Any) -> bool:
        """Put ``call`` on its session's worker; False when its endpoint is local (the loop plays it)."""
        session, placed = endpoint.caller, getattr(endpoint, "placed", None)
        if placed is not None:  # a portable endpoint (engine.server.worker_pool): rebuilt on its worker
            worker = placed.worker
        elif (worker := getattr(session, "worker", None)) is None:
            return False
        self._workers[call.call_id] = worker
        with worker.lock:
            if placed is not None:
                sent = worker.generation == placed.generation and _adopt_locked(worker, call, endpoint)
            else:  # a SIP call's session, opened on the worker with the SDP
                sent = worker.generation == session.generation and worker.send_locked(
                    ("add", call.call_id, call.app_id, call.queue_limit, session.sid, session.recording))
                if sent:
                    session.call_id = call.call_id
            if sent:
                worker.calls.add(call.call_id)
        if not sent:  # its worker died since the SDP: the call fails at once
            log.warning("call %s: its media worker %d is gone", call.call_id, worker.index)
            self.thread.post_locked("worker_died", (worker, [call.call_id]))
        return True

    def submit(self, call_id: str, program: Program, watch: Any = None) -> bool:
        """Send a request to the call's worker (``watch``: a message, its silence heard there); False: local."""
        worker = self._workers.get(call_id)
        if worker is None:
            return False
        if watch is not None:
            self._watches.setdefault(call_id, []).append(watch)
        worker.submit(call_id, program, watch.silence if watch is not None else None)  # dead: ends with error
        return True

    def stop(self, call_id: str) -> bool:
        """``stoPlay`` on the call's worker; False when the call is local."""
        worker = self._workers.get(call_id)
        if worker is not None:
            worker.send("stop", call_id)
        return worker is not None

    def hang_up(self, call: Call, reason: str) -> bool:
        """Hang ``call`` up on its worker (once); False when the call is local. Its end follows the worker's."""
        worker = self._workers.get(call.call_id)
        if worker is None:
            return False
        if call.call_id not in self._ending:
            self._ending[call.call_id] = reason
            if not worker.send("hangup", call.call_id):  # the worker is gone (closed): ended here
                entry = self.thread.entry(call.call_id)
                self._drop(call, entry[1] if entry else None, Result.HANGUP, self._ending.pop(call.call_id))
        return True

    def apply(self, command: str, worker: MediaWorker, report: Any) -> None:
        """A ``worker`` command: a worker's report (in the order it sent them), or ``worker_died`` (call ids)."""
        if command == "worker_died":
            self.died(worker, report)
            return
        kind, call_id = report[0], report[1]
        entry = self.thread.entry(call_id)
        if entry is None or self._workers.get(call_id) is not worker:
            return
        call = entry[0]
        if kind == "event":
            _, _, event, at_sample, call.position_samples, call.request_start_sample = report
            self.thread.on_event(call, event, at_sample)
        elif kind == "silenced":  # the worker stopped the call's k-th watched message on the caller's silence
            self._watches[call_id][report[2]].silenced = True
        elif kind == "ended":
            call.position_samples = report[2]
            worker.calls.discard(call_id)
            self._finish(call, entry[1], self._ending.pop(call_id, REASON_ERROR), report[3])
        elif kind == "failed":
            self.thread.forget(call_id)
            self.thread.post("hangup", (call_id, REASON_ERROR))  # applied in this same drain
        elif kind == "quiet":
            entry[1].caller.quiet = True  # the glue's poll hangs it up (reason timeout)

    def died(self, worker: MediaWorker, call_ids: list[str]) -> None:
        """``worker`` died: every request of its calls ends with ``error``, then the call (reason ``error``)."""
        for call_id in call_ids:
            entry = self.thread.entry(call_id)
            if entry is None or self._workers.get(call_id) is not worker:
                continue
            self.thread.forget(call_id)
            self.lost += 1
            self._ending.pop(call_id, None)
            self._drop(entry[0], entry[1], Result.ERROR, REASON_ERROR)

    def _drop(self, call: Call, endpoint: Any, result: Result, reason: str) -> None:
        """End a call its worker cannot end: each request without ``multrpt`` ends with ``result``."""
        for _ in range(self.thread.held(call.call_id)):
            self.thread.on_event(call, RequestReport(result, None, 0), call.position_samples)
        self._finish(call, endpoint, reason, {})

    def _finish(self, call: Call, endpoint: Any, reason: str, stats: dict[str, Any]) -> None:
        del self._workers[call.call_id]
        self._watches.pop(call.call_id, None)
        call.hung_up = True
        endpoint.sink.close()  # the server's session: its worker's load is one less
        if getattr(endpoint, "placed", None) is not None:
            endpoint.placed.release()  # a portable call's place
        else:
            endpoint.caller.final_stats = stats
        self.thread.finish(call.call_id, reason)

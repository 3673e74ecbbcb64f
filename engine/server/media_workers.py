"""The media worker processes of ``[sip] mediaProcesses = N``: started, fed, watched and restarted by the server.

Each :class:`MediaWorker` is one process (:mod:`engine.server.media_worker`, started as a new interpreter with
``subprocess``, never forked) and one socket pair (pickled tuples, :class:`multiprocessing.connection.Connection`
framing). Its reader thread hands every report to ``on_report(worker, report)``; when the pipe breaks (the
process died: SIGKILL, a crash) it calls ``on_death(worker, calls)`` with the calls placed on it, and starts a
new process in its place (a new generation, a new RTP port; logged). :class:`MediaWorkers` places each new
RTP session on the least loaded worker (sessions placed, not yet ended).

Commands are sent under the worker's lock (from any thread), so they arrive in the order they were sent. A
call's own RTP sockets (``[sip] rtpPorts``: bound here, so that the SDP can name the port at once) cross to
the worker on a second socket pair (``SCM_RIGHTS``), just before the ``open`` command that uses them.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from engine.errors import BusyError
from engine.media.pacer import FRAME_SECONDS
from engine.server.limits import DEFAULT_CALL_CPU_SHARE, DEFAULT_MAX_CPU_SHARE
from engine.server.media_prompts import PromptSender
from engine.server.rtp_queries import StatsQuery

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 60.0
#: ``on_report(worker, report)``: a report of the worker (its reader thread).
OnReport = Callable[["MediaWorker", tuple[Any, ...]], None]
#: ``on_death(worker, call_ids)``: the worker died with these calls on it (its reader thread).
OnDeath = Callable[["MediaWorker", list[str]], None]


class MediaWorker:
    """Worker ``index`` of the pool: RTP on ``host`` (``port`` 0: any free port), ``capacity`` calls.

    ``per_call``: each call brings its own sockets (``[sip] rtpPorts``) instead of the worker's shared port.
    ``priority``: its RTP sender thread's ``SCHED_FIFO`` priority (``[sip] mediaPriority``; 0: none).
    """

    def __init__(self, index: int, host: str, port: int, capacity: int, per_call: bool, on_report: OnReport,
                 on_death: OnDeath, priority: int = 0) -> None:
        self.index, self.host, self.capacity, self.per_call = index, host, capacity, per_call
        self.priority = priority
        self._want_port = port
        self.on_report, self.on_death = on_report, on_death
        self.lock = threading.Lock()
        self.generation = 0
        self.port = 0
        self.pid = 0
        self.placed = 0  # sessions placed here and not closed (its load)
        self.calls: set[str] = set()  # calls added and not ended
        self.stats: dict[str, Any] = {}
        #: Its CPU share of one core between its last two stats reports (0 before the second).
        self.cpu_share = 0.0
        self.restarts = 0
        self._closing = False
        self._conn: Connection | None = None
        self._fds: socket.socket | None = None  # the socket pair's end that carries sockets to the worker
        self._process: subprocess.Popen[bytes] | None = None
        self.prompts = PromptSender()
        self._queries: dict[int, StatsQuery] = {}  # RTP stats asked and not answered, by token
        self._tokens = itertools.count(1)

    def start(self) -> None:
        """Start the process and wait for its ``ready`` (its RTP port)."""
        ours, theirs = socket.socketpair()
        fds_ours, fds_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        command = [sys.executable, "-m", "engine.server.media_worker", str(theirs.fileno()),
                   str(fds_theirs.fileno()), self.host, str(self._want_port), str(self.capacity),
                   "1" if self.per_call else "0", str(self.priority)]
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        self._process = subprocess.Popen(command, pass_fds=[theirs.fileno(), fds_theirs.fileno()], env=env,
                                         close_fds=True)
        theirs.close()
        fds_theirs.close()
        conn = Connection(ours.detach())
        if not conn.poll(READY_TIMEOUT_S):
            self._process.kill()
            raise OSError(f"media worker {self.index} did not start within {READY_TIMEOUT_S:.0f} s")
        kind, self.port, self.pid = conn.recv()
        self.generation += 1
        self.prompts = PromptSender()
        self._conn, self._fds = conn, fds_ours
        threading.Thread(target=self._read, args=(conn,), name=f"media-worker-{self.index}", daemon=True).start()
        log.info("media worker %d: pid %d, RTP on %s:%d", self.index, self.pid, self.host, self.port)

    @property
    def alive(self) -> bool:
        """True while its process answers (between its ``ready`` and the pipe breaking)."""
        return self._conn is not None

    def send(self, *message: Any) -> bool:
        """Send one command (any thread); False when the worker is gone (its death is being handled)."""
        with self.lock:
            return self.send_locked(message)

    def send_locked(self, message: tuple[Any, ...]) -> bool:
        """:meth:`send` with :attr:`lock` held by the caller."""
        conn = self._conn
        if conn is None:
            return False
        try:
            conn.send(message)
            return True
        except OSError:
            return False

    def send_sockets_locked(self, sid: int, sockets: tuple[socket.socket, ...]) -> bool:
        """Hand ``sockets`` to the worker for session ``sid`` (:attr:`lock` held; the ``open`` follows)."""
        return self.send_fds_locked(sid, [sock.fileno() for sock in sockets])

    def send_fds_locked(self, tag: int, fds: list[int]) -> bool:
        """Hand the file descriptors ``fds`` to the worker, tagged ``tag`` (:attr:`lock` held; a command follows)."""
        if self._fds is None or self._conn is None:
            return False
        try:
            socket.send_fds(self._fds, [struct.pack("q", tag)], fds)
            return True
        except OSError:
            return False

    def take_stats(self, stats: dict[str, Any]) -> None:
        """A stats report: kept, and the CPU share of one core since the previous one (over its ticks' time)."""
        last, self.stats = self.stats, stats
        ticks = stats.get("ticks", 0) - last.get("ticks", 0)
        if last and ticks > 0:
            cpu_s = stats["cpu_user_s"] + stats["cpu_system_s"] - last["cpu_user_s"] - last["cpu_system_s"]
            self.cpu_share = max(0.0, cpu_s / (ticks * FRAME_SECONDS))

    def ask_rtp(self, query: StatsQuery) -> bool:
        """Ask the worker for the RTP stats of ``query``'s calls (answered after its next tick); False: it is gone."""
        with self.lock:
            token = next(self._tokens)
            self._queries[token] = query
            if self.send_locked(("rtpstats", token, query.call_ids)):
                return True
            del self._queries[token]
            return False

    def _answer(self, token: int, answer: dict[str, Any] | None) -> None:
        with self.lock:
            query = self._queries.pop(token, None)
        if query is not None:
            query.answered(answer or {})

    def submit(self, call_id: str, program: Any, silence: tuple[int, float] | None = None) -> bool:
        """Send a program, its audio by reference (:mod:`engine.server.media_prompts`); ``silence``: a message's."""
        with self.lock:
            request, tokens = self.prompts.encode(program, self.send_locked)
            return self.send_locked(("submit", call_id, request, tokens, silence))

    def _read(self, conn: Connection) -> None:
        try:
            while True:
                kind, batch = conn.recv()
                for report in batch:
                    try:
                        if report[0] == "rtp":  # the answer to ask_rtp: (token, stats by call id)
                            self._answer(report[1], report[2])
                        else:
                            self.on_report(self, report)
                    except Exception:
                        log.exception("media worker %d: report %s failed", self.index, report[0])
        except (EOFError, OSError):
            pass
        with self.lock:
            self._conn = None
            if self._fds is not None:
                self._fds.close()
                self._fds = None
        conn.close()
        for token in list(self._queries):
            self._answer(token, None)  # a dead worker answers nothing: nobody waits for it
        if self._closing:
            return
        code = self._process.wait() if self._process is not None else None
        calls, self.calls = sorted(self.calls), set()
        log.error("media worker %d (pid %d) died (exit status %s) with %d calls; restarting", self.index,
                  self.pid, code, len(calls))
        try:
            self.on_death(self, calls)
        except Exception:
            log.exception("media worker %d: ending its calls failed", self.index)
        self.restarts += 1
        try:
            self.start()
        except Exception:
            log.exception("media worker %d could not be restarted", self.index)

    def kill(self) -> None:
        """SIGKILL the process (tests: a worker that dies)."""
        if self._process is not None:
            self._process.kill()

    def close(self, timeout_s: float = 5.0) -> None:
        """Ask the process to exit and wait for it."""
        self._closing = True
        self.send("exit")  # its reader thread sees the pipe close when the process is gone
        if self._process is not None:
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


class MediaWorkers:
    """``count`` media workers on ``host``; ``port`` (0: any) gives worker i the port ``port + 2·i``."""

    def __init__(self, count: int, host: str, port: int, capacity: int, per_call: bool, on_report: OnReport,
                 on_death: OnDeath, priority: int = 0, max_cpu_share: float = DEFAULT_MAX_CPU_SHARE,
                 call_cpu_share: float = DEFAULT_CALL_CPU_SHARE) -> None:
        self.max_cpu_share, self.call_cpu_share = max_cpu_share, call_cpu_share
        self.workers = [MediaWorker(i, host, port + 2 * i if port else 0, capacity, per_call, on_report, on_death,
                                    priority) for i in range(count)]
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start every worker (each answers ``ready`` with its port)."""
        for worker in self.workers:
            worker.start()

    def place(self) -> MediaWorker:
        """The least loaded live worker with headroom, its load counted one more (any thread).

        A worker has headroom for one more call while its CPU share, every call placed on it costing at least
        ``call_cpu_share``, plus one more call's, stays within ``max_cpu_share`` (``[limits] admitCpuShare`` and
        ``callCpuShare``); none has: :class:`~engine.errors.BusyError` (an INVITE gets ``503``, ``outCall``
        ``108102``). No live worker at all (all restarting): any, as the call's media starts with its worker.
        """
        with self._lock:
            live = [w for w in self.workers if w.alive] or self.workers
            roomy = [w for w in live if self._projected(w) <= self.max_cpu_share]
            if not roomy:
                busiest = min(live, key=self._projected)
                raise BusyError(f"called: no media worker has headroom (the least busy would be at "
                                f"{self._projected(busiest):.0%} of a core > {self.max_cpu_share:.0%})")
            worker = min(roomy, key=lambda w: (w.placed, w.index))
            worker.placed += 1
            return worker

    def _projected(self, worker: MediaWorker) -> float:
        return max(worker.cpu_share, worker.placed * self.call_cpu_share) + self.call_cpu_share

    def placed(self) -> int:
        """Sessions placed on every worker and not closed."""
        with self._lock:
            return sum(worker.placed for worker in self.workers)

    def unplace(self, worker: MediaWorker) -> None:
        """A session placed on ``worker`` is closed."""
        with self._lock:
            worker.placed -= 1

    def stats(self) -> list[dict[str, Any]]:
        """Each worker's last stats report, with its pid, port, load and restarts."""
        return [{"index": w.index, "pid": w.pid, "port": w.port, "placed": w.placed, "restarts": w.restarts,
                 **w.stats} for w in self.workers]

    def metrics(self) -> dict[str, dict[str, float]]:
        """``/metrics``: each figure by worker index (the last stats report of each; restarts and load here)."""
        names = ("calls", "missed", "p99_lateness_s", "recent_p99_lateness_s", "send_p99_s", "send_max_s", "rtp_lost",
                 "rtp_late", "rtp_received", "rtp_sent", "rtp_send_errors")
        figures: dict[str, dict[str, float]] = {name: {} for name in (*names, "placed", "restarts", "alive")}
        for w in self.workers:
            key = str(w.index)
            for name in names:
                if isinstance(w.stats.get(name), int | float):
                    figures[name][key] = float(w.stats[name])
            figures["placed"][key], figures["restarts"][key], figures["alive"][key] = w.placed, w.restarts, w.alive
        return figures

    def close(self) -> None:
        """Stop every worker."""
        for worker in self.workers:
            worker.close()

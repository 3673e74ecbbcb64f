"""The server's media worker processes, for SIP calls and for every call whose media can move.

``[sip] mediaProcesses = N`` (``serve --media-processes N``) starts N worker processes
(:mod:`engine.server.media_workers`) whether or not SIP listens. A SIP call's RTP session is placed on one of
them by the phone service (:mod:`engine.server.media_remote`); a call whose endpoint is *portable*
(:class:`~engine.server.endpoints.PortableMedia`: ``null``, ``wav:``) is placed by the switchboard before
``outCall`` answers (:func:`place`: the least loaded worker with headroom; none has: ``108102``), and its worker
rebuilds the caller (the key script, or the caller's audio) and plays the call, into the recording's file when
it has one (opened here, ``O_EXCL | O_NOFOLLOW``, handed over unwritten by ``SCM_RIGHTS``: the worker writes the
WAV and closes it before the call's end is reported); its events come back as a SIP call's do. Endpoints that
live in this process (a speaker, a browser's phone) play in the server's media thread.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.server.media_workers import MediaWorker, MediaWorkers

log = logging.getLogger(__name__)


class Placement:
    """A portable call's place on ``worker`` of ``pool``, counted in its load until :meth:`release`."""

    def __init__(self, pool: MediaWorkers, worker: MediaWorker) -> None:
        self.pool, self.worker = pool, worker
        with worker.lock:
            #: The worker's generation when placed: a restarted worker never hears of the call.
            self.generation = worker.generation
        self._released = False

    def release(self) -> None:
        """The call ended, or was never made: its worker's load is one less (once)."""
        if not self._released:
            self._released = True
            self.pool.unplace(self.worker)


def place(pool: MediaWorkers | None, endpoint: Any) -> Placement | None:
    """Place ``endpoint``'s call on a worker of ``pool`` when its media can move (None: it plays here).

    Raises :class:`~engine.errors.BusyError` (``108102``) when no worker has headroom.
    """
    if pool is None or getattr(endpoint, "portable", None) is None:
        return None
    endpoint.placed = Placement(pool, pool.place())
    return endpoint.placed


def start_workers(engine: Any, count: int, host: str = "127.0.0.1") -> MediaWorkers:
    """Start ``count`` media workers for ``engine`` (an :class:`~engine.server.app.Engine`), RTP on ``host``.

    Their reports and deaths go to the engine's media thread; the engine closes them when it closes.
    """
    sip, guard, thread = engine.config.sip, engine.board.guard, engine.board.thread

    def on_report(worker: MediaWorker, report: tuple[Any, ...]) -> None:  # its reader thread
        if report[0] == "stats":
            worker.take_stats(report[1])
        else:
            thread.post_locked("worker", (worker, report))

    def on_death(worker: MediaWorker, call_ids: list[str]) -> None:
        thread.post_locked("worker_died", (worker, call_ids))

    workers = MediaWorkers(count, host, sip.rtp_port, sip.max_calls, sip.rtp_ports is not None, on_report,
                           on_death, sip.media_priority, guard.max_cpu_share, guard.call_cpu_share)
    workers.start()
    engine.board.workers = workers
    log.info("%d media worker processes: %s", count, ", ".join(f"pid {w.pid}" for w in workers.workers))
    return workers

"""Live RTP statistics of SIP calls, asked of the media that carries them and answered between two ticks.

A :class:`StatsQuery` names at most :data:`MAX_QUERIED` calls; it is answered once, with each call's
:meth:`~engine.net.rtp_session.RtpSession.stats` as the session has them at that moment. A call whose media
plays in a worker process (``[sip] mediaProcesses``) is asked of its worker: one ``rtpstats`` command per
worker and listing over the existing pipe, answered by the worker's next tick with an ``rtp`` report
(:meth:`~engine.server.media_workers.MediaWorker.ask_rtp`). A call on the server's own hub is read on the media
thread (:meth:`~engine.server.switchboard.Switchboard.after`), where the hub moves its rows. Nobody pushes stats
that nobody asked for; a query not answered within its timeout leaves its calls without figures (None).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

#: Calls one query names at most (the calls page lists at most this many live calls): 100.
MAX_QUERIED = 100
#: How long a listing waits for the media's answers (default 1 s), after which its figures are unavailable.
DEFAULT_TIMEOUT_S = 1.0
#: ``{call_id: stats}`` of the calls answered (a call the media no longer carries is left out).
Answer = dict[str, dict[str, Any]]


class StatsQuery:
    """One question for the stats of ``call_ids`` (at most :data:`MAX_QUERIED`), answered once from any thread."""

    def __init__(self, call_ids: Iterable[str]) -> None:
        self.call_ids = list(call_ids)
        if len(self.call_ids) > MAX_QUERIED:
            raise ValueError(f"call_ids: at most {MAX_QUERIED} calls a query, not {len(self.call_ids)}")
        self.answer: Answer | None = None
        self._done = threading.Event()

    def answered(self, answer: Answer) -> None:
        """The media's answer (its reader thread, or the media thread); a second answer is ignored."""
        if not self._done.is_set():
            self.answer = answer
            self._done.set()

    def wait(self, deadline_s: float) -> Answer | None:
        """The answer, or None when it has not come by ``deadline_s`` (:func:`time.monotonic` seconds)."""
        self._done.wait(max(0.0, deadline_s - time.monotonic()))
        return self.answer


def session_stats(sessions: dict[str, Any], call_ids: Iterable[str]) -> Answer:
    """The stats of those of ``call_ids`` whose session is in ``sessions`` and carried (on the media's thread)."""
    answer: Answer = {}
    for call_id in call_ids:
        session = sessions.get(call_id)
        stats = session.stats() if session is not None else {}
        if stats:
            answer[call_id] = stats
    return answer


def live_rtp_stats(board: Any, sessions: dict[str, Any],
                   timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, dict[str, Any] | None]:
    """The live stats of each call of ``sessions`` (call id → its RTP session): None when not answered in time.

    Blocking (up to ``timeout_s``): call it off the event loop. One query per worker holding some of the calls,
    one for the calls on the server's own hub (read on the media thread); all asked before any is waited on.
    """
    deadline_s = time.monotonic() + timeout_s
    by_worker: dict[Any, list[str]] = {}
    for call_id, session in list(sessions.items())[:MAX_QUERIED]:
        by_worker.setdefault(getattr(session, "worker", None), []).append(call_id)
    queries: list[StatsQuery] = []
    for worker, call_ids in by_worker.items():
        query = StatsQuery(call_ids)
        if worker is None:
            board.after(0, lambda q=query: q.answered(session_stats(sessions, q.call_ids)))
        elif not worker.ask_rtp(query):
            query.answered({})  # its worker is gone: nothing to ask
        queries.append(query)
    figures: dict[str, dict[str, Any] | None] = {}
    for query in queries:
        answer = query.wait(deadline_s)
        for call_id in query.call_ids:
            figures[call_id] = answer.get(call_id) if answer is not None else None
    return figures

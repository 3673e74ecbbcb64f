"""The guard at the server's door: who may ask (authentication), how often (rate), and how healthy the engine is.

One :class:`Guard` per server. The HTTP layer calls :meth:`Guard.admit_post` with each POST's body before any
work (a refusal is the answer to send), :meth:`Guard.admit_query` for ``GET /ipcc/events``, :meth:`Guard.count`
with every answer (refusals are counted by code), :meth:`Guard.prepared` to run a request's preparation on the
pool (speech, files: bounded per application, waiting on the event loop: :mod:`engine.server.slots`) and
:meth:`Guard.status` for ``/ipcc/status`` and ``/metrics``. The watchdog's verdict is the switchboard's admission
rule for new calls, and for requests that would start an idle call playing.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from engine.errors import INTERNAL, OK, EngineError
from engine.server.auth import Authenticator, AuthSettings
from engine.server.delivery import Delivery
from engine.server.limits import AppGate, GuardSettings
from engine.server.slots import PreparationSlots
from engine.server.switchboard import Switchboard
from engine.server.watchdog import Health, Watchdog
from engine.wire.parsed import ParsedText
from engine.wire.request import error_response, ids_of

#: The engine's long-lived threads, by name: ``/ipcc/status`` says whether each runs (``guard.threads``).
ENGINE_THREADS = ("ipcc-media", "ipcc-delivery", "ipcc-watchdog")
#: How long a POST gives the GIL up (s) when the media loop is more than a frame behind its deadlines.
YIELD_S = 0.002
#: How long the POSTs arriving during one media tick wait for it to end, at most (s; half a frame period).
TICK_WAIT_S = 0.010
T = TypeVar("T")


class Guard:
    """Authentication, per-application rate and preparation limits, refusal counters, the watchdog.

    ``monotonic`` (seconds) paces the token buckets and the watchdog; ``wall`` (Unix seconds) checks signature
    timestamps.
    """

    def __init__(self, settings: GuardSettings, auth: AuthSettings, board: Switchboard, delivery: Delivery,
                 monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.board = board
        self.delivery = delivery
        self.gate = AppGate(settings, monotonic)
        self.slots = PreparationSlots(settings)
        self.auth = Authenticator(auth, wall)
        self.watchdog = Watchdog(board.media, board.pacer, settings, monotonic, busy_s=lambda: board.thread.busy_s)
        board.headroom = self.refusal_reason
        board.play_room = self.play_refusal
        self._lock = threading.Lock()
        self.answers: Counter[str] = Counter()
        self.yields = 0  # POSTs that gave the GIL up to a late media loop
        self._yielded_at_s = -math.inf  # on the pacer's clock: at most one yield per frame period

    def start(self) -> None:
        """Start the watchdog."""
        self.watchdog.start()

    def close(self) -> None:
        """Stop the watchdog."""
        self.watchdog.close()

    def refusal_reason(self, calls: int) -> str:
        """Why a new call, making ``calls`` live calls, is refused now ("" when it is not)."""
        health = self.watchdog.health()
        return self.watchdog.projected_refusal(calls) if health.headroom else "; ".join(health.why())

    def play_refusal(self) -> str:
        """Why an idle call may not start playing now ("" when it may): the loop has no headroom."""
        health = self.watchdog.health()
        return "" if health.headroom else "; ".join(health.why())

    def admit_post(self, client_ip: str | None, headers: Mapping[str, str], body: bytes,
                   text: ParsedText | None = None) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """The refusal to answer a POST with (authentication, then rate) or None to go on, and the body's ids.

        The ids: ``appId`` / ``callId``, read once ("" where absent or not text), from ``text`` when it is given
        (``body`` parsed already: :func:`~engine.wire.parsed.parse_once`).
        """
        self.yield_to_media()
        try:
            ids = ids_of(body if text is None else text)
        except Exception:  # e.g. RecursionError on absurd nesting: the body's checks will answer it
            ids = {"appId": "", "callId": ""}
        try:
            if self.auth.enabled:
                self.auth.check(ids["appId"], client_ip, headers, body)
            self.gate.take_request(ids["appId"])
        except EngineError as exc:
            return error_response(exc, ids), ids
        return None, ids

    def yield_to_media(self) -> None:
        """Let the media thread's tick run alone (real time only).

        A request that arrives during a tick on time waits for it to end, at most :data:`TICK_WAIT_S` per tick
        (:meth:`~engine.server.realtime.RealTimeProcess.wait_for_tick`: no GIL convoy; HTTP runs between ticks).
        When the loop is more than a frame behind, the GIL is given up for :data:`YIELD_S`: the GIL is shared
        fairly, and a burst of requests would take half of it from a loop that is catching up; sleeping here (on
        the event loop) lets the media thread run its late ticks back to back. At most once per frame period, so
        that HTTP keeps the rest of the time (a loop that stays behind is admission's business, not a queue of
        sleeping requests).
        """
        if not self.watchdog.judges_headroom:
            return
        pacer = self.board.pacer
        now = pacer.clock.now()
        if now - pacer.deadline_s <= pacer.period_s:
            self.board.thread.process.wait_for_tick(lambda: 0 <= pacer.clock.now() - pacer.deadline_s <= pacer.period_s,
                                                    TICK_WAIT_S)
        elif now - self._yielded_at_s >= pacer.period_s:
            self._yielded_at_s = now
            self.yields += 1
            time.sleep(YIELD_S)

    def admit_query(self, app_id: str, client_ip: str | None, headers: Mapping[str, str],
                    query: bytes) -> dict[str, Any] | None:
        """The refusal to answer a GET of ``app_id`` with (its signature covers the raw ``query``), or None."""
        try:
            if self.auth.enabled:
                self.auth.check(app_id, client_ip, headers, query)
            self.gate.take_request(app_id)
        except EngineError as exc:
            return error_response(exc, {"appId": app_id})
        return None

    async def prepared(self, app_id: str, start: Callable[[], asyncio.Future[T]]) -> T:
        """Run ``start()``'s work holding one of ``app_id``'s preparation slots, waiting for one on the event loop.

        Raises :class:`~engine.errors.BusyError` (``108102``) when its queue is full or the wait is over.
        """
        return await self.slots.run(app_id, start)

    def count(self, answer: Mapping[str, Any] | None) -> None:
        """Count one answer by its code."""
        code = answer.get("code") if answer else None
        with self._lock:
            self.answers[code if isinstance(code, str) else INTERNAL] += 1

    def health(self) -> Health:
        """The watchdog's verdict now."""
        return self.watchdog.health()

    def status(self) -> dict[str, Any]:
        """The guard's part of ``/ipcc/status``: health, headroom and why, answers by code, per-application figures."""
        health = self.watchdog.health()
        with self._lock:
            answers = dict(self.answers)
        running = {thread.name for thread in threading.enumerate()}
        return {"threads": {name: name in running for name in ENGINE_THREADS}, "healthy": health.healthy,
                "headroom": health.headroom, "reasons": health.why(), "stalled_s": round(health.stalled_s, 3),
                "cpu_share": round(health.cpu_share, 4), "real_time": round(health.real_time, 4),
                "recent_p90_lateness_s": health.p90_lateness_s, "recent_p99_lateness_s": health.p99_lateness_s,
                "recent_missed": health.missed_in_window, "cpu_share_per_call": health.cpu_per_call,
                "duty": round(health.duty, 4), "contention": round(health.contention, 3),
                **{f"gc_{name}": value for name, value in vars(self.board.thread.process.stats()).items()},
                "yields_to_media": self.yields, "answers": answers,
                "refusals": {code: n for code, n in answers.items() if code != OK},
                "calls_ended": dict(self.board.ended), "calls_by_app": self.board.calls_by_app(),
                "preparing_by_app": self.slots.in_preparation(), "waiting_by_app": self.slots.waiting(),
                "backlog_by_app": self.delivery.backlogs()}

    def snapshot(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Everything ``/metrics`` shows, as (part, figures) pairs: switchboard, pacer, delivery, guard."""
        yield "calls", self.board.sizes()
        yield "pacer", vars(self.board.pacer.stats())
        yield "delivery", self.delivery.stats()
        yield "guard", self.status()
        if self.board.workers is not None:  # [sip] mediaProcesses: each worker's figures, labelled by worker
            yield "workers", self.board.workers.metrics()

"""The live calls: a thread-safe registry for the HTTP side, and the media thread that owns every call.

Threads. One *media thread* (``ipcc-media``) owns the :class:`~engine.media.loop.MediaLoop` and every
:class:`~engine.media.call.Call`; it is driven by a :class:`~engine.media.pacer.Pacer` on an injected clock.
Other threads
never touch a call: they post commands (add, submit, stop, hang up) to a queue the media thread drains at the
start of each tick, so a command takes effect at the next frame boundary.

Synchronous answers come from the registry, kept under one lock: which call ids are live for which
application, and how many requests each call holds (posted, waiting or playing). :meth:`Switchboard.submit`
reserves a place and posts the command under that lock, so the media thread receives commands in the order
the registry accepted them (the arrival order of accepted requests) and can always take them; a call holds
at most ``queueLimit + 1`` requests (one playing, ``queueLimit`` waiting: ``108102`` beyond). A place is
given back when the request's ``multrpt`` is produced. ``disConnect`` removes the call from the registry at
once (later requests answer ``108105``); the media thread then ends its requests with ``hangup``. A call
the media loop fails on (an exception while playing it) ends the same way, after ``multrpt`` ``error``.

Call events: a call's ``callstatrpt`` (answered) is published when the media thread adds it; when it ends
(``_end``, with a reason: the application's ``disConnect``, the far end, a transfer, an error, shutdown) its
``calldisconnectrpt`` and ``callbillrpt`` follow its last ``multrpt``. A request may carry a hook
(:data:`RequestHook`), called on the media thread right after its ``multrpt`` is published (``playoverrpt``,
a transfer's next step); a hook must only publish or post commands, never touch the media loop.

Guard (:class:`~engine.server.limits.GuardSettings`). ``outCall`` is refused (``108102``) beyond ``max_calls``,
beyond the application's ``calls`` limit, and while :attr:`Switchboard.headroom` names a reason (the watchdog's
verdict, projected for one more call at a playing call's cost); a ``multOrders`` or ``play`` that would start an
idle call playing, while :attr:`Switchboard.play_room` names one (the loop has no headroom now). With media
workers (:mod:`engine.server.worker_pool`) a call whose media can move is placed on a worker first, and that
worker's headroom decides instead of this thread's. A call ends
by itself (its requests with ``hangup``) after ``call_lifetime_s`` from its start, or
after ``call_idle_s`` without any request held (from its start, or from its last ``multrpt``): both are counted
in whole frames (:mod:`engine.server.call_timeouts`). The registry itself: :mod:`engine.server.call_registry`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from engine.config import Config
from engine.core.timeline import Program
from engine.errors import BusyError
from engine.format import frames_for, seconds_to_samples
from engine.media.call import Call
from engine.media.pacer import Clock
from engine.server.call_registry import CallRegistry
from engine.server.call_timeouts import CallTimeouts
from engine.server.limits import GuardSettings
from engine.server.media_thread import ENDED_POLL_TICKS, MediaThread, Publisher, RequestHook
from engine.server.worker_pool import place
from engine.wire.call_events import REASON_APP, REASON_SHUTDOWN

log = logging.getLogger(__name__)

DEFAULT_MAX_CALLS = 10_000
__all__ = ["DEFAULT_MAX_CALLS", "ENDED_POLL_TICKS", "Publisher", "RequestHook", "Switchboard"]


class Switchboard:
    """The registry of live calls and the media thread that plays them.

    ``clock``: paces the media thread (default real time). ``wall_clock``: stamps events (default
    ``datetime.now``). ``max_calls``: live calls at most (``outCall`` beyond answers ``108102``). ``guard``:
    per-application limits and call timeouts (default :class:`GuardSettings`). :attr:`headroom` returns why new
    calls must wait, given the number of live calls there would be ("" when they may come; the server sets it to
    the watchdog's verdict).
    ``ledger``: journals calls and accepted requests (a :class:`~engine.server.delivery.Delivery`; None: none).
    """

    def __init__(self, config: Config, publish: Publisher, clock: Clock | None = None,
                 wall_clock: Callable[[], datetime] = datetime.now, max_calls: int = DEFAULT_MAX_CALLS,
                 guard: GuardSettings | None = None, ledger: Any = None) -> None:
        self.config = config
        self.publish = publish
        self.ledger = ledger  # delivery hook: call_started / request_accepted raise 108104; call_ended queues
        self.wall_clock = wall_clock
        self.max_calls = max_calls
        self.guard = guard or GuardSettings()
        self.headroom: Callable[[int], str] = lambda _calls: ""
        self.play_room: Callable[[], str] = lambda: ""
        self.lifetime_ticks = max(1, frames_for(seconds_to_samples(self.guard.call_lifetime_s)))
        self.idle_ticks = max(1, frames_for(seconds_to_samples(self.guard.call_idle_s)))
        self.registry = CallRegistry()
        self.timeouts = CallTimeouts(self.lifetime_ticks, self.idle_ticks)  # media thread only
        self.ended = self.timeouts.ended  # calls the switchboard ended by itself, by reason
        self.thread = MediaThread(self.registry, self.timeouts, publish, wall_clock, ledger, clock)
        self.media = self.thread.media
        self.pacer = self.thread.pacer
        self._lock = self.registry.lock
        #: The media worker processes (``[sip] mediaProcesses``: :mod:`engine.server.worker_pool`; None: none).
        self.workers: Any = None

    # -- HTTP side (any thread) -------------------------------------------------------------------------------

    def check_call(self, app_id: str, call_id: str) -> None:
        """:class:`UnknownCallError` (``108105``) unless ``call_id`` is a live call of ``app_id``."""
        self.registry.check(app_id, call_id)

    def create(self, app_id: str, endpoint: Any, call_id: str | None = None) -> str:
        """Register a new live call of ``app_id`` on ``endpoint`` and hand it to the media thread.

        ``endpoint`` is an :class:`~engine.server.endpoints.Endpoint` (its ``info``, when set, is what the call
        events say). ``call_id``: default a new one. Returns the call id.
        """
        application = self.config.application(app_id)
        call_id = call_id or uuid.uuid4().hex
        call = Call(app_id, call_id, endpoint.caller, endpoint.sink, self.thread.on_event, application.queue_limit)
        app_calls = self.guard.limits(app_id).calls
        placement = place(self.workers, endpoint)  # a portable call: on a worker with headroom (else 108102)
        try:
            with self._lock:
                self.registry.admit(app_id, self.max_calls, app_calls)
                on_worker = self._on_worker(endpoint)
                reason = "" if on_worker else self.headroom(self._local_calls() + 1)
                if reason:
                    raise BusyError(f"called: no room for a new call now ({reason})")
                if self.ledger is not None:  # delivery hook: journaled before it is live (108104 if it cannot be)
                    self.ledger.call_started(app_id, call_id)
                self.registry.add(app_id, call_id, application.queue_limit, getattr(endpoint, "info", None),
                                  on_worker)
                self.thread.post("add", (call, endpoint))
        except BaseException:
            if placement is not None:
                placement.release()
            raise
        return call_id

    @staticmethod
    def _on_worker(endpoint: Any) -> bool:
        """True when the call's media plays on a media worker (its worker admitted it when it was placed)."""
        if getattr(endpoint, "placed", None) is not None:
            return True
        return getattr(getattr(endpoint, "caller", None), "placed_on", None) is not None

    def _local_calls(self) -> int:
        """The live calls whose media the server's own media thread carries (not those on media workers)."""
        placed = self.workers.placed() if self.workers is not None else 0
        return max(self.registry.count() - placed, 0)

    def submit(self, app_id: str, call_id: str, program: Program, hook: RequestHook | None = None,
               guarded: bool = False, watch: Any = None) -> None:
        """Queue ``program`` on the call: ``108105`` if it is not live, ``108102`` if its queue is full.

        ``hook`` is called after the request's ``multrpt`` (module docstring). ``watch``: a
        :class:`~engine.server.message.Message` whose ``hear`` listens to the caller while the request plays
        (on the call's media worker, its ``silence`` span and level). ``guarded`` (the application's
        ``multOrders`` and ``play``): a request that would start an idle call playing is refused (``108102``)
        while :attr:`play_room` names a reason (the loop has no headroom now), so the calls playing keep real time
        (a call on a media worker: its worker's headroom admitted it, this thread's loop is not asked).
        """
        with self._lock:
            self.registry.hold(app_id, call_id)
            if guarded and not self.registry.holds_requests(call_id) and not self.registry.on_worker(call_id) \
                    and (reason := self.play_room()):
                raise BusyError(f"callId: no room to start playing now ({reason})")
            if self.ledger is not None:  # delivery hook: journaled before 000000 (108104 if it cannot be)
                self.ledger.request_accepted(app_id, call_id)
            self.registry.take(call_id)
            self.thread.post("submit", (app_id, call_id, program, hook, watch))

    def stop_play(self, app_id: str, call_id: str) -> None:
        """``stoPlay``: the request playing at the next frame boundary ends with ``stopped``."""
        with self._lock:
            self.registry.check(app_id, call_id)
            self.thread.post("stop", call_id)

    def hang_up(self, app_id: str, call_id: str, reason: str = REASON_APP) -> None:
        """``disConnect``: the call leaves the registry now; its requests end with ``hangup``.

        ``reason``: the ``calldisconnectrpt`` reason (default: the application hung up).
        """
        with self._lock:
            self.registry.check(app_id, call_id)
            self.registry.forget(call_id)
            self.thread.post("hangup", (call_id, reason))

    def after(self, samples: int, action: Callable[[], None]) -> None:
        """Run ``action`` on the media thread once ``samples`` of media time have passed (a ringing phone).

        ``action`` must only publish or post commands, as a request hook.
        """
        with self._lock:
            self.thread.post("after", (samples, action))

    def sizes(self) -> dict[str, int]:
        """Registry and media-thread sizes (for status and tests); with media workers, their calls too."""
        with self._lock:
            sizes = {"live_calls": self.registry.count(), "held_requests": self.registry.held_total(),
                     "commands": self.thread.pending(), "media_calls": len(self.media.calls)}
        if self.workers is not None:  # [sip] mediaProcesses: the calls on workers, those lost with a worker
            sizes.update(worker_calls=len(self.thread.remote), worker_calls_lost=self.thread.remote.lost)
        return sizes

    def info(self, call_id: str) -> Any:
        """The live call's :class:`~engine.wire.call_events.CallInfo` (None: not live, or none)."""
        return self.registry.info(call_id)

    def calls_by_app(self) -> dict[str, int]:
        """Live calls per application."""
        with self._lock:
            return self.registry.per_app()

    def is_live(self, call_id: str) -> bool:
        """True while ``call_id`` is a live call (of any application)."""
        return self.registry.is_live(call_id)

    def app_of(self, call_id: str) -> str | None:
        """The application of the live call ``call_id`` (None when it is not live)."""
        return self.registry.app_of(call_id)

    def live_calls(self, app_id: str | None = None) -> list[str]:
        """The live call ids (of ``app_id``, or all)."""
        with self._lock:
            return self.registry.ids(app_id)

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the media thread.

        The process is set for real time first (:class:`~engine.server.realtime.RealTimeProcess`: a short
        GIL switch interval; the objects alive now, and from then on the survivors of young collections, out
        of the garbage collector's reach while calls are live).
        """
        self.thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Hang up every call (their events are published, recordings finished) and stop the media thread."""
        with self._lock:
            for call_id in self.registry.ids():
                self.registry.forget(call_id)
                self.thread.post("hangup", (call_id, REASON_SHUTDOWN))
            self.thread.post("exit", None)
        self.thread.join(timeout_s)

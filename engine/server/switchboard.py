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
verdict). A call ends by itself (its requests with ``hangup``) after ``call_lifetime_s`` from its start, or
after ``call_idle_s`` without any request held (from its start, or from its last ``multrpt``): both are counted
in whole frames, kept in a heap of deadlines, so the media thread pays O(1) per tick and O(log n) per call.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.config import Config
from engine.core.reports import PlayerEvent, RequestReport, Result
from engine.core.timeline import Program
from engine.errors import BusyError, QueueFullError, UnknownCallError
from engine.format import SAMPLES_PER_FRAME, frames_for, seconds_to_samples
from engine.media.call import Call
from engine.media.loop import MediaLoop
from engine.media.pacer import Clock, MonotonicClock, Pacer
from engine.server.limits import GuardSettings
from engine.wire.call_events import (
    ANSWERED,
    REASON_APP,
    REASON_ERROR,
    REASON_REMOTE,
    REASON_SHUTDOWN,
    REASON_TIMEOUT,
    call_bill_report,
    call_disconnect_report,
    call_stat_report,
)
from engine.wire.events import event_body

log = logging.getLogger(__name__)

#: ``publish(app_id, call_id, body)``: where event bodies go (the delivery worker).
Publisher = Callable[[str, str, dict[str, Any]], Any]
DEFAULT_MAX_CALLS = 10_000
ENDED_POLL_TICKS = 25
#: ``hook(call, report)``: called on the media thread after a request's ``multrpt`` (see the module docstring).
RequestHook = Callable[[Call, RequestReport], None]


@dataclass
class _Live:
    app_id: str
    limit: int
    held: int = 0
    info: Any = None  # the endpoint's CallInfo (what the call events say), when it has one


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
        self.lifetime_ticks = max(1, frames_for(seconds_to_samples(self.guard.call_lifetime_s)))
        self.idle_ticks = max(1, frames_for(seconds_to_samples(self.guard.call_idle_s)))
        self.ended = {"lifetime": 0, "idle": 0}  # calls the switchboard ended by itself, by reason
        self._per_app: dict[str, int] = {}  # live calls per application (under the lock)
        # media thread only: (tick, order, call id, kind, generation) of lifetime and idle deadlines
        self._deadlines: list[tuple[int, int, str, str, int]] = []
        self._generation: dict[str, int] = {}  # media thread only: bumped when a request is queued on the call
        self._order = itertools.count()
        self.media = MediaLoop()
        self.pacer = Pacer(clock or MonotonicClock(), self._tick)
        self._lock = threading.Lock()
        self._live: dict[str, _Live] = {}
        self._commands: deque[tuple[str, Any]] = deque()
        self._calls: dict[str, tuple[Call, Any]] = {}  # media thread only: call id → (call, endpoint)
        self._ending: list[tuple[Call, Callable[[], bool]]] = []  # media thread only
        self._hooks: dict[str, deque[RequestHook | None]] = {}  # media thread only: per call, in request order
        self._timers: list[tuple[int, Callable[[], None]]] = []  # media thread only: (tick, action)
        self._thread: threading.Thread | None = None

    # -- HTTP side (any thread) -------------------------------------------------------------------------------

    def check_call(self, app_id: str, call_id: str) -> None:
        """:class:`UnknownCallError` (``108105``) unless ``call_id`` is a live call of ``app_id``."""
        live = self._live.get(call_id)
        if live is None or live.app_id != app_id:
            raise UnknownCallError(f"callId: {call_id[:64]!r} is not a live call of this application")

    def create(self, app_id: str, endpoint: Any, call_id: str | None = None) -> str:
        """Register a new live call of ``app_id`` on ``endpoint`` and hand it to the media thread.

        ``endpoint`` is an :class:`~engine.server.endpoints.Endpoint` (its ``info``, when set, is what the call
        events say). ``call_id``: default a new one. Returns the call id.
        """
        application = self.config.application(app_id)
        call_id = call_id or uuid.uuid4().hex
        call = Call(app_id, call_id, endpoint.caller, endpoint.sink, self._on_event, application.queue_limit)
        app_calls = self.guard.limits(app_id).calls
        with self._lock:
            if len(self._live) >= self.max_calls:
                raise QueueFullError(f"called: the engine already holds {self.max_calls} live calls")
            if self._per_app.get(app_id, 0) >= app_calls:
                raise BusyError(f"appId: the application already holds {app_calls} live calls")
            reason = self.headroom(len(self._live) + 1)
            if reason:
                raise BusyError(f"called: no room for a new call now ({reason})")
            if self.ledger is not None:  # delivery hook: journaled before it is live (108104 if it cannot be)
                self.ledger.call_started(app_id, call_id)
            self._live[call_id] = _Live(app_id, application.queue_limit, info=getattr(endpoint, "info", None))
            self._per_app[app_id] = self._per_app.get(app_id, 0) + 1
            self._commands.append(("add", (call, endpoint)))
        return call_id

    def _forget(self, call_id: str) -> bool:
        """Take ``call_id`` out of the registry (the lock held); False when it was not there."""
        live = self._live.pop(call_id, None)
        if live is None:
            return False
        left = self._per_app[live.app_id] - 1
        if left:
            self._per_app[live.app_id] = left
        else:
            del self._per_app[live.app_id]
        return True

    def submit(self, app_id: str, call_id: str, program: Program, hook: RequestHook | None = None) -> None:
        """Queue ``program`` on the call: ``108105`` if it is not live, ``108102`` if its queue is full.

        ``hook`` is called after the request's ``multrpt`` (module docstring).
        """
        with self._lock:
            self.check_call(app_id, call_id)
            live = self._live[call_id]
            if live.held > live.limit:
                raise QueueFullError(f"callId: the call's queue is full ({live.limit} requests waiting)")
            if self.ledger is not None:  # delivery hook: journaled before 000000 (108104 if it cannot be)
                self.ledger.request_accepted(app_id, call_id)
            live.held += 1
            self._commands.append(("submit", (call_id, program, hook)))

    def stop_play(self, app_id: str, call_id: str) -> None:
        """``stoPlay``: the request playing at the next frame boundary ends with ``stopped``."""
        with self._lock:
            self.check_call(app_id, call_id)
            self._commands.append(("stop", call_id))

    def hang_up(self, app_id: str, call_id: str, reason: str = REASON_APP) -> None:
        """``disConnect``: the call leaves the registry now; its requests end with ``hangup``.

        ``reason``: the ``calldisconnectrpt`` reason (default: the application hung up).
        """
        with self._lock:
            self.check_call(app_id, call_id)
            self._forget(call_id)
            self._commands.append(("hangup", (call_id, reason)))

    def after(self, samples: int, action: Callable[[], None]) -> None:
        """Run ``action`` on the media thread once ``samples`` of media time have passed (a ringing phone).

        ``action`` must only publish or post commands, as a request hook.
        """
        with self._lock:
            self._commands.append(("after", (samples, action)))

    def sizes(self) -> dict[str, int]:
        """Registry and media-thread sizes (for status and tests)."""
        with self._lock:
            return {"live_calls": len(self._live), "held_requests": sum(v.held for v in self._live.values()),
                    "commands": len(self._commands), "media_calls": len(self.media.calls)}

    def info(self, call_id: str) -> Any:
        """The live call's :class:`~engine.wire.call_events.CallInfo` (None: not live, or none)."""
        live = self._live.get(call_id)
        return live.info if live is not None else None

    def calls_by_app(self) -> dict[str, int]:
        """Live calls per application."""
        with self._lock:
            return dict(self._per_app)

    def is_live(self, call_id: str) -> bool:
        """True while ``call_id`` is a live call (of any application)."""
        return call_id in self._live

    def app_of(self, call_id: str) -> str | None:
        """The application of the live call ``call_id`` (None when it is not live)."""
        live = self._live.get(call_id)
        return live.app_id if live is not None else None

    def live_calls(self, app_id: str | None = None) -> list[str]:
        """The live call ids (of ``app_id``, or all)."""
        with self._lock:
            return [cid for cid, live in self._live.items() if app_id is None or live.app_id == app_id]

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the media thread.

        The objects alive now (modules, the web framework's) are moved out of the garbage collector's
        reach (``gc.freeze``): a full collection over them would hold the GIL for tens of milliseconds and
        make frames late.
        """
        gc.freeze()
        self._thread = threading.Thread(target=self._run, name="ipcc-media", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Hang up every call (their events are published, recordings finished) and stop the media thread."""
        with self._lock:
            for call_id in list(self._live):
                self._forget(call_id)
                self._commands.append(("hangup", (call_id, REASON_SHUTDOWN)))
            self._commands.append(("exit", None))
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("the media thread did not stop within %.1f s", timeout_s)
        else:
            self._apply_commands()

    def _run(self) -> None:
        try:
            self.pacer.run()
        except BaseException:
            log.critical("the media thread died", exc_info=True)
            raise

    # -- media thread -------------------------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._commands:
            self._apply_commands()
        if self._deadlines and self._deadlines[0][0] <= self.media.ticks:
            self._expire()
        self.media.tick()
        for call in self.media.failed:  # a call the engine failed on is dropped, not retried every frame
            with self._lock:
                self._forget(call.call_id)
            self._end(call.call_id, REASON_ERROR)
        if self._ending and self.media.ticks % ENDED_POLL_TICKS == 0:
            self._poll_ended()
        if self._timers and self._timers[0][0] <= self.media.ticks:
            self._fire_timers()

    def _fire_timers(self) -> None:
        due = [action for tick, action in self._timers if tick <= self.media.ticks]
        self._timers = [(tick, action) for tick, action in self._timers if tick > self.media.ticks]
        for action in due:
            try:
                action()
            except Exception:
                log.exception("a timer's action failed")

    def _apply_commands(self) -> None:
        commands = self._commands
        while commands:
            kind, arg = commands.popleft()
            try:
                self._apply(kind, arg)
            except Exception:
                log.exception("media command %s failed", kind)

    def _apply(self, kind: str, arg: Any) -> None:
        if kind == "add":
            call, endpoint = arg
            self._calls[call.call_id] = (call, endpoint)
            self._hooks[call.call_id] = deque()
            self.media.add(call)
            info = getattr(endpoint, "info", None)
            if info is not None:
                info.answered = info.answered or self.wall_clock()
                self.publish(call.app_id, call.call_id, call_stat_report(info, ANSWERED, info.answered))
            if endpoint.attach is not None:
                endpoint.attach(call)
            self._generation[call.call_id] = 0
            self._deadline(self.lifetime_ticks, call.call_id, "lifetime")
            self._deadline(self.idle_ticks, call.call_id, "idle")
            if endpoint.ended is not None:
                self._ending.append((call, endpoint.ended))
        elif kind == "submit":
            call_id, program, hook = arg
            call = self._calls[call_id][0]
            self._hooks[call_id].append(hook)
            if call.hung_up:  # cannot happen: hang-up is posted after, and removes the call
                self._on_event(call, RequestReport(Result.HANGUP, None, 0), call.position_samples)
            else:
                call.pending.append(program)  # the registry already checked the limit
                self._generation[call_id] += 1  # no longer idle: its idle deadline is void
        elif kind == "stop":
            self._calls[arg][0].stop()
        elif kind == "hangup":
            self._end(*arg)
        elif kind == "after":
            samples, action = arg
            self._timers.append((self.media.ticks + -(-samples // SAMPLES_PER_FRAME), action))
            self._timers.sort(key=lambda timer: timer[0])
        elif kind == "exit":
            self.pacer.stop()

    def _end(self, call_id: str, reason: str) -> None:
        entry = self._calls.get(call_id)
        if entry is None:
            return
        call, endpoint = entry
        self._generation.pop(call_id, None)
        call.hang_up()
        del self._calls[call_id]
        self._hooks.pop(call_id, None)
        self.media.remove(call)  # closes the sink
        self._ending = [(c, ended) for c, ended in self._ending if c is not call]
        if endpoint.on_close is not None:
            endpoint.on_close()
        info = getattr(endpoint, "info", None)
        if info is not None:
            moment = self.wall_clock()
            self.publish(call.app_id, call_id, call_disconnect_report(info, reason, call.position_samples, moment))
            self.publish(call.app_id, call_id, call_bill_report(info, call.position_samples, moment))
        if self.ledger is not None:  # delivery hook: queued, journaled after the call's events
            self.ledger.call_ended(call_id)

    def _poll_ended(self) -> None:
        for call, ended in list(self._ending):
            try:
                gone = ended()
            except Exception:
                log.exception("endpoint of call %s failed", call.call_id)
                gone = True
            if gone:
                with self._lock:
                    self._forget(call.call_id)
                self._end(call.call_id, REASON_REMOTE)

    def _deadline(self, after_ticks: int, call_id: str, kind: str) -> None:
        """End ``call_id`` (``kind``: lifetime or idle) before the tick ``after_ticks`` from the current one."""
        entry = (self.media.ticks + after_ticks, next(self._order), call_id, kind, self._generation[call_id])
        heapq.heappush(self._deadlines, entry)

    def _expire(self) -> None:
        """End the calls whose deadline is the current tick (stale idle deadlines are dropped)."""
        deadlines, now = self._deadlines, self.media.ticks
        while deadlines and deadlines[0][0] <= now:
            _, _, call_id, kind, generation = heapq.heappop(deadlines)
            if call_id not in self._calls or (kind == "idle" and generation != self._generation[call_id]):
                continue
            with self._lock:
                live = self._live.get(call_id)
                if kind == "idle" and live is not None and live.held:
                    continue  # a request was posted and is not applied yet: not idle
                self._forget(call_id)
            self.ended[kind] += 1  # counted, not logged: the media thread never waits on a log handler
            self._end(call_id, REASON_TIMEOUT)

    def _on_event(self, call: Call, event: PlayerEvent, at_sample: int) -> None:
        if isinstance(event, RequestReport):
            with self._lock:
                live = self._live.get(call.call_id)
                if live is not None:
                    live.held -= 1
                    idle = not live.held
            if live is not None and idle and call.call_id in self._generation:
                self._generation[call.call_id] += 1
                self._deadline(1 + self.idle_ticks, call.call_id, "idle")
        self.publish(call.app_id, call.call_id, event_body(event, call.app_id, call.call_id, self.wall_clock()))
        hooks = self._hooks.get(call.call_id)
        if isinstance(event, RequestReport) and hooks:
            hook = hooks.popleft()
            if hook is not None:
                try:
                    hook(call, event)
                except Exception:
                    log.exception("the hook of a request of call %s failed", call.call_id)


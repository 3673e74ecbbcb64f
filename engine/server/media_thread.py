"""The media thread's side of the switchboard: it owns every call and applies the commands posted to it.

One thread (``ipcc-media``) owns the :class:`~engine.media.loop.MediaLoop` and every
:class:`~engine.media.call.Call`, driven by a :class:`~engine.media.pacer.Pacer`. Other threads post commands
(:meth:`MediaThread.post`, under the registry's lock) that are applied at the start of the next tick. The
call timeouts (:mod:`engine.server.call_timeouts`), the endpoints' "ended" polls and the timers of
:meth:`~engine.server.switchboard.Switchboard.after` are checked once per tick. Every exception in a command,
a timer, an endpoint poll or a request hook is logged and the thread carries on.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from engine.core.reports import PlayerEvent, RequestReport, Result
from engine.format import SAMPLES_PER_FRAME
from engine.media.call import Call
from engine.media.loop import MediaLoop
from engine.media.pacer import Clock, MonotonicClock, Pacer
from engine.server.call_registry import CallRegistry
from engine.server.call_timeouts import IDLE, CallTimeouts
from engine.server.call_watcher import CallWatcher
from engine.server.media_remote import RemoteCalls
from engine.server.realtime import RealTimeProcess
from engine.wire.call_events import (
    ANSWERED,
    REASON_ERROR,
    REASON_REMOTE,
    REASON_TIMEOUT,
    call_bill_report,
    call_disconnect_report,
    call_stat_report,
)
from engine.wire.events import event_body

log = logging.getLogger("engine.server.switchboard")  # the switchboard's log, as before the split
ENDED_POLL_TICKS = 25
EXIT_WAIT_TICKS = 250  # on exit, how long the calls on media workers may take to end (5 s)
#: ``publish(app_id, call_id, body)``: where event bodies go (the delivery worker).
Publisher = Callable[[str, str, dict[str, Any]], Any]
#: ``hook(call, report)``: called on the media thread after a request's ``multrpt``.
RequestHook = Callable[[Call, RequestReport], None]


class MediaThread:
    """The media loop, its pacer and every call, with the commands posted to them (the media thread only).

    ``registry``: the live calls (its lock is taken to change it); ``timeouts``: the calls' deadlines;
    ``publish``, ``wall_clock`` and ``ledger``: as the :class:`~engine.server.switchboard.Switchboard`'s.
    """

    def __init__(self, registry: CallRegistry, timeouts: CallTimeouts, publish: Publisher,
                 wall_clock: Callable[[], datetime], ledger: Any, clock: Clock | None = None) -> None:
        self.registry = registry
        self.timeouts = timeouts
        self.publish = publish
        self.wall_clock = wall_clock
        self.ledger = ledger
        self.media = MediaLoop()
        self.pacer = Pacer(clock or MonotonicClock(), self._tick)
        self._lock = registry.lock
        self._commands: deque[tuple[str, Any]] = deque()
        self._calls: dict[str, tuple[Call, Any]] = {}  # call id → (call, endpoint)
        self._ending: list[tuple[Call, Callable[[], bool]]] = []
        self._hooks: dict[str, deque[RequestHook | None]] = {}  # per call, in request order
        self._timers: list[tuple[int, Callable[[], None]]] = []  # (tick, action)
        self.watchers: list[CallWatcher] = []  # added before the thread starts
        self._thread: threading.Thread | None = None
        self.process = RealTimeProcess()  # the GIL switch interval and the collector's policy
        #: Seconds of the pacer's clock spent in ticks (CPU, and waits for the GIL or a core: the loop's duty).
        self.busy_s = 0.0
        #: The calls playing in media worker processes (``[sip] mediaProcesses``): :mod:`engine.server.media_remote`.
        self.remote = RemoteCalls(self)
        self._exit_at: int | None = None  # the tick the thread stops at, after "exit"

    def post(self, kind: str, arg: Any) -> None:
        """Post a command for the next tick (any thread, the registry's lock held)."""
        self._commands.append((kind, arg))

    def post_locked(self, kind: str, arg: Any) -> None:
        """:meth:`post` with the registry's lock taken here (a worker's reader thread)."""
        with self._lock:
            self._commands.append((kind, arg))

    def pending(self) -> int:
        """Commands posted and not applied yet."""
        return len(self._commands)

    def start(self) -> None:
        """Start the media thread (after :meth:`RealTimeProcess.start`: see :meth:`Switchboard.start`)."""
        self.process.start()
        self._thread = threading.Thread(target=self._run, name="ipcc-media", daemon=True)
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the thread to end (after an ``exit`` command); never started: apply now."""
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

    def _tick(self) -> None:
        clock = self.pacer.clock
        started_s = clock.now()
        self._tick_once()
        self.busy_s += clock.now() - started_s

    def _tick_once(self) -> None:
        if self._commands:
            self._apply_commands()
        if self.timeouts.due(self.media.ticks):
            self._expire()
        self.media.tick()
        for call in self.media.failed:  # a call the engine failed on is dropped, not retried every frame
            with self._lock:
                self.registry.forget(call.call_id)
            self._end(call.call_id, REASON_ERROR)
        if self._ending and self.media.ticks % ENDED_POLL_TICKS == 0:
            self._poll_ended()
        if self._timers and self._timers[0][0] <= self.media.ticks:
            self._fire_timers()
        self.process.on_tick(self.media.ticks, len(self._calls))
        if self._exit_at is not None and (not len(self.remote) or self.media.ticks >= self._exit_at):
            self.pacer.stop()

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
            self._add(*arg)
        elif kind == "submit":
            app_id, call_id, program, hook, watch = arg
            entry = self._calls.get(call_id)
            if entry is None:  # the call ended (by itself, here) after the request was accepted: it ends with hangup
                report = RequestReport(Result.HANGUP, None, 0)
                self.publish(app_id, call_id, event_body(report, app_id, call_id, self.wall_clock()))
                return
            call = entry[0]
            self._hooks[call_id].append(hook)
            if call.hung_up:  # cannot happen: hang-up is posted after, and removes the call
                self.on_event(call, RequestReport(Result.HANGUP, None, 0), call.position_samples)
            else:
                if not self.remote.submit(call_id, program, watch):
                    call.pending.append(program)  # the registry already checked the limit
                    if watch is not None:  # a message's silence, heard here
                        self.media.listen(call_id, watch.hear)
                self.timeouts.busy(call_id)  # no longer idle: its idle deadline is void
        elif kind == "stop":
            if not self.remote.stop(arg):
                self._calls[arg][0].stop()
        elif kind.startswith("worker"):  # a media worker's report, or its death (engine.server.media_remote)
            self.remote.apply(kind, *arg)
        elif kind == "hangup":
            self._end(*arg)
        elif kind == "after":
            samples, action = arg
            self._timers.append((self.media.ticks + -(-samples // SAMPLES_PER_FRAME), action))
            self._timers.sort(key=lambda timer: timer[0])
        elif kind == "exit":  # the calls on workers end first (their events), for at most EXIT_WAIT_TICKS
            self._exit_at = self.media.ticks + (EXIT_WAIT_TICKS if len(self.remote) else 0)

    def _add(self, call: Call, endpoint: Any) -> None:
        self._calls[call.call_id] = (call, endpoint)
        self._hooks[call.call_id] = deque()
        if not self.remote.add(call, endpoint):
            self.media.add(call)
        info = getattr(endpoint, "info", None)
        if info is not None:
            info.answered = info.answered or self.wall_clock()
            self.publish(call.app_id, call.call_id, call_stat_report(info, ANSWERED, info.answered))
        if endpoint.attach is not None:
            endpoint.attach(call)
        self._watch("call_started", call, endpoint)
        self.timeouts.start(call.call_id, self.media.ticks)
        if endpoint.ended is not None:
            self._ending.append((call, endpoint.ended))

    def _end(self, call_id: str, reason: str) -> None:
        entry = self._calls.get(call_id)
        if entry is None:
            return
        call, endpoint = entry
        self.timeouts.forget(call_id)
        if self.remote.hang_up(call, reason):
            return  # its worker hangs it up, then reports: finish() follows
        call.hang_up()
        self.media.remove(call)  # closes the sink
        self.finish(call_id, reason)

    def entry(self, call_id: str) -> tuple[Call, Any] | None:
        """The live call ``call_id`` and its endpoint (None: not here)."""
        return self._calls.get(call_id)

    def held(self, call_id: str) -> int:
        """How many of the call's requests have no ``multrpt`` yet."""
        return len(self._hooks.get(call_id, ()))

    def forget(self, call_id: str) -> None:
        """The call leaves the registry (later requests answer ``108105``)."""
        with self._lock:
            self.registry.forget(call_id)

    def finish(self, call_id: str, reason: str) -> None:
        """The call is over (its sink closed): the endpoint told, its events published, the ledger told."""
        call, endpoint = self._calls.pop(call_id)
        self._hooks.pop(call_id, None)
        self._ending = [(c, ended) for c, ended in self._ending if c is not call]
        if endpoint.on_close is not None:
            endpoint.on_close()
        self._watch("call_ended", call, endpoint)
        info = getattr(endpoint, "info", None)
        if info is not None:
            moment = self.wall_clock()
            self.publish(call.app_id, call_id, call_disconnect_report(info, reason, call.position_samples, moment))
            self.publish(call.app_id, call_id, call_bill_report(info, call.position_samples, moment))
        if self.ledger is not None:  # delivery hook: queued, journaled after the call's events
            self.ledger.call_ended(call_id)

    def _watch(self, what: str, call: Call, endpoint: Any) -> None:
        for watcher in self.watchers:
            try:
                getattr(watcher, what)(call, endpoint)
            except Exception:
                log.exception("a call watcher failed on call %s", call.call_id)

    def _poll_ended(self) -> None:
        for call, ended in list(self._ending):
            try:
                gone = ended()
            except Exception:
                log.exception("endpoint of call %s failed", call.call_id)
                gone = True
            if gone:
                with self._lock:
                    self.registry.forget(call.call_id)
                self._end(call.call_id, REASON_REMOTE)

    def _expire(self) -> None:
        """End the calls whose deadline is the current tick (stale idle deadlines are dropped)."""
        for call_id, kind in self.timeouts.expired(self.media.ticks):
            with self._lock:
                if kind == IDLE and self.registry.holds_requests(call_id):
                    continue  # a request was posted and is not applied yet: not idle
                self.registry.forget(call_id)
            self.timeouts.ended[kind] += 1  # counted, not logged: the media thread never waits on a log handler
            self._end(call_id, REASON_TIMEOUT)

    def on_event(self, call: Call, event: PlayerEvent, at_sample: int) -> None:
        """A call's player event: published; a ``multrpt`` gives its place back and runs its hook."""
        if isinstance(event, RequestReport):
            with self._lock:
                idle = self.registry.release(call.call_id)
            if idle:
                self.timeouts.idle_again(call.call_id, self.media.ticks)
        self.publish(call.app_id, call.call_id, event_body(event, call.app_id, call.call_id, self.wall_clock()))
        hooks = self._hooks.get(call.call_id)
        if isinstance(event, RequestReport) and hooks:
            hook = hooks.popleft()
            if hook is not None:
                try:
                    hook(call, event)
                except Exception:
                    log.exception("the hook of a request of call %s failed", call.call_id)

"""A live call: its queue of requests, the player of the current one, the caller's audio and where it goes."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

import numpy as np

from engine.core.player import RequestPlayer
from engine.core.quiet import QuietFrames
from engine.core.reports import PlayerEvent, RequestReport, Result
from engine.core.timeline import Program
from engine.dtmf.detector import KeyEvent
from engine.errors import QueueFullError
from engine.format import SAMPLES_PER_FRAME, SILENT_FRAME
from engine.media.sinks import Sink

_FRAME = SAMPLES_PER_FRAME


class CallerSource(Protocol):
    """The caller's audio, read one frame at a time; told when each request starts playing."""

    def read(self, count: int) -> np.ndarray:
        """Return the caller's next ``count`` samples (one frame of int16 audio)."""

    def request_started(self) -> None:
        """Called when a request starts playing."""


#: The fewest frames worth a quiet run (:meth:`Call.quiet_run`).
MIN_RUN_FRAMES = 3


class TickCount:
    """The ticks a media loop has started (``started``): quiet runs count their frames by it."""

    __slots__ = ("started",)

    def __init__(self) -> None:
        self.started = 0


class QuietRun:
    """``frames`` frames played for a call from the start of ``ticks``' next tick on, without ticking it.

    When it ends, ``on_end(token)`` is called.
    """

    __slots__ = ("ticks", "start", "frames", "on_end", "token")

    def __init__(self, ticks: TickCount, frames: int, on_end: Callable[[int], None], token: int) -> None:
        self.ticks, self.start, self.frames, self.on_end, self.token = ticks, ticks.started, frames, on_end, token

    def elapsed(self) -> int:
        """The run's frames played so far (each counts from the start of its tick)."""
        return min(max(self.ticks.started - self.start, 0), self.frames)


#: ``on_event(call, event, at_sample)``: ``at_sample`` counts from the call's start.
EventHandler = Callable[["Call", PlayerEvent, int], None]


class Call:
    """One call: requests run one after another in arrival order, one frame per tick.

    ``queue_limit``: how many requests may wait behind the one playing (``108102`` beyond); a call may hold
    ``queue_limit + 1`` requests in all (playing and waiting). ``ended``: set by an endpoint whose caller went
    away (the media thread then hangs the call up).
    """

    # slots: what every tick reads first, in one compact object
    __slots__ = ("_player", "_position", "pending", "hung_up", "caller", "sink", "on_event",
                 "request_start_sample", "app_id", "call_id", "queue_limit", "ended", "_run")

    def __init__(self, app_id: str, call_id: str, caller: CallerSource, sink: Sink, on_event: EventHandler,
                 queue_limit: int = 8) -> None:
        self.app_id, self.call_id = app_id, call_id
        self.caller = caller
        self.sink = sink
        self.on_event = on_event
        self.queue_limit = queue_limit
        self._position = 0
        self._player: RequestPlayer | None = None
        self._run: QuietRun | None = None  # the frames a media loop plays for the call without ticking it
        self.request_start_sample = 0
        self.pending: deque[Program] = deque()
        self.hung_up = False
        self.ended = False

    @property
    def position_samples(self) -> int:
        """Samples played since the call started (frames of a quiet run count from the start of their tick)."""
        run = self._run
        if run is None:
            return self._position
        return self._position + _FRAME * run.elapsed()

    @position_samples.setter
    def position_samples(self, value: int) -> None:  # a call played elsewhere (a media worker) reports it
        self.end_run()
        self._position = value

    @property
    def player(self) -> RequestPlayer | None:
        """The current request's player (None: idle); up to date with the frames played."""
        self.end_run()
        return self._player

    @property
    def idle(self) -> bool:
        """True when nothing plays and nothing waits."""
        return self._player is None and not self.pending

    @property
    def outstanding(self) -> int:
        """Requests held: the one playing (if any) and those waiting."""
        return len(self.pending) + (self._player is not None)

    def submit(self, program: Program) -> None:
        """Queue a request behind the others; :class:`QueueFullError` when the queue is full."""
        if self.outstanding > self.queue_limit:
            raise QueueFullError(f"callId: the call's queue is full ({self.queue_limit} requests waiting)")
        self.pending.append(program)

    def _start_next(self) -> RequestPlayer:
        player = self._player = RequestPlayer(self.pending.popleft())
        self.request_start_sample = self._position
        self.caller.request_started()
        return player

    def tick(self, keep: bool) -> np.ndarray | None:
        """Advance the call by one frame: start the next request when idle, play, hand its events on.

        Returns the frame played to the caller (silence when idle), or None when ``keep`` is False: the frame
        would go nowhere, so the player only moves time on (same events, no samples).
        """
        if self._run is not None:
            self.end_run()
        player = self._player
        if player is None:
            if not self.pending or self.hung_up:
                self._position += _FRAME
                return SILENT_FRAME if keep else None
            player = self._start_next()
        self._position += _FRAME
        if keep:
            frame = player.next_frame()
        else:
            frame = None
            player.skip_frame()
        if player.events:
            self.drain_events(player)
        return frame

    def quiet_run(self, ticks: TickCount, on_end: Callable[[int], None], token: int) -> QuietFrames | None:
        """Start a quiet run: the frames from ``ticks``' next tick in which only the call's time moves on.

        Returns them (one row per tick), or None when fewer than :data:`MIN_RUN_FRAMES` are quiet (nothing
        started). A media loop plays the rows without ticking the call (the call's position counts them as
        ``ticks`` start); anything else asked of the call ends the run first, with ``on_end(token)`` (the loop
        ticks the call again), as :meth:`end_run` does.
        """
        player = self._player
        if player is None or self._run is not None:
            return None
        frames = player.quiet_frames(MIN_RUN_FRAMES)
        if frames is not None:
            self._run = QuietRun(ticks, len(frames.samples), on_end, token)
        return frames

    def end_run(self) -> None:
        """The quiet run (if any) ends: the frames played in it are played for the call and its player."""
        run = self._run
        if run is None:
            return
        self._run = None
        done = run.elapsed()
        self._position += _FRAME * done
        assert self._player is not None
        self._player.pass_quiet(done)
        run.on_end(run.token)

    def next_frame(self) -> np.ndarray:
        """The frame to play to the caller in this tick (silence when idle)."""
        frame = self.tick(True)
        assert frame is not None
        return frame

    def on_key(self, event: KeyEvent) -> None:
        """A key decoded from the caller's audio (``start_sample`` counted from the call's start)."""
        player = self.player
        if player is not None:
            player.on_key(event.key, event.start_sample - self.request_start_sample)
            self.drain_events(player)

    def stop(self) -> None:
        """``stoPlay``: the request playing now ends with ``stopped``; the queue goes on.

        A request queued but not yet started (it would start in this tick) counts as playing now.
        """
        if self.player is None and self.pending and not self.hung_up:
            self._start_next()
        if self.player is not None:
            self.player.stop()
            self.drain_events(self.player)

    def fail(self) -> None:
        """The current request broke inside the engine: it ends with result ``error``; the queue goes on."""
        player = self.player
        if player is not None:
            self._player = None
            player.events.clear()
            self.on_event(self, RequestReport(Result.ERROR, None, player.position_samples), self.position_samples)

    def hang_up(self) -> None:
        """``disConnect``: the request playing and every pending one end with ``hangup``."""
        self.hung_up = True
        if self.player is not None:
            self.player.hang_up()
            self.drain_events(self.player)
        while self.pending:
            self.pending.popleft()
            self.on_event(self, RequestReport(Result.HANGUP, None, 0), self.position_samples)

    def drain_events(self, player: RequestPlayer) -> None:
        """Hand ``player``'s events to ``on_event``; forget the player once it is done."""
        for event in player.events:
            self.on_event(self, event, self.request_start_sample + event.at_sample)
        player.events.clear()
        if player.done:
            self._player = None

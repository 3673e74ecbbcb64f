"""A request played live: one call's media loop fed to the sound device at its pace, and its status line."""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.format import SAMPLES_PER_FRAME, wall_time

if TYPE_CHECKING:  # the engine's modules are imported when a command runs: `ipcc-engine` starts fast
    from engine.core.reports import PlayerEvent, Status
    from engine.core.timeline import Program
    from engine.local.speaker import SpeakerSink
    from engine.media.call import Call, CallerSource
    from engine.media.sinks import MemorySink


class _Tee:
    """The call's sink: every frame kept in memory (the fallback WAV) and queued for the speaker."""

    def __init__(self, memory: MemorySink, speaker: SpeakerSink) -> None:
        self.memory, self.speaker = memory, speaker

    def write(self, played: Any, heard: Any) -> None:
        self.memory.write(played, heard)
        self.speaker.write(played, heard)

    def close(self) -> None:
        self.speaker.close()


class LiveCall:
    """One request on one call, fed to ``speaker`` at the device's pace by a feeder thread.

    ``events`` holds ``(at_sample, body)`` not yet shown; ``status`` the player's status per tick (the tick
    whose frame the device plays now is ``speaker.queue.popped``). :meth:`interrupt` hangs the call up.
    """

    def __init__(self, program: Program, caller: CallerSource, speaker: SpeakerSink, start: datetime) -> None:
        from engine.media.call import Call
        from engine.media.sinks import MemorySink

        self.program, self.speaker, self.start = program, speaker, start
        self.memory = MemorySink()
        request = program.request
        self.call = Call(request.app_id, request.call_id, caller, _Tee(self.memory, speaker), self._on_event)
        self.call.submit(program)
        self.events: deque[tuple[int, dict[str, Any]]] = deque()
        self.statuses: deque[tuple[int, Status | None]] = deque(maxlen=512)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, name="media-feeder", daemon=True)

    def _on_event(self, call: Call, event: PlayerEvent, at_sample: int) -> None:
        from engine.wire.events import event_body

        moment = wall_time(self.start, at_sample)
        self.events.append((at_sample, event_body(event, call.app_id, call.call_id, moment)))

    def _feed(self) -> None:
        from engine.media.loop import MediaLoop

        loop, call = MediaLoop(), self.call
        loop.add(call)
        try:
            while not call.idle:
                if self._stop.is_set() and not call.hung_up:
                    call.hang_up()
                    continue
                loop.tick()
                player = call.player
                self.statuses.append((loop.ticks, player.status() if player else None))
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            loop.remove(call)  # closes the sink: the device plays out what is queued

    def run(self, on_wait: Any) -> None:
        """Feed the call until it ends, calling ``on_wait()`` every 100 ms; Ctrl-C hangs up and re-raises."""
        self._thread.start()
        try:
            while self._thread.is_alive():
                self._thread.join(0.1)
                on_wait()
        except KeyboardInterrupt:
            self._stop.set()
            self.speaker.abort()
            self._thread.join(2.0)
            raise

    def status_now(self) -> Status | None:
        """The player's status for the frame the device is playing now (None: nothing playing)."""
        tick = self.speaker.queue.popped
        for at_tick, status in reversed(self.statuses):
            if at_tick <= max(tick, 1):
                return status
        return None

    def due_events(self, everything: bool = False) -> list[dict[str, Any]]:
        """Events the device has reached (``everything``: all of them), removed from :attr:`events`."""
        played = self.speaker.queue.popped * SAMPLES_PER_FRAME
        out = []
        while self.events and (everything or self.events[0][0] <= played):
            out.append(self.events.popleft()[1])
        return out

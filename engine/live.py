"""A request played live: one call's media loop fed to the sound device at its pace, and its status line."""

from __future__ import annotations

import sys
import threading
from collections import deque
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .cli import print_json
from .format import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, samples_to_seconds

if TYPE_CHECKING:  # the engine's modules are imported when a command runs: `ipcc-engine` starts fast
    from .call import Call, CallerSource
    from .player import PlayerEvent, Status
    from .sinks import MemorySink
    from .speaker import SpeakerSink
    from .timeline import Program


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
        from .call import Call
        from .sinks import MemorySink

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
        from .events import event_body

        moment = self.start + timedelta(seconds=at_sample / SAMPLE_RATE_HZ)
        self.events.append((at_sample, event_body(event, call.app_id, call.call_id, moment)))

    def _feed(self) -> None:
        from .loop import MediaLoop

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


class Display:
    """The live status line (a terminal only: redrawn in place) and the event lines."""

    def __init__(self, program: Program, live: LiveCall, keys: Any = None) -> None:
        self.program, self.live, self.keys = program, live, keys
        self.tty = sys.stdout.isatty()

    def line(self) -> str:
        """What is playing: order and repetition, loop, keys collected, timers left, seconds played."""
        status, request = self.live.status_now(), self.program.request
        played = samples_to_seconds(self.live.speaker.queue.popped * SAMPLES_PER_FRAME)
        text = f"{played:6.1f} s"
        if status is not None:
            order = request.orders[status.order_index]
            source = order.source if len(order.source) <= 24 else order.source[:23] + "…"
            what = "gap" if status.in_gap else f"{order.kind.name.lower()} {source!r}"
            text += (f" | order {status.order_index + 1}/{len(request.orders)} play {status.repetition + 1}"
                     f"/{order.plays} loop {status.loop + 1}/{request.loops}: {what}")
            if status.collecting or status.digits:
                text += f" | keys {status.digits!r}"
            if status.samples_to_deadline is not None and status.collecting:
                text += f" | timer {samples_to_seconds(max(0, status.samples_to_deadline)):.1f} s"
        if self.keys is not None:
            text += f" | typed {self.keys.keys!r}"
        return text + f" | underflows {self.live.speaker.underflows}"

    def refresh(self, everything: bool = False) -> None:
        """Print due events (above the status line), then redraw the status line on a terminal."""
        events = self.live.due_events(everything)
        if self.tty and events:
            print("\r\033[K", end="")
        for event in events:
            print_json(event)
        if self.tty and not everything:
            print("\r\033[K" + self.line()[:200], end="", flush=True)

    def finish(self) -> None:
        """Clear the status line and print every event not shown yet."""
        if self.tty:
            print("\r\033[K", end="", flush=True)
        self.refresh(everything=True)

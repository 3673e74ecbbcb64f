"""The live status line of ``play`` (redrawn in place on a terminal) and the event lines above it."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from engine.cli.console import print_json
from engine.format import SAMPLES_PER_FRAME, samples_to_seconds

if TYPE_CHECKING:
    from engine.core.timeline import Program
    from engine.local.live import LiveCall


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

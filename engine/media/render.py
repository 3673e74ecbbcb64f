"""Rendering: one request on one call, ticked by the media loop as fast as the CPU allows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from engine.audio.caller import CallerAudio
from engine.core.reports import PlayerEvent, RequestReport
from engine.core.timeline import Program
from engine.format import frames_for, wall_time
from engine.media.call import Call, CallerSource
from engine.media.loop import MediaLoop
from engine.media.sinks import MemorySink
from engine.wire.events import event_body


@dataclass
class Rendered:
    """What a render produced: both directions of audio (whole frames), the events, the exact length."""

    played: np.ndarray
    heard: np.ndarray
    events: list[dict[str, Any]] = field(default_factory=list)
    reports: list[PlayerEvent] = field(default_factory=list)
    request_samples: int = 0


def render(program: Program, caller: CallerSource | None = None, start: datetime | None = None) -> Rendered:
    """Play ``program`` to a caller (silent by default) and keep everything.

    ``start`` stamps the events (default: 2000-01-01 00:00, so that a render is reproducible; the CLI passes the local
    time).
    """
    start = start or datetime(2000, 1, 1)
    sink = MemorySink()
    rendered = Rendered(played=np.zeros(0, np.int16), heard=np.zeros(0, np.int16))
    request = program.request

    def on_event(call: Call, event: PlayerEvent, at_sample: int) -> None:
        moment = wall_time(start, at_sample)
        rendered.reports.append(event)
        rendered.events.append(event_body(event, request.app_id, request.call_id, moment))
        if isinstance(event, RequestReport):
            rendered.request_samples = event.at_sample

    call = Call(request.app_id, request.call_id, caller or CallerAudio(np.zeros(0, np.int16)), sink, on_event)
    call.submit(program)
    loop = MediaLoop()
    loop.add(call)
    most_ticks = frames_for(program.samples_without_keys) + 1
    while not call.idle:
        if loop.ticks > most_ticks:
            raise RuntimeError("the request played longer than its timeline allows")  # a bug, never input
        loop.tick()
    loop.remove(call)
    rendered.played = sink.played()
    rendered.heard = sink.heard()
    return rendered

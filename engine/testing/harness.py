"""A frame-in/frame-out harness: run a program against keys or a caller's audio, get frames, events and samples.

Two depths, as pipecat's ``run_test`` feeds frames through a pipeline and returns what came out:

* :func:`play_program` drives a :class:`~engine.core.player.RequestPlayer` alone, frame by frame, offering
  keys directly after given frames (the pure core: timeline, player and collector, no detector);
* :func:`run_call` plays the program on a :class:`~engine.media.call.Call` in a
  :class:`~engine.media.loop.MediaLoop`, with the caller's audio (scripted keys become real DTMF tones, decoded
  by the batched detector like any caller's).

Both count in samples and never read a clock; plus :func:`wait_for` and :class:`LineReader`, for tests that
synchronise with another process on what it prints or does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

import numpy as np

from engine.audio.caller import CallerAudio, make_caller
from engine.core.player import RequestPlayer
from engine.core.reports import KeysReport, PlayerEvent, RequestReport
from engine.core.timeline import Program
from engine.format import SAMPLE_DTYPE, SAMPLES_PER_FRAME, frames_for
from engine.media.call import Call, CallerSource
from engine.media.loop import MediaLoop
from engine.media.sinks import MemorySink

#: ``offers[frame]``: the (key, onset sample) pairs offered to the player after frame ``frame`` (from 0).
Offers = Mapping[int, Sequence[tuple[str, int]]]


@dataclass
class Played:
    """What a run produced: every frame played, the events with the sample they happened at, the samples."""

    frames: list[np.ndarray] = field(default_factory=list)
    events: list[tuple[int, PlayerEvent]] = field(default_factory=list)  # (at_sample, event)
    heard: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=SAMPLE_DTYPE))

    @property
    def samples(self) -> np.ndarray:
        """Every frame played, end to end (int16)."""
        return np.concatenate(self.frames) if self.frames else np.zeros(0, dtype=SAMPLE_DTYPE)

    @property
    def reports(self) -> list[PlayerEvent]:
        """The events without their samples."""
        return [event for _, event in self.events]

    @property
    def keys_reports(self) -> list[KeysReport]:
        """The ``ivrreportdtmf`` events."""
        return [event for _, event in self.events if isinstance(event, KeysReport)]

    @property
    def request_reports(self) -> list[RequestReport]:
        """The ``multrpt`` events."""
        return [event for _, event in self.events if isinstance(event, RequestReport)]


def _most_frames(programs: Sequence[Program], slack_frames: int) -> int:
    return sum(frames_for(program.samples_without_keys) + 1 for program in programs) + slack_frames


def play_program(program: Program, offers: Offers | None = None, *, player: RequestPlayer | None = None,
                 max_frames: int | None = None) -> tuple[Played, RequestPlayer]:
    """Play ``program`` on a player alone until it is done; ``offers``: keys offered after given frames.

    ``player``: a player (or subclass) of ``program`` to drive (default: a new :class:`RequestPlayer`);
    ``max_frames``: AssertionError beyond it (default: how long the program lasts without keys, and 100 frames).
    Returns what was played (events at the request's samples) and the player.
    """
    player = player or RequestPlayer(program)
    limit = max_frames if max_frames is not None else _most_frames([program], 100)
    played = Played()
    frame_index = 0
    while not player.done:
        frame = player.next_frame()
        assert len(frame) == SAMPLES_PER_FRAME, "every frame is full"
        played.frames.append(frame.copy())
        for key, onset in (offers or {}).get(frame_index, ()):
            player.on_key(key, onset)
        frame_index += 1
        assert frame_index <= limit, f"the program played over {limit} frames"
    played.events = [(event.at_sample, event) for event in player.events]
    return played, player


def run_call(programs: Program | Sequence[Program], caller: CallerSource | None = None, *, keys: str = "",
             extra_frames: int = 0, max_frames: int | None = None) -> Played:
    """Play ``programs`` one after another on one call of a media loop, as the server does.

    The caller: ``caller``, else scripted ``keys`` (``"5@3.2,#@4.0"``, seconds from each request's start),
    else silence. ``extra_frames``: ticks after the last request ends. Events come with the call's sample.
    """
    queue = [programs] if isinstance(programs, Program) else list(programs)
    if caller is None:
        caller = make_caller(keys) if keys else CallerAudio(np.zeros(0, dtype=SAMPLE_DTYPE))
    played = Played()
    sink = MemorySink()
    call = Call("harness", "harness", caller, sink, lambda _call, event, at: played.events.append((at, event)))
    for program in queue:
        call.submit(program)
    loop = MediaLoop()
    loop.add(call)
    limit = max_frames if max_frames is not None else _most_frames(queue, 100 + extra_frames)
    while not call.idle:
        loop.tick()
        assert loop.ticks <= limit, f"the call played over {limit} frames"
    for _ in range(extra_frames):
        loop.tick()
    loop.remove(call)
    samples = sink.played()
    played.frames = [samples[i : i + SAMPLES_PER_FRAME] for i in range(0, len(samples), SAMPLES_PER_FRAME)]
    played.heard = sink.heard()
    return played


def wait_for(condition: Callable[[], object], timeout_s: float = 30.0, what: str = "the condition") -> None:
    """Poll ``condition`` until it is true; AssertionError naming ``what`` after ``timeout_s`` (a generous bound)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.01)


class LineReader:
    """Collects the lines of a text stream (a subprocess's stdout) in a thread, to wait on what it prints."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._stream = stream
        self._thread = threading.Thread(target=self._read, name="line-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, predicate: Callable[[str], bool], timeout_s: float = 30.0, what: str = "a line") -> str:
        """The first line for which ``predicate`` holds, waiting for it up to ``timeout_s``."""
        found: list[str] = []

        def seen() -> bool:
            found[:] = [line for line in list(self.lines) if predicate(line)][:1]
            return bool(found)

        wait_for(seen, timeout_s, what)
        return found[0]

    def text(self, timeout_s: float = 30.0) -> str:
        """Everything, once the stream has ended."""
        self._thread.join(timeout_s)
        return "\n".join(self.lines)

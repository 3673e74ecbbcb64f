"""Plays one request, frame by frame: the timeline driven live, with the getkey order's key collection.

One :class:`RequestPlayer` is one request on one call. The media loop calls :meth:`next_frame` once per tick
(20 ms) and offers the keys decoded from the caller's audio of that tick with :meth:`on_key`; time is the
request's sample position, so the player never reads a clock. Events come out as :class:`KeysReport` and
:class:`RequestReport` with the sample at which they happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from .collector import Collector, EndReason
from .format import SAMPLE_DTYPE, SAMPLES_PER_FRAME
from .timeline import Program, Segment, natural_samples, order_segments

_SILENT_FRAME = np.zeros(SAMPLES_PER_FRAME, dtype=SAMPLE_DTYPE)
_SILENT_FRAME.setflags(write=False)


class Result(StrEnum):
    """How a request finished; the values are the contract's ``multrpt`` ``result`` spellings."""

    COMPLETE = "complete"
    STOPPED = "stopped"
    HANGUP = "hangup"
    ERROR = "error"


@dataclass(frozen=True)
class KeysReport:
    """Key collection ended (``ivrreportdtmf``): ``digits`` without the end key, at sample ``at``."""

    digits: str
    reason: EndReason
    data: str
    at: int


@dataclass(frozen=True)
class RequestReport:
    """The request finished (``multrpt``) at sample ``at``; ``digits`` is None when no key was collected."""

    result: Result
    digits: str | None
    at: int


PlayerEvent = KeysReport | RequestReport


@dataclass(frozen=True)
class Status:
    """What is playing now, for a live display (``repetition`` and ``loop`` count from 0)."""

    loop: int
    order_index: int
    repetition: int
    in_gap: bool
    collecting: bool
    digits: str
    samples_to_deadline: int | None


class RequestPlayer:
    """Turns a :class:`Program` into frames of :data:`SAMPLES_PER_FRAME` samples, reacting to keys."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.position = 0
        self.events: list[PlayerEvent] = []
        self.result: Result | None = None
        self._loop = 0
        self._order_index = -1
        self._segments: list[Segment] = []
        self._segment_index = 0
        self._offset = 0
        self._collector: Collector | None = None
        self._start_next_order()
        self._settle()

    @property
    def done(self) -> bool:
        """True once the request has finished (all later frames are silence)."""
        return self.result is not None

    @property
    def collector(self) -> Collector | None:
        """The getkey order's collector while that order plays."""
        return self._collector

    def status(self) -> Status:
        """What is playing now."""
        segment = self._current_segment()
        collector = self._collector
        return Status(
            loop=self._loop,
            order_index=self._order_index,
            repetition=segment.repetition if segment else (self.program.request.orders[-1].plays - 1),
            in_gap=segment is None or segment.is_gap,
            collecting=collector is not None and not collector.closed,
            digits=collector.digits if collector else "",
            samples_to_deadline=(collector.deadline() - self.position) if collector else None,
        )

    def next_frame(self) -> np.ndarray:
        """The next 160 samples (read-only; silence once the request is done). Advances time by one frame."""
        segment = self._current_segment()
        if (
            segment is not None
            and segment.length - self._offset >= SAMPLES_PER_FRAME
            and (self._collector is None or self._collector.deadline() - self.position >= SAMPLES_PER_FRAME)
        ):
            start = self._offset
            self._offset += SAMPLES_PER_FRAME
            self.position += SAMPLES_PER_FRAME
            if self._offset == segment.length:
                self._segment_index += 1
                self._offset = 0
            if self._offset == 0:
                self._settle()
            if segment.audio is None:
                return _SILENT_FRAME
            return segment.audio[start : start + SAMPLES_PER_FRAME]
        if (
            segment is None
            and self._collector is not None
            and not self._collector.closed
            and self._collector.deadline() - self.position >= SAMPLES_PER_FRAME
        ):
            self.position += SAMPLES_PER_FRAME  # the getkey order waits in silence for keys
            self._settle()
            return _SILENT_FRAME
        frame = self._fill_frame()
        self._settle()
        return frame

    def _fill_frame(self) -> np.ndarray:
        out = np.zeros(SAMPLES_PER_FRAME, dtype=SAMPLE_DTYPE)
        filled = 0
        while filled < SAMPLES_PER_FRAME and not self.done:
            self._settle()
            if self.done:
                break
            collector = self._collector
            limit = SAMPLES_PER_FRAME - filled
            if collector is not None:
                limit = min(limit, collector.deadline() - self.position)
            segment = self._current_segment()
            if segment is None:
                take = limit  # the getkey order waits in silence until collection ends
            else:
                take = min(limit, segment.length - self._offset)
                if segment.audio is not None:
                    out[filled : filled + take] = segment.audio[self._offset : self._offset + take]
                self._offset += take
                if self._offset == segment.length:
                    self._segment_index += 1
                    self._offset = 0
            filled += take
            self.position += take
        self.position += SAMPLES_PER_FRAME - filled  # padding after the request's end
        return out

    def on_key(self, key: str, onset: int) -> None:
        """Offer a key decoded from the caller's audio; ``onset`` is its tone's start (request samples).

        Called between frames: the key is taken at the current position. The first key stops the prompt
        (barge-in); collection rules may end the order at once.
        """
        collector = self._collector
        if self.done or collector is None or not collector.add_key(key, onset, self.position):
            return
        self._segments = []  # barge-in: no more plays or gaps, silence until collection ends
        self._segment_index = 0
        self._offset = 0
        self._settle()

    def stop(self) -> None:
        """``stoPlay``: the request ends now with result ``stopped``."""
        if not self.done:
            self._finish(Result.STOPPED, self._collector.digits or None if self._collector else None)

    def hang_up(self) -> None:
        """The caller hung up: open collection ends with ``hangup``, the request with result ``hangup``."""
        if self.done:
            return
        collector = self._collector
        digits = None
        if collector is not None and not collector.closed:
            collector.hang_up(self.position)
            data = self.program.request.orders[-1].data
            self.events.append(KeysReport(collector.digits, EndReason.HANGUP, data, self.position))
            digits = collector.digits
        self._finish(Result.HANGUP, digits or None)

    # -- internals -------------------------------------------------------------------------------------------

    def _settle(self) -> None:
        """Take every transition due at the current position (order ends, timeouts) without advancing time."""
        while not self.done:
            collector = self._collector
            if collector is not None:
                if not collector.expire(self.position):
                    return
                self._finish_collection()
            elif self._segment_index >= len(self._segments):
                self._start_next_order()
            else:
                return

    def _current_segment(self) -> Segment | None:
        if self._segment_index < len(self._segments):
            return self._segments[self._segment_index]
        return None

    def _start_next_order(self) -> None:
        orders = self.program.request.orders
        self._order_index += 1
        if self._order_index == len(orders):
            self._order_index = 0
            self._loop += 1
            if self._loop == self.program.request.loops:
                self._loop -= 1
                self._order_index = len(orders) - 1
                self._finish(Result.COMPLETE, None)
                return
        order = orders[self._order_index]
        prompt = self.program.prompts[self._order_index]
        self._segments = order_segments(order, prompt, self._order_index)
        self._segment_index = 0
        self._offset = 0
        if order.collect is not None:
            natural_end = self.position + natural_samples(order, prompt)
            self._collector = Collector(order.collect, self.position, natural_end)

    def _finish_collection(self) -> None:
        collector = self._collector
        assert collector is not None and collector.end_reason is not None
        last_loop = self._loop == self.program.request.loops - 1
        if collector.answered or last_loop:
            data = self.program.request.orders[-1].data
            at = collector.ended_at if collector.ended_at is not None else self.position
            self.events.append(KeysReport(collector.digits, collector.end_reason, data, at))
            self._finish(Result.COMPLETE, collector.digits or None)
            return
        self._collector = None
        self._segments = []
        self._start_next_order()

    def _finish(self, result: Result, digits: str | None) -> None:
        self.result = result
        self._segments = []
        self.events.append(RequestReport(result, digits, self.position))

"""Plays one request, frame by frame: the timeline driven live, with the getkey order's key collection.

One :class:`RequestPlayer` is one request on one call. The media loop calls :meth:`next_frame` once per tick
(20 ms) and offers the keys decoded from the caller's audio of that tick with :meth:`on_key`; time is the
request's sample position, so the player never reads a clock. Events come out as :class:`KeysReport` and
:class:`RequestReport` with the sample at which they happened.
"""

from __future__ import annotations

import numpy as np

from engine.core.collector import Collector, EndReason
from engine.core.quiet import QuietFrames
from engine.core.reports import KeysReport, PlayerEvent, RequestReport, Result, Status
from engine.core.timeline import Program, Segment, next_segment
from engine.format import SAMPLE_DTYPE, SAMPLES_PER_FRAME, SILENT_FRAME

__all__ = ["RequestPlayer"]


class RequestPlayer:
    """Turns a :class:`Program` into frames of :data:`SAMPLES_PER_FRAME` samples, reacting to keys."""

    # slots: what every frame reads first, in one compact object (one player per live call, every tick)
    __slots__ = ("position_samples", "fast_last_sample", "_fast_audio", "_segment_start_sample", "events", "result",
                 "program", "_loop", "_order_index", "_segment", "_collector", "_deadline_sample")

    def __init__(self, program: Program) -> None:
        self.program = program
        self.position_samples = 0
        self.events: list[PlayerEvent] = []
        self.result: Result | None = None
        self._loop = 0
        self._order_index = -1
        self._segment: Segment | None = None  # the play or gap playing now (None: none, or barge-in silence)
        self._segment_start_sample = 0  # the position at which the current segment began (samples)
        self._collector: Collector | None = None
        self._deadline_sample = 0  # the collector's deadline (samples), kept in step with it: it moves only with keys
        #: A frame starting at a position up to ``fast_last_sample`` (see _plan) is the slice of ``_fast_audio`` (None:
        #: silence) at ``position - _segment_start_sample`` and changes nothing else: a reader not needing it adds 160.
        self.fast_last_sample = -1
        self._fast_audio: np.ndarray | None = None
        self._start_next_order()
        self._settle()
        self._plan()

    @property
    def done(self) -> bool:
        """True once the request has finished (all later frames are silence)."""
        return self.result is not None

    @property
    def collector(self) -> Collector | None:
        """The getkey order's collector while that order plays (to read: keys go through :meth:`on_key`)."""
        return self._collector

    def status(self) -> Status:
        """What is playing now."""
        segment = self._segment
        collector = self._collector
        return Status(
            loop=self._loop,
            order_index=self._order_index,
            repetition=segment.repetition if segment else (self.program.request.orders[-1].plays - 1),
            in_gap=segment is None or segment.is_gap,
            collecting=collector is not None and not collector.closed,
            digits=collector.digits if collector else "",
            samples_to_deadline=(collector.deadline() - self.position_samples) if collector else None,
        )

    def next_frame(self) -> np.ndarray:
        """The next 160 samples (read-only; silence once the request is done). Advances time by one frame."""
        position = self.position_samples
        if position <= self.fast_last_sample:  # nothing can happen in this frame: a slice of the segment, or silence
            self.position_samples = position + SAMPLES_PER_FRAME
            audio = self._fast_audio
            if audio is None:
                return SILENT_FRAME
            start = position - self._segment_start_sample
            return audio[start : start + SAMPLES_PER_FRAME]
        frame = self._transition_frame(True)
        self._plan()
        assert frame is not None
        return frame

    def quiet_frames(self, least: int) -> QuietFrames | None:
        """The coming frames in which only time moves, as :meth:`next_frame` gives them (None: fewer than ``least``)."""
        position = self.position_samples
        if position > self.fast_last_sample:
            return None
        count, audio = (self.fast_last_sample - position) // SAMPLES_PER_FRAME + 1, self._fast_audio
        if count < least or audio is None:
            return None if count < least else \
                QuietFrames(np.broadcast_to(SILENT_FRAME, (count, SAMPLES_PER_FRAME)), SILENT_FRAME, 0, 0)
        start = position - self._segment_start_sample
        frames = audio[start : start + count * SAMPLES_PER_FRAME].reshape(count, SAMPLES_PER_FRAME)
        if frames.flags.writeable:  # (prompts are read-only already)
            frames.flags.writeable = False
        return QuietFrames(frames, audio, start, SAMPLES_PER_FRAME)

    def pass_quiet(self, frames: int) -> None:
        """``frames`` of the frames :meth:`quiet_frames` gave were played: time moves on by them."""
        self.position_samples += frames * SAMPLES_PER_FRAME
        assert frames == 0 or self.position_samples - SAMPLES_PER_FRAME <= self.fast_last_sample

    def skip_frame(self) -> None:
        """:meth:`next_frame` for a frame that goes nowhere: the same time and events, no samples."""
        position = self.position_samples
        if position <= self.fast_last_sample:
            self.position_samples = position + SAMPLES_PER_FRAME
        else:
            self._transition_frame(False)
            self._plan()

    def _transition_frame(self, keep: bool) -> np.ndarray | None:
        """A frame in which something may happen: a segment or the request ends, or collection times out.

        ``keep``: False when the samples are not wanted (returns None).
        """
        position = self.position_samples
        collector = self._collector
        segment = self._segment
        if segment is not None:
            offset = position - self._segment_start_sample
            if segment.length_samples - offset >= SAMPLES_PER_FRAME and (
                collector is None or self._deadline_sample - position >= SAMPLES_PER_FRAME
            ):
                self.position_samples = position + SAMPLES_PER_FRAME
                if offset + SAMPLES_PER_FRAME == segment.length_samples:
                    self._next_segment(self.position_samples)
                    self._settle()
                if not keep:
                    return None
                if segment.audio is None:
                    return SILENT_FRAME
                return segment.audio[offset : offset + SAMPLES_PER_FRAME]
        elif (
            collector is not None
            and collector.end_reason is None
            and self._deadline_sample - position >= SAMPLES_PER_FRAME
        ):
            self.position_samples = position + SAMPLES_PER_FRAME  # the getkey order waits in silence for keys
            self._settle()
            return SILENT_FRAME if keep else None
        frame = self._fill_frame(np.zeros(SAMPLES_PER_FRAME, dtype=SAMPLE_DTYPE) if keep else None)
        self._settle()
        return frame

    def _fill_frame(self, out: np.ndarray | None) -> np.ndarray | None:
        """Play pieces of one frame into ``out`` (zeros; None: samples not wanted) up to each transition."""
        filled = 0
        while True:
            self._settle()
            if self.result is not None:
                break
            position = self.position_samples
            take = SAMPLES_PER_FRAME - filled
            if self._collector is not None and self._deadline_sample - position < take:
                take = self._deadline_sample - position
            segment = self._segment
            if segment is not None:
                offset = position - self._segment_start_sample
                if segment.length_samples - offset <= take:  # the segment ends in this frame
                    take = segment.length_samples - offset
                    self._next_segment(position + take)
                if out is not None and segment.audio is not None:
                    out[filled : filled + take] = segment.audio[offset : offset + take]
            # else: the getkey order waits in silence until collection ends
            filled += take
            self.position_samples = position + take
            if filled >= SAMPLES_PER_FRAME:
                break
        self.position_samples += SAMPLES_PER_FRAME - filled  # padding after the request's end
        return out

    def on_key(self, key: str, onset: int) -> None:
        """Offer a key decoded from the caller's audio; ``onset`` is its tone's start (request samples).

        Called between frames: the key is taken at the current position. The first key stops the prompt
        (barge-in); collection rules may end the order at once.
        """
        collector = self._collector
        if self.done or collector is None:
            return
        taken = collector.add_key(key, onset, self.position_samples)
        self._deadline_sample = collector.deadline()
        if not taken:
            self._plan()  # the offer may still have closed collection by timeout
            return
        self._segment = None  # barge-in: no more plays or gaps, silence until collection ends
        self._segment_start_sample = self.position_samples
        self._settle()
        self._plan()

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
            collector.hang_up(self.position_samples)
            data = self.program.request.orders[-1].data
            self.events.append(KeysReport(collector.digits, EndReason.HANGUP, data, self.position_samples))
            digits = collector.digits
        self._finish(Result.HANGUP, digits or None)

    # -- internals -------------------------------------------------------------------------------------------

    def _settle(self) -> None:
        """Take every transition due at the current position (order ends, timeouts) without advancing time."""
        while self.result is None:
            collector = self._collector
            if collector is not None:
                if collector.end_reason is None and self.position_samples < self._deadline_sample:
                    return  # collector.expire would not close it
                if not collector.expire(self.position_samples):
                    return
                self._finish_collection()
            elif self._segment is None:
                self._start_next_order()
            else:
                return

    def _start_next_order(self) -> None:
        orders = self.program.request.orders
        self._order_index += 1
        if self._order_index == len(orders):
            self._order_index = 0
            self._loop += 1
            if self.program.loop_samples == 0:  # a loop takes no time and cannot hear a key: only the last counts
                self._loop = max(self._loop, self.program.request.loops - 1)
            if self._loop == self.program.request.loops:
                self._loop -= 1
                self._order_index = len(orders) - 1
                self._finish(Result.COMPLETE, None)
                return
        order = orders[self._order_index]
        self._segment = next_segment(order, self.program.prompts[self._order_index], self._order_index, None)
        self._segment_start_sample = self.position_samples
        if order.collect is not None:
            natural_end_sample = self.position_samples + self.program.natural_lengths[self._order_index]
            self._collector = Collector(order.collect, self.position_samples, natural_end_sample)
            self._deadline_sample = self._collector.deadline()

    def _finish_collection(self) -> None:
        collector = self._collector
        assert collector is not None and collector.end_reason is not None
        last_loop = self._loop == self.program.request.loops - 1
        if collector.answered or last_loop:
            data = self.program.request.orders[-1].data
            at = collector.ended_at_sample if collector.ended_at_sample is not None else self.position_samples
            self.events.append(KeysReport(collector.digits, collector.end_reason, data, at))
            self._finish(Result.COMPLETE, collector.digits or None)
            return
        self._collector = None
        self._segment = None
        self._start_next_order()

    def _plan(self) -> None:
        """Set how far :meth:`next_frame` may take its fast path; called after every change of state.

        The fast path holds while a frame ends strictly inside the current segment (no segment change due) and by the
        collector's deadline (no timeout due); in the getkey order's silent wait, while a frame ends before the
        deadline.
        """
        last = -1
        audio = None
        if self.result is None:
            collector = self._collector
            segment = self._segment
            if segment is not None:
                audio = segment.audio
                last = self._segment_start_sample + segment.length_samples - 1 - SAMPLES_PER_FRAME
                if collector is not None:
                    last = min(last, self._deadline_sample - SAMPLES_PER_FRAME)
            elif collector is not None and collector.end_reason is None:
                last = self._deadline_sample - 1 - SAMPLES_PER_FRAME
        self.fast_last_sample = last
        self._fast_audio = audio

    def _next_segment(self, at: int) -> None:
        """The current segment ended at sample ``at``: the next play or gap of the order (None after its last)."""
        index = self._order_index
        self._segment = next_segment(self.program.request.orders[index], self.program.prompts[index], index,
                                     self._segment)
        self._segment_start_sample = at

    def _finish(self, result: Result, digits: str | None) -> None:
        self.result = result
        self.fast_last_sample = -1
        self._segment = None
        self.events.append(RequestReport(result, digits, self.position_samples))
